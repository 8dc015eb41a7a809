using BenchmarkDotNet.Attributes;
using Recurrent.Sequence;

namespace Recurrent.Bench;

/// <summary>The two shapes of the teacher-forcing benchmarks (vocabulary or output width O = 256 in both).</summary>
public enum TeacherForcingShape
{
    /// <summary>T = 100, N = 64, I = H = 512: the project's standard shape.</summary>
    T100_N64_H512,
    /// <summary>T = 50, N = 16, I = H = 128: the small shape.</summary>
    T50_N16_H128,
}

/// <summary>Sizes of a <see cref="TeacherForcingShape"/>.</summary>
internal static class TeacherForcingShapes
{
    public const int OutputSize = 256;

    public static (int Steps, int Batch, int Hidden) Sizes(this TeacherForcingShape shape) => shape switch
    {
        TeacherForcingShape.T100_N64_H512 => (100, 64, 512),
        TeacherForcingShape.T50_N16_H128 => (50, 16, 128),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "unknown shape"),
    };

    public static SequenceTargets RandomTargets(SequenceLoss loss, int steps, int batch, Random random) =>
        loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens(Enumerable.Range(0, steps * batch).Select(_ => random.Next(OutputSize)).ToArray(), steps, batch)
            : SequenceTargets.Real(new FloatTensor(Enumerable.Range(0, steps * batch * OutputSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), steps, batch, OutputSize));
}

/// <summary>
/// One teacher-forced training step (forward, loss, backward) of the output-to-hidden recurrent network
/// (<see cref="OutputRecurrentNetwork"/>, I = H or 0, O = 256): parallel over all T·N rows against the step-by-step baseline
/// (Ratio column). GEMM work per step ≈ 2·T·N·(2·I·H + 3·H·O) FLOP (forward x·U and h·V; backward dV, dh, dU; the fed-back
/// token is a row gather, a real-valued fed-back vector adds 2·(T−1)·N·O·H twice). Without external input and with token
/// outputs, the parallel step computes each of the O + 1 possible hidden states once, so its products run over O + 1 rows.
/// Where a CUDA device opens, the same network also runs on it through ILGPU (<see cref="Device"/> = <c>ilgpu-cuda</c>;
/// each step then includes its parameter upload and gradient download); elsewhere only the CPU runs, as ILGPU's CPU
/// accelerator would take minutes per step at these shapes.
/// </summary>
public class OutputRecurrentTeacherForcingBenchmarks
{
    private OutputRecurrentNetwork _network = null!;
    private IlgpuBackend? _backend;

    /// <summary><c>cpu</c>, and <c>ilgpu-cuda</c> where CUDA is present.</summary>
    public static IEnumerable<string> Devices() => IlgpuBenchmarks.CudaPresent.Value ? ["cpu", "ilgpu-cuda"] : ["cpu"];

    /// <summary>Where the network runs: the native CPU path, or ILGPU on CUDA.</summary>
    [ParamsSource(nameof(Devices))]
    public string Device { get; set; } = "cpu";
    private FloatTensor? _input;
    private SequenceTargets _targets = null!;

    /// <summary>T, N, H.</summary>
    [Params(TeacherForcingShape.T100_N64_H512, TeacherForcingShape.T50_N16_H128)]
    public TeacherForcingShape Shape { get; set; }

    /// <summary>Discrete (vocabulary 256, cross-entropy) or real-valued (256 features, squared error) outputs.</summary>
    [Params(SequenceLoss.SoftmaxCrossEntropy, SequenceLoss.SquaredError)]
    public SequenceLoss Loss { get; set; }

    /// <summary>With an external input x_t of I = H features, or driven by the fed-back outputs alone (I = 0).</summary>
    [Params(true, false)]
    public bool ExternalInput { get; set; }

