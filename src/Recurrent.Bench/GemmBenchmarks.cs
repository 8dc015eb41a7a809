using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Bench;

/// <summary>A product C[M,N] = op(A)[M,K] · op(B)[K,N] to time, named for where the RNN code needs it.</summary>
public sealed record GemmShape(string Use, int M, int N, int K, bool TransA, bool TransB)
{
    /// <summary>Floating-point operations of one product (one multiply and one add per term).</summary>
    public double Flops => 2.0 * M * N * K;

    /// <inheritdoc />
    public override string ToString() => $"{Use} {M}x{N}x{K} {(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}";
}

/// <summary>
/// The native SGEMM at the shapes of an LSTM with N=64, I=H=512, T=100 (4H = 2048): the per-step recurrent product,
/// the whole-sequence input projection (plain and with PyTorch's [4H, I] weight layout, A·Bᵀ), a cube, and the two
/// backward products (weight gradient Aᵀ·B over all T·N rows, input gradient A·Bᵀ). The packed variant reuses a
/// right-hand side packed once, as a weight matrix is at every step. Reports GFLOP/s and the fraction of this
/// machine's FMA ceiling, measured by <see cref="FmaCeiling"/>.
/// </summary>
[Config(typeof(GemmBenchmarkConfig))]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private PackedMatrix? _packed;

    /// <summary>Shapes timed.</summary>
    public static IEnumerable<GemmShape> Shapes =>
    [
        new("step", 64, 2048, 512, false, false),
        new("sequence input", 6400, 2048, 512, false, false),
        new("sequence input, W[4H,I]", 6400, 2048, 512, false, true),
        new("cube", 2048, 2048, 2048, false, false),
        new("weight gradient", 2048, 512, 6400, true, false),
        new("input gradient", 6400, 512, 2048, false, true),
    ];

    /// <summary>The product timed.</summary>
    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = Shapes.First();

    /// <summary>Native threads (<see cref="NativeLibrary.ThreadCount"/>).</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Allocates and fills the operands and packs B, outside the timed region.</summary>
    [GlobalSetup]
    public void Setup()
    {
        NativeLibrary.ThreadCount = Threads;
        var random = new Random(1);
        _a = Enumerable.Range(0, Shape.M * Shape.K).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        _b = Enumerable.Range(0, Shape.K * Shape.N).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        _c = new float[Shape.M * Shape.N];
        _packed = NativeGemm.PackB(Shape.TransB, Shape.K, Shape.N, _b, Shape.TransB ? Shape.K : Shape.N);
    }

    /// <summary>Frees the packed matrix and restores the default thread count.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _packed?.Dispose();
        NativeLibrary.ThreadCount = 0;
    }

    /// <summary>One product, op(B) packed inside the call.</summary>
    [Benchmark(Baseline = true)]
    public void Sgemm() => NativeGemm.Sgemm(Shape.TransA, Shape.TransB, Shape.M, Shape.N, Shape.K, 1, _a,
        Shape.TransA ? Shape.M : Shape.K, _b, Shape.TransB ? Shape.K : Shape.N, 0, _c, Shape.N);

    /// <summary>One product with op(B) packed beforehand.</summary>
    [Benchmark]
    public void SgemmPacked() => NativeGemm.SgemmPacked(Shape.TransA, Shape.M, 1, _a, Shape.TransA ? Shape.M : Shape.K, _packed!, 0, _c, Shape.N);
}

/// <summary>Adds the GFLOP/s and fraction-of-peak columns to the default configuration.</summary>
public sealed class GemmBenchmarkConfig : ManualConfig
{
    /// <summary>Creates the configuration.</summary>
    public GemmBenchmarkConfig()
    {
        static double? Flops(BenchmarkCase c) => c.Parameters["Shape"] is GemmShape shape ? shape.Flops : null;
        static int Threads(BenchmarkCase c) => c.Parameters["Threads"] is int t ? t : 1;
        const string legend = "2·M·N·K floating-point operations per mean time";
        AddColumn(new FlopRateColumn("Gemm", legend, Flops, Threads, fractionOfPeak: false),
                  new FlopRateColumn("Gemm", legend, Flops, Threads, fractionOfPeak: true));
        // The shape names are longer than the default 20 characters a parameter column keeps.
        WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(40));
    }
}

/// <summary>
/// GFLOP/s of a benchmark case from its mean time, or that rate over the measured FMA ceiling of the threads it ran on.
/// One column for every suite that counts FLOPs (GEMM, RNN): each passes how to count a case's FLOPs and threads.
/// </summary>
/// <param name="id">Column id, unique within a summary.</param>
/// <param name="flopsLegend">How the FLOPs are counted, for the legend.</param>
/// <param name="flops">FLOPs of one call of a case, or null when the case has none to count.</param>
/// <param name="threads">Threads the case ran on.</param>
/// <param name="fractionOfPeak">Show the fraction of the FMA ceiling instead of GFLOP/s.</param>
public sealed class FlopRateColumn(string id, string flopsLegend, Func<BenchmarkCase, double?> flops, Func<BenchmarkCase, int> threads, bool fractionOfPeak) : IColumn
{
    /// <inheritdoc />
    public string Id => id + (fractionOfPeak ? "PeakFraction" : "Gflops");
    /// <inheritdoc />
    public string ColumnName => fractionOfPeak ? "of FMA peak" : "GFLOP/s";
    /// <inheritdoc />
    public bool AlwaysShow => true;
    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc />
    public int PriorityInCategory => fractionOfPeak ? 1 : 0;
    /// <inheritdoc />
    public bool IsNumeric => true;
    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc />
    public string Legend => fractionOfPeak
        ? $"GFLOP/s over threads × {FmaCeiling.GflopsPerCore:F0} (this machine's FMA rate per core, measured)"
        : flopsLegend;

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var statistics = summary[benchmarkCase]?.ResultStatistics;
        if (statistics is null || flops(benchmarkCase) is not double count) return "-";
        double gflops = count / statistics.Mean; // mean in ns, so FLOP/ns = GFLOP/s
        if (!fractionOfPeak) return gflops.ToString("F1");
        return (gflops / (threads(benchmarkCase) * FmaCeiling.GflopsPerCore)).ToString("P0");
    }

    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
}

/// <summary>
/// The single-core FMA ceiling of the machine the benchmarks run on, measured once with the report's probe
/// (<see cref="Report.MachineCeiling"/>): GFLOP per CPU-second it got. Measured rather than assumed because it differs
/// by host: ≈ 117 GFLOP/s on a Zen 4 EPYC (one 512-bit FMA per cycle), ≈ 220 on Zen 5 (two).
/// </summary>
public static class FmaCeiling
{
    private static readonly Lazy<double> Measured = new(() => Report.MachineCeiling.FmaProbe(TimeSpan.FromSeconds(0.5)).PerCpuSecond);

    /// <summary>GFLOP/s of one core (two FLOPs per lane per FMA).</summary>
    public static double GflopsPerCore => Measured.Value;
}
