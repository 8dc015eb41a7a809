using System.Text.Json;
using NUnit.Framework;
using Recurrent.Bench.Cli;
using Recurrent.Bench.Peers;
using Recurrent.Bench.Report;
using Spectre.Console;

namespace Recurrent.Tests;

public class ReportTests
{
    private static (IAnsiConsole Console, StringWriter Output) CaptureConsole()
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 200;
        return (console, output);
    }

    private static string NewTempFolder()
    {
        string path = Path.Combine(Path.GetTempPath(), "recurrent-report-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    [TestCase("--bogus")]
    [TestCase("--shapes", "T=10,N=2,I=3")]
    [TestCase("--shapes", "T=10,N=0,I=3,H=4")]
    [TestCase("--shapes", "T=10;N=2,I=3,H=4")]
    [TestCase("--cells", "lstm,transformer")]
    [TestCase("--backend", "tpu")]
    [TestCase("--modes", "inference,sideways")]
    [TestCase("--samples", "1")]
    [TestCase("--samples", "many")]
    [TestCase("--budget", "-5")]
    [TestCase("--full", "--shapes", "T=1,N=1,I=1,H=1")]
    [TestCase("--full", "--backend", "reference")]
    [TestCase("bench", "--filter", "*")]
    [TestCase("lengths", "--layouts", "ragged")]
    [TestCase("lengths", "--shapes", "T=10,N=2")]
    [TestCase("lengths", "--seconds", "0")]
    public void Run_ReturnsUsageError_WhenArgumentsAreInvalid(params string[] args)
    {
        var (console, output) = CaptureConsole();
        string folder = NewTempFolder();
        try
        {
            int code = CliApp.Run([.. args, "--out", Path.Combine(folder, "report")], console);
            Assert.That(code, Is.EqualTo(CliApp.UsageError), output.ToString());
            Assert.That(output.ToString(), Does.Contain("error"));
            Assert.That(Directory.Exists(Path.Combine(folder, "report")), Is.False, "a usage error must not start a report");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void Help_ListsEveryOptionAndCommand()
    {
        var (console, output) = CaptureConsole();
        Assert.That(CliApp.Run(["--help"], console), Is.EqualTo(0));
        foreach (var expected in new[] { "--full", "--backend", "--cells", "--shapes", "--modes", "--out", "--samples", "--budget", "--no-peers", "--no-teacher-forcing", "report", "bench", "lengths" })
            Assert.That(output.ToString(), Does.Contain(expected));
    }

    /// <summary>The lengths command times both layouts of its batch and prints the ratio to proportional time.</summary>
    [Test]
    public void Lengths_TimesPaddedAndPacked_AtATinyShape()
    {
        var (console, output) = CaptureConsole();
        Assert.That(CliApp.Run(["lengths", "--shapes", "T=6,N=4,I=3,H=5", "--modes", "inference,training", "--samples", "3", "--seconds", "0.05"], console),
            Is.EqualTo(0), output.ToString());
        // Lengths 3, 4, 5, 6 of T=6: 18 of 24 tokens.
        Assert.That(output.ToString(), Does.Contain("75.0%").And.Contain("inference").And.Contain("training").And.Contain("packed / (padded × real share)"));
    }

    [Test]
    public void UniformLengths_SpreadEvenlyFromHalfOfTToT()
    {
        Assert.That(Workload.UniformLengths(new BenchShape(6, 4, 1, 1)), Is.EqualTo(new[] { 3, 4, 5, 6 }));
        var lengths = Workload.UniformLengths(new BenchShape(100, 64, 1, 1));
        Assert.That(lengths.Min(), Is.EqualTo(50));
        Assert.That(lengths.Max(), Is.EqualTo(100));
        Assert.That(lengths, Is.Ordered.Ascending);
    }

    [Test]
    public void ParseList_ReadsShapesInAnyFieldOrderAndCase()
    {
        var shapes = BenchShape.ParseList("T=100,N=64,I=512,H=512; h=128, i=96 ,n=16,t=50;");
        Assert.That(shapes, Is.EqualTo(new[] { new BenchShape(100, 64, 512, 512), new BenchShape(50, 16, 96, 128) }));
        Assert.That(BenchShape.ParseList(shapes[1].ToString()).Single(), Is.EqualTo(shapes[1]), "ToString reads back");
    }

    [TestCase("")]
    [TestCase(";")]
    [TestCase("T=1,N=1,I=1")]
    [TestCase("T=1,N=1,I=1,H=1,H=2")]
    [TestCase("T=1,N=1,I=1,H=-3")]
    [TestCase("T=1,N=1,I=1,H=1.5")]
    [TestCase("T=1,N=1,I=1,X=1")]
    [TestCase("T:1,N=1,I=1,H=1")]
    public void ParseList_Throws_WhenShapeIsMalformed(string text)
    {
        Assert.Throws<FormatException>(() => BenchShape.ParseList(text));
    }

    [Test]
    public void CellNames_ParseShortNamesAndEnumNames_WithoutDuplicates()
    {
        Assert.That(CellNames.ParseList("lstm, gru ,GruResetBefore,rnn,gru-reset-after"),
            Is.EqualTo(new[] { CellKind.Lstm, CellKind.GruResetAfter, CellKind.GruResetBefore, CellKind.RnnTanh }));
        Assert.Throws<FormatException>(() => CellNames.ParseList("lstm,42"));
    }

    [Test]
    public void Statistics_GiveMedianQuartilesMadAndFlagOutliers()
    {
        var s = SampleStatistics.Of([4, 1, 100, 3, 2]);
        Assert.That(s.Median, Is.EqualTo(3));
        Assert.That(s.Q1, Is.EqualTo(2));
        Assert.That(s.Q3, Is.EqualTo(4));
        Assert.That(s.Mad, Is.EqualTo(1), "deviations 1, 2, 97, 0, 1 have median 1");
        Assert.That(s.IsOutlier, Is.EqualTo(new[] { false, false, true, false, false }), "100 is beyond Q3 + 1.5 IQR = 7; order follows the input");
        Assert.That(s.RelativeSpread, Is.EqualTo(2.0 / 3).Within(1e-12));
        Assert.That(s.IsNoisy, Is.True);
    }

    [Test]
    public void Statistics_MarkTightSamplesNotNoisy_AndInterpolateQuartiles()
    {
        var s = SampleStatistics.Of([10.0, 10.4, 10.1, 9.9]);
        Assert.That(s.Median, Is.EqualTo(10.05).Within(1e-12));
        Assert.That(s.Q1, Is.EqualTo(9.975).Within(1e-12), "type-7 quantile: 9.9 + 0.75·(10.0 − 9.9)");
        Assert.That(s.Q3, Is.EqualTo(10.175).Within(1e-12));
        Assert.That(s.OutlierCount, Is.Zero);
        Assert.That(s.IsNoisy, Is.False);
        Assert.That(SampleStatistics.Of([5.0]).Median, Is.EqualTo(5.0));
        Assert.Throws<ArgumentException>(() => SampleStatistics.Of([]));
    }

    [Test]
    public void Agreement_AcceptsWithinToleranceAndNamesTheWorstElementOtherwise()
    {
        Assert.That(Agreement.Check([1.005f, -0.0005f], [1f, 0f], "x"), Is.Null);
        string? message = Agreement.Check([1f, 2.5f, float.NaN], [1f, 2f, 3f], "the reference");
        Assert.That(message, Does.Contain("element 2").And.Contain("the reference"));
    }

    [Test]
    public void Flops_CountMatrixProductsPerCell_TrainingThreeTimesForward()
    {
        var shape = BenchShape.Standard;
        Assert.That(new Workload(CellKind.Lstm, shape).Flops(RunMode.Inference), Is.EqualTo(2.0 * 100 * 64 * 4 * 512 * 1024));
        Assert.That(new Workload(CellKind.GruResetBefore, shape).Flops(RunMode.Inference), Is.EqualTo(2.0 * 100 * 64 * 3 * 512 * 1024));
        Assert.That(new Workload(CellKind.RnnTanh, shape).Flops(RunMode.Training), Is.EqualTo(3 * 2.0 * 100 * 64 * 512 * 1024));
    }

    [Test]
    public void AtomicReplace_LeavesOldFolderIntact_WhenWritingThrows()
    {
        string root = NewTempFolder();
        try
        {
            string target = Path.Combine(root, "report");
            AtomicDirectory.Replace(target, dir => File.WriteAllText(Path.Combine(dir, "report.md"), "old"));
            Assert.Throws<InvalidOperationException>(() => AtomicDirectory.Replace(target, dir =>
            {
                File.WriteAllText(Path.Combine(dir, "report.md"), "half");
                throw new InvalidOperationException("interrupted mid-write");
            }));
            Assert.That(File.ReadAllText(Path.Combine(target, "report.md")), Is.EqualTo("old"));
            Assert.That(Directory.GetFileSystemEntries(root), Is.EqualTo(new[] { target }), "no staging folder is left behind");

            AtomicDirectory.Replace(target, dir => File.WriteAllText(Path.Combine(dir, "results.json"), "new"));
            Assert.That(Directory.GetFiles(target).Select(Path.GetFileName), Is.EqualTo(new[] { "results.json" }), "the new folder replaces the old one as a whole");
            Assert.That(Directory.GetFileSystemEntries(root), Is.EqualTo(new[] { target }));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public void AtomicReplace_RestoresTheOldFolder_WhenARunDiedBetweenItsTwoRenames()
    {
        string root = NewTempFolder();
        try
        {
            string retired = Path.Combine(root, ".report.old-0123");
            Directory.CreateDirectory(retired);
            File.WriteAllText(Path.Combine(retired, "report.md"), "good");
            Assert.Throws<IOException>(() => AtomicDirectory.Replace(Path.Combine(root, "report"), _ => throw new IOException("disk full")));
            Assert.That(File.ReadAllText(Path.Combine(root, "report", "report.md")), Is.EqualTo("good"));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A stand-in peer computed by the reference backend, optionally scaled to disagree, or failing to prepare.</summary>
    private sealed class FakePeer(string name, float scale = 1, bool throws = false) : IPeer
    {
        public string Name => name;
        public bool SupportsTraining => false;
        public bool Supports(CellKind cell) => cell != CellKind.GruResetBefore;

        public IPeerRun Prepare(RnnParameters parameters, FloatTensor x, bool training)
        {
            if (throws) throw new InvalidOperationException("no primitive for this shape");
            return new Run(parameters, x, scale);
        }

        public void Dispose() { }

        private sealed class Run(RnnParameters parameters, FloatTensor x, float scale) : IPeerRun
        {
            public FloatTensor Output { get; } = new(x.Shape[0], x.Shape[1], parameters.Config.HiddenSize);

            void IPeerRun.Run()
            {
                var state = parameters.Config.StateShape(x.Shape[1]);
                bool cell = parameters.Config.Cell.HasCellState();
                ReferenceBackend.Instance.Forward(parameters, x, new FloatTensor(state), cell ? new FloatTensor(state) : null, Output, new FloatTensor(state),
                    cell ? new FloatTensor(state) : null, keepForBackward: false);
                for (int i = 0; i < Output.Length; i++) Output.Span[i] *= scale;
            }

            public void Dispose() { }
        }
    }

    [Test]
    public void Report_WritesMarkdownJsonAndCharts_WithPeersBesideAndFailuresListed()
    {
        var (console, output) = CaptureConsole();
        string root = NewTempFolder();
        var loadPeers = ReportCommand.LoadPeers;
        try
        {
            ReportCommand.LoadPeers = () => (
                [new FakePeer("agreeing-peer"), new FakePeer("wrong-peer", scale: 1.5f), new FakePeer("broken-peer", throws: true)],
                [new UnavailablePeer("absent-peer", "libabsent.so not found", "sudo apt-get install libabsent-dev")]);
            string target = Path.Combine(root, "report");
            int code = CliApp.Run(["--backend", "reference", "--shapes", "T=3,N=2,I=5,H=4;T=1,N=1,I=3,H=2", "--samples", "3", "--budget", "2", "--out", target], console);

            Assert.That(code, Is.EqualTo(0), output.ToString());
            foreach (var file in new[] { "report.md", "results.json", "time.png", "time.svg", "gflops.png", "gflops.svg", "peers.png", "peers.svg" })
                Assert.That(new FileInfo(Path.Combine(target, file)).Length, Is.GreaterThan(0), file);
            Assert.That(File.ReadAllBytes(Path.Combine(target, "time.png")).Take(4), Is.EqualTo(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }));
            Assert.That(File.ReadAllText(Path.Combine(target, "time.svg")), Does.Contain("<svg"));

            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(target, "results.json")));
            var measurements = json.RootElement.GetProperty("measurements").EnumerateArray().ToList();
            var ours = measurements.Where(m => m.GetProperty("implementation").GetString() == "reference").ToList();
            Assert.That(ours, Has.Count.EqualTo(2 * 4 * 2), "two shapes × four default cells × two modes");
            foreach (var m in ours)
            {
                Assert.That(m.GetProperty("error").ValueKind, Is.EqualTo(JsonValueKind.Null));
                var samples = m.GetProperty("samplesMs").EnumerateArray().Select(s => s.GetDouble()).ToList();
                Assert.That(samples, Has.Count.GreaterThanOrEqualTo(SampleTimer.MinSamples));
                Assert.That(m.GetProperty("medianMs").GetDouble(), Is.EqualTo(SampleStatistics.Of(samples).Median).Within(1e-9));
            }
            var wrong = measurements.Where(m => m.GetProperty("implementation").GetString() == "wrong-peer").ToList();
            Assert.That(wrong, Has.Count.EqualTo(2 * 3), "inference only, and not the reset-before GRU");
            Assert.That(wrong.All(m => m.GetProperty("error").GetString()!.Contains("disagrees")), Is.True);
            Assert.That(wrong.All(m => m.GetProperty("samplesMs").ValueKind == JsonValueKind.Null), Is.True, "no time is recorded for a disagreeing peer");
            Assert.That(measurements.Where(m => m.GetProperty("implementation").GetString() == "broken-peer")
                .All(m => m.GetProperty("error").GetString()!.Contains("no primitive")), Is.True);
            Assert.That(measurements.Where(m => m.GetProperty("implementation").GetString() == "agreeing-peer")
                .All(m => m.GetProperty("error").ValueKind == JsonValueKind.Null), Is.True);
            Assert.That(json.RootElement.GetProperty("machine").GetProperty("cpuFeatures").GetString(), Is.Not.Empty);
            Assert.That(json.RootElement.GetProperty("ceiling").GetProperty("fmaPeakGflops").GetDouble(), Is.GreaterThan(0));

            string markdown = File.ReadAllText(Path.Combine(target, "report.md"));
            Assert.That(markdown, Does.Contain("| cell | shape | mode | reference |"));
            Assert.That(markdown, Does.Contain("agreeing-peer / ours"));
            Assert.That(markdown, Does.Contain("sudo apt-get install libabsent-dev"));
            Assert.That(markdown, Does.Contain("wrong-peer, lstm T=3,N=2,I=5,H=4 inference: output disagrees"));
            Assert.That(output.ToString(), Does.Contain("FAILED"), "the console table shows the failures too");

            // The teacher-forcing section: four models at each of the report's shapes, both schedules timed after agreeing.
            var teacher = json.RootElement.GetProperty("teacherForcing").EnumerateArray().ToList();
            Assert.That(teacher, Has.Count.EqualTo(2 * 4));
            foreach (var m in teacher)
            {
                Assert.That(m.GetProperty("error").ValueKind, Is.EqualTo(JsonValueKind.Null), m.GetProperty("model").GetString());
                double step = m.GetProperty("stepByStep").GetProperty("medianMs").GetDouble(), parallel = m.GetProperty("parallel").GetProperty("medianMs").GetDouble();
                Assert.That(m.GetProperty("ratio").GetDouble(), Is.EqualTo(step / parallel).Within(1e-9));
                Assert.That(m.GetProperty("maxDeviation").GetDouble(), Is.LessThan(Agreement.Absolute));
            }
            Assert.That(teacher.Select(m => m.GetProperty("model").GetString()), Has.Some.EqualTo("LSTM language model (reference)"), "the language model's layer runs on the report's backend");
            Assert.That(markdown, Does.Contain("## Teacher-forced training: parallel over time vs step by step"));
            Assert.That(markdown, Does.Contain("| output-recurrent, cross-entropy, no input | T=3,N=2,I=0,H=4 |"));
        }
        finally
        {
            ReportCommand.LoadPeers = loadPeers;
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A backend under another name, so the fused-vs-unfused path can run on the reference alone.</summary>
    private sealed class RenamedBackend(string name) : IRnnBackend
    {
        public string Name => name;

        public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null) =>
            ReferenceBackend.Instance.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, lengths);

        public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0) =>
            ReferenceBackend.Instance.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
    }

    [Test]
    public void Report_DrawsSpeedupAndSweepCurves_ForABackendWithFusedAndUnfusedVariants()
    {
        var (console, _) = CaptureConsole();
        string root = NewTempFolder();
        try
        {
            var family = new BackendFamily("two-variants", "the reference under two names", fused => new RenamedBackend(fused ? "fused" : "unfused"),
                HasUnfusedVariant: true, SlowOnlyTinyShapes: true, Probe: () => null);
            var basis = new BenchShape(3, 2, 4, 4);
            SweepPoint[] sweep =
            [
                new("N", 1, basis with { Batch = 1 }), new("N", 2, basis),
                new("T", 1, basis with { Steps = 1 }), new("T", 3, basis),
            ];
            var options = new ReportOptions(family, [CellKind.Lstm], [], [RunMode.Inference, RunMode.Training], TargetSamples: 3,
                Budget: TimeSpan.FromSeconds(1), Full: true, sweep, Path.Combine(root, "report"), Peers: false, Notes: []);

            var result = new ReportRunner(options, console).Run([], []);
            ReportWriter.Write(result, options.OutputDirectory);

            Assert.That(result.Implementations, Is.EqualTo(new[] { "fused", "unfused" }));
            Assert.That(result.Measurements.Where(m => m.Error is not null), Is.Empty);
            var rows = result.Rows();
            Assert.That(rows, Has.Count.EqualTo(3 * 2), "three distinct shapes × two modes");
            Assert.That(rows.All(r => r.Speedup > 0), Is.True);
            foreach (var file in new[] { "speedup.svg", "speedup.png", "sweep-N-inference.png", "sweep-N-training.svg", "sweep-T-inference.svg", "sweep-T-training.png" })
                Assert.That(File.Exists(Path.Combine(options.OutputDirectory, file)), Is.True, file);
            Assert.That(File.ReadAllText(Path.Combine(options.OutputDirectory, "report.md")), Does.Contain("| fusion speedup |"));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public void BackendCatalog_ProbesWithoutThrowing_AndBestIsAvailable()
    {
        Assert.That(BackendCatalog.ProbeNative(), Is.Null, "the native library is built with the solution");
        string? cuda = BackendCatalog.ProbeCuda();
        TestContext.Out.WriteLine($"CUDA: {cuda ?? "present"}");
        Assert.That(BackendCatalog.Best().IsAvailable, Is.True);
        Assert.That(BackendCatalog.Find("REFERENCE")?.Name, Is.EqualTo("reference"));
        Assert.That(BackendCatalog.All.Select(b => b.Name), Is.Unique);
    }

    [Test]
    public void Report_StillWritten_WhenThePeerCatalogThrows()
    {
        var (console, output) = CaptureConsole();
        string root = NewTempFolder();
        var loadPeers = ReportCommand.LoadPeers;
        try
        {
            ReportCommand.LoadPeers = () => throw new DllNotFoundException("libdnnl.so.2");
            string target = Path.Combine(root, "report");
            int code = CliApp.Run(["--backend", "reference", "--cells", "rnn", "--modes", "inference", "--shapes", "T=2,N=1,I=2,H=2", "--samples", "3", "--budget", "0.5",
                "--no-teacher-forcing", "--out", target], console);
            Assert.That(code, Is.EqualTo(0), output.ToString());
            string markdown = File.ReadAllText(Path.Combine(target, "report.md"));
            Assert.That(markdown, Does.Contain("libdnnl.so.2"));
            Assert.That(markdown, Does.Not.Contain("Teacher-forced"), "--no-teacher-forcing skips the section");
        }
        finally
        {
            ReportCommand.LoadPeers = loadPeers;
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A backend that takes a fixed time per run, computed by the reference.</summary>
    private sealed class SlowBackend(TimeSpan delay) : IRnnBackend
    {
        public string Name => "slow";

        public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null)
        {
            Thread.Sleep(delay);
            return ReferenceBackend.Instance.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, lengths);
        }

        public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0) =>
            ReferenceBackend.Instance.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
    }

    [Test]
    public void Report_SkipsWhatIsLeft_WhenMeasuringOverrunsTheBudget()
    {
        var (console, _) = CaptureConsole();
        var family = new BackendFamily("slow", "sleeps", _ => new SlowBackend(TimeSpan.FromMilliseconds(300)), HasUnfusedVariant: false, SlowOnlyTinyShapes: true, Probe: () => null);
        // The deadline is 2 × max(budget, 2 configurations × 150 ms) = 600 ms; the first configuration alone takes
        // 4 runs of 300 ms (the agreement run, then 3 samples).
        var options = new ReportOptions(family, [CellKind.RnnTanh, CellKind.Lstm], [new BenchShape(2, 1, 2, 2)], [RunMode.Inference], TargetSamples: 3,
            Budget: TimeSpan.FromMilliseconds(50), Full: false, [], "unused", Peers: false, Notes: []);

        var result = new ReportRunner(options, console).Run([], []);

        Assert.That(result.Measurements.Select(m => m.Skipped), Is.EqualTo(new[] { false, true }));
        Assert.That(result.Measurements[1].Failed, Is.False);
        Assert.That(SummaryTable.Time(result.Measurements[1]), Does.Contain("skipped"));
    }

    [TestCase("step-by-step")]
    [TestCase("parallel")]
    public void LanguageModel_TimesOneScheduleAtOneShape(string schedule)
    {
        var (console, output) = CaptureConsole();
        Assert.That(CliApp.Run(["language-model", "--schedule", schedule, "--shape", "T=3,N=2,I=4,H=5", "--iterations", "2", "--warmup", "0"], console), Is.EqualTo(0), output.ToString());
        Assert.That(output.ToString(), Does.Contain($"{schedule}, T=3,N=2,I=4,H=5, O=256").And.Contain("ms per time step"));
    }

    [TestCase("--schedule", "sideways", "--schedule")]
    [TestCase("--shape", "T=3,N=2,I=4", "--shape")]
    [TestCase("--iterations", "0", "--iterations")]
    [TestCase("--warmup", "-1", "--warmup")]
    public void LanguageModel_RefusesBadOptions_AsUsageErrors(string option, string value, string named)
    {
        var (console, output) = CaptureConsole();
        Assert.That(CliApp.Run(["language-model", option, value], console), Is.EqualTo(CliApp.UsageError), output.ToString());
        Assert.That(output.ToString(), Does.Contain(named));
    }

    [Test]
    public void Bench_ListsTheBenchmarkDotNetSuites_WithArgumentsAfterTheSeparator()
    {
        var (console, output) = CaptureConsole();
        Assert.That(CliApp.Run(["bench", "--", "--list", "flat"], console), Is.EqualTo(0), output.ToString());
    }
}
