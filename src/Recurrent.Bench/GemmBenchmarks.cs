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
/// machine's AVX-512 FMA ceiling.
/// </summary>
[Config(typeof(GemmBenchmarkConfig))]
public class GemmBenchmarks
{
    /// <summary>
    /// Sustained AVX-512 FMA rate of one core on the project's machine (AMD Zen 5 at ≈ 3.45 GHz, two 16-wide FMA pipes):
    /// ≈ 222 GFLOP/s, measured (see /work/shared/PEERS.md); the ceiling for T threads is T times this.
    /// </summary>
    public const double PeakGflopsPerCore = 222;

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
        AddColumn(new GemmRateColumn(fractionOfPeak: false), new GemmRateColumn(fractionOfPeak: true));
        // The shape names are longer than the default 20 characters a parameter column keeps.
        WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(40));
    }
}

/// <summary>GFLOP/s of a <see cref="GemmBenchmarks"/> case from its mean time, or that rate over the FMA ceiling of its threads.</summary>
public sealed class GemmRateColumn(bool fractionOfPeak) : IColumn
{
    /// <inheritdoc />
    public string Id => fractionOfPeak ? "GemmPeakFraction" : "GemmGflops";
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
        ? $"GFLOP/s over Threads × {GemmBenchmarks.PeakGflopsPerCore} (measured AVX-512 FMA rate per core)"
        : "2·M·N·K floating-point operations per mean time";

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var statistics = summary[benchmarkCase]?.ResultStatistics;
        if (statistics is null || benchmarkCase.Parameters["Shape"] is not GemmShape shape) return "-";
        double gflops = shape.Flops / statistics.Mean; // mean in ns, so FLOP/ns = GFLOP/s
        if (!fractionOfPeak) return gflops.ToString("F1");
        int threads = benchmarkCase.Parameters["Threads"] is int t ? t : 1;
        return (gflops / (threads * GemmBenchmarks.PeakGflopsPerCore)).ToString("P0");
    }

    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
}
