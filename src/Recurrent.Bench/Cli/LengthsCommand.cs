using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Recurrent.Bench.Report;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>
/// Variable-length batches on the native CPU backend: a batch whose lengths are spread evenly over [⌈T/2⌉, T]
/// (<see cref="Workload.UniformLengths"/>), run in the packed layout, against the same batch padded to T (every length T).
/// The packed pass computes only the real tokens, so its time should be the padded time × real/padded tokens, and beat it:
/// the last column is that ratio (1 = exactly proportional). With both layouts their samples alternate, and the ratios
/// are medians of the pairs' ratios, which hold on a machine whose speed drifts.
/// </summary>
internal sealed class LengthsCommand(IAnsiConsole console) : Command<LengthsCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--cells <LIST>")]
        [Description("Comma-separated cells (as the report takes them). Default: lstm,gru-reset-after.")]
        public string? Cells { get; init; }

        [CommandOption("--shapes <LIST>")]
        [Description("Shapes separated by ';'. Default: T=100,N=64,I=256,H=256.")]
        public string? Shapes { get; init; }

        [CommandOption("--modes <LIST>")]
        [Description("inference, training or both. Default: training (forward + backward).")]
        public string? Modes { get; init; }

        [CommandOption("--layouts <LIST>")]
        [Description("padded, packed or both (default); one alone lets a process be timed as a whole against the other.")]
        public string? Layouts { get; init; }

        [CommandOption("--unfused")]
        [Description("Run the unfused baseline instead of the fused kernels.")]
        public bool Unfused { get; init; }

        [CommandOption("--samples <COUNT>")]
        [Description("Timed samples per configuration (each at least 10 ms of iterations).")]
        [DefaultValue(15)]
        public int Samples { get; init; } = 15;

        [CommandOption("--seconds <SECONDS>")]
        [Description("Time box of one configuration; at least 3 samples are taken whatever it says.")]
        [DefaultValue(10.0)]
        public double Seconds { get; init; } = 10;

        internal (IReadOnlyList<CellKind> Cells, IReadOnlyList<BenchShape> Shapes, IReadOnlyList<RunMode> Modes, bool Padded, bool Packed) Resolved
        {
            get;
            private set;
        }

        public override ValidationResult Validate()
        {
            try
            {
                var layouts = (Layouts ?? "padded,packed").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                if (layouts.Length == 0 || layouts.Any(l => l is not ("padded" or "packed")))
                    throw new FormatException($"--layouts: expected padded, packed or both, got '{Layouts}'.");
                if (Samples < SampleTimer.MinSamples) throw new FormatException($"--samples: expected at least {SampleTimer.MinSamples}, got {Samples}.");
                if (!(Seconds > 0 && double.IsFinite(Seconds))) throw new FormatException($"--seconds: expected a positive number, got {Seconds}.");
                Resolved = (Cells is null ? [CellKind.Lstm, CellKind.GruResetAfter] : CellNames.ParseList(Cells),
                    BenchShape.ParseList(Shapes ?? "T=100,N=64,I=256,H=256"), Modes is null ? [RunMode.Training] : ReportSettings.ParseModes(Modes),
                    layouts.Contains("padded"), layouts.Contains("packed"));
                return ValidationResult.Success();
            }
            catch (FormatException e)
            {
                return ValidationResult.Error(e.Message);
            }
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var (cells, shapes, modes, padded, packed) = settings.Resolved;
        var backend = new NativeCpuBackend(fused: !settings.Unfused);
        var table = new Table().AddColumns("cell", "shape", "mode", "real tokens", $"{backend.Name} padded", "packed", "packed / padded",
            "packed / (padded × real share)");
        console.MarkupLine(Markup.Escape($"{backend.Name}, {Environment.ProcessorCount} CPUs; lengths spread evenly over [⌈T/2⌉, T]; medians ± IQR/median; "
            + "ratios: median of the ratios of alternating samples ± IQR/median."));
        foreach (var shape in shapes)
        {
            var lengths = Workload.UniformLengths(shape);
            double share = lengths.Sum() / (double)(shape.Steps * shape.Batch);
            foreach (var cell in cells)
            {
                var workload = new Workload(cell, shape);
                foreach (var mode in modes)
                {
                    var paddedRun = new BackendRun(backend, workload, mode);
                    var packedRun = new BackendRun(backend, workload, mode, lengths);
                    SampleStatistics? paddedTime = null, packedTime = null, ratio = null;
                    if (padded && packed)
                    {
                        var (paddedSamples, packedSamples) = SampleTimer.MeasurePair(paddedRun.Run, packedRun.Run, TimeSpan.FromSeconds(settings.Seconds), settings.Samples);
                        (paddedTime, packedTime) = (Statistics(paddedSamples), Statistics(packedSamples));
                        ratio = SampleStatistics.Of([.. packedSamples.MillisecondsPerIteration.Zip(paddedSamples.MillisecondsPerIteration, (a, b) => a / b)]);
                    }
                    else if (padded) paddedTime = Measure(paddedRun, settings);
                    else packedTime = Measure(packedRun, settings);
                    table.AddRow(CellNames.Of(cell), shape.ToString(), mode.ToString().ToLowerInvariant(), $"{100 * share:F1}%", Format(paddedTime),
                        Format(packedTime), Ratio(ratio, 1), Ratio(ratio, share));
                }
            }
        }
        console.Write(table);
        return 0;
    }

    private static SampleStatistics? Measure(BackendRun run, Settings settings)
    {
        var first = Stopwatch.StartNew();
        run.Run();
        return Statistics(SampleTimer.Measure(run.Run, first.Elapsed, TimeSpan.FromSeconds(settings.Seconds), settings.Samples));
    }

    private static SampleStatistics Statistics(Samples samples) => SampleStatistics.Of(samples.MillisecondsPerIteration);

    private static string Format(SampleStatistics? s) =>
        s is null ? "–" : string.Create(CultureInfo.InvariantCulture, $"{s.Median:F2} ms ±{100 * s.RelativeSpread:F0}%");

    private static string Ratio(SampleStatistics? ratio, double share) =>
        ratio is null ? "–" : string.Create(CultureInfo.InvariantCulture, $"{ratio.Median / share:F3} ±{100 * ratio.RelativeSpread:F0}%");
}