    /// <summary>Builds the network and random data outside the measured region.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var (steps, batch, hidden) = Shape.Sizes();
        var random = new Random(1);
        int input = ExternalInput ? hidden : 0;
        _backend = Device == "ilgpu-cuda" ? new IlgpuBackend(IlgpuDevice.Cuda) : null;
        _network = new OutputRecurrentNetwork(input, hidden, TeacherForcingShapes.OutputSize, Loss, seed: 1, device: _backend);
        _input = ExternalInput ? new FloatTensor(Enumerable.Range(0, steps * batch * input).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), steps, batch, input) : null;
        _targets = TeacherForcingShapes.RandomTargets(Loss, steps, batch, random);
        // Kernel compilation, cuBLAS set-up and workspace allocation happen on first use: not in a measured call.
        if (_backend is not null)
            foreach (var schedule in Enum.GetValues<TrainingSchedule>()) _network.Train(_input, _targets, schedule);
    }

    /// <summary>Frees the device, if any.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _network.Dispose();
        _backend?.Dispose();
    }

    /// <summary>The baseline: per-step products over N rows, per-step output layer and loss, backward from t = T−1.</summary>
    [Benchmark(Baseline = true)]
    public float StepByStep() => _network.Train(_input, _targets, TrainingSchedule.StepByStep);

    /// <summary>Every product once over all T·N rows, fused pointwise passes, no loop over time.</summary>
    [Benchmark]
    public float ParallelOverTime() => _network.Train(_input, _targets, TrainingSchedule.ParallelOverTime);
}

/// <summary>
/// One teacher-forced training step of an LSTM language model (<see cref="RecurrentSequenceModel"/>: embedding, one LSTM
/// layer with I = H, output layer, softmax cross-entropy over a vocabulary of 256): the stack run once over the whole
/// sequence with the embedding, output layer and loss over all T·N rows, against the step-by-step baseline that steps
/// the stack one time step at a time, chained through h and c (on <c>cpu</c> through its stepper, weights packed once per
/// call; on ILGPU uploaded once per call, each step a T = 1 device pass on them). On <c>cpu</c> the stack runs on the layer's default backend; where a CUDA device opens, <c>ilgpu-cuda</c> runs the stack on an <see cref="IlgpuBackend"/> and with it the whole
/// model on the GPU.
/// </summary>
public class LstmLanguageModelTeacherForcingBenchmarks
{
    private RecurrentSequenceModel _model = null!;
    private SequenceTargets _targets = null!;
    private IlgpuBackend? _backend;

    /// <summary><c>cpu</c>, and <c>ilgpu-cuda</c> where CUDA is present.</summary>
    [ParamsSource(typeof(OutputRecurrentTeacherForcingBenchmarks), nameof(OutputRecurrentTeacherForcingBenchmarks.Devices))]
    public string Device { get; set; } = "cpu";

    /// <summary>T, N, H.</summary>
    [Params(TeacherForcingShape.T100_N64_H512, TeacherForcingShape.T50_N16_H128)]
    public TeacherForcingShape Shape { get; set; }

    /// <summary>Builds the model and random tokens outside the measured region.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var (steps, batch, hidden) = Shape.Sizes();
        _backend = Device == "ilgpu-cuda" ? new IlgpuBackend(IlgpuDevice.Cuda) : null;
        _model = new RecurrentSequenceModel(new Lstm(hidden, hidden, backend: _backend, seed: 1), TeacherForcingShapes.OutputSize, SequenceLoss.SoftmaxCrossEntropy, startToken: 0, seed: 1);
        _targets = TeacherForcingShapes.RandomTargets(SequenceLoss.SoftmaxCrossEntropy, steps, batch, new Random(1));
        // Kernel compilation, cuBLAS set-up and device buffers happen on first use: not in a measured call.
        if (_backend is not null)
            foreach (var schedule in Enum.GetValues<TrainingSchedule>()) _model.Train(_targets, schedule);
    }

    /// <summary>Frees the device, if any.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _backend?.Dispose();
    }

    /// <summary>The baseline: the stack stepped once per time step, output layer and loss per step, backward step by step through h and c.</summary>
    [Benchmark(Baseline = true)]
    public float StepByStep() => _model.Train(_targets, TrainingSchedule.StepByStep);

    /// <summary>The stack over the whole sequence; embedding, output layer and loss over all T·N rows.</summary>
    [Benchmark]
    public float ParallelOverTime() => _model.Train(_targets, TrainingSchedule.ParallelOverTime);
}
