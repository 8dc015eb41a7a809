using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Recurrent.Bench.Report;

namespace Recurrent.Bench;

/// <summary>
/// Variable-length batches on the native CPU backend (fused): lengths spread evenly over [⌈T/2⌉, T]
/// (<see cref="Workload.UniformLengths"/>: about three quarters of the padded tokens real) in cuDNN's packed layout, against
/// the same batch padded to T (every sequence all T steps, the baseline), for inference and a training step. The packed
/// pass computes only the real tokens, so its ratio to the baseline should be about the real share and no more.
/// Through the backend, as a layer calls it: the packing of x and the unpacking of y (and dy, dx) are in the measured region.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class VariableLengthBenchmarks
{
    private const string Inference = "inference", Training = "training";

    /// <summary>The cell.</summary>
    [Params(CellKind.Lstm, CellKind.GruResetAfter)]
    public CellKind Cell { get; set; }

    /// <summary>T_N_I_H: the shape of the variable-length comparisons, and the small shape.</summary>
    [Params("T100_N64_I256_H256", "T50_N16_I128_H128")]
    public string Shape { get; set; } = "";

    private static readonly NativeCpuBackend Backend = new(fused: true);
    private BackendRun _paddedInference = null!, _packedInference = null!, _paddedTraining = null!, _packedTraining = null!;

    /// <summary>Builds the workload and its four runs (buffers allocated once).</summary>
    [GlobalSetup]
    public void Setup()
    {
        var (steps, batch, input, hidden) = RnnBenchmarks.ParseShape(Shape);
        var shape = new BenchShape(steps, batch, input, hidden);
        var workload = new Workload(Cell, shape);
        var lengths = Workload.UniformLengths(shape);
        _paddedInference = new BackendRun(Backend, workload, RunMode.Inference);
        _packedInference = new BackendRun(Backend, workload, RunMode.Inference, lengths);
        _paddedTraining = new BackendRun(Backend, workload, RunMode.Training);
        _packedTraining = new BackendRun(Backend, workload, RunMode.Training, lengths);
    }

    /// <summary>Inference on the batch padded to T.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory(Inference)]
    public void InferencePadded() => _paddedInference.Run();

    /// <summary>Inference on the packed batch.</summary>
    [Benchmark, BenchmarkCategory(Inference)]
    public void InferencePacked() => _packedInference.Run();

    /// <summary>Forward and backward on the batch padded to T.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory(Training)]
    public void TrainingPadded() => _paddedTraining.Run();

    /// <summary>Forward and backward on the packed batch.</summary>
    [Benchmark, BenchmarkCategory(Training)]
    public void TrainingPacked() => _packedTraining.Run();
}
