namespace Recurrent.Sequence;

/// <summary>
/// A recurrent network whose only recurrence runs from the output to the hidden layer (Goodfellow, Bengio and Courville,
/// <i>Deep Learning</i>, §10.2.1 and fig. 10.4):
/// <code>
/// h_t = act(b + o′_{t−1}·W + x_t·U)      [N, H]
/// o_t = c + h_t·V                        [N, O]
/// </code>
/// Under teacher forcing o′_{t−1} is the target y_{t−1} (a one-hot token or a real vector), so no step depends on another
/// and <see cref="Train"/> runs the whole sequence as a few matrix products over all T·N rows
/// (<see cref="TrainingSchedule.ParallelOverTime"/>). At t = 0 the fed-back value is the start value: zeros, or the
/// one-hot <see cref="StartToken"/>. <see cref="Generate"/> runs free: it feeds back the model's own output, one step at a time.
/// Weights are stored [in, out] (U [I, H], W [O, H], V [H, O]) so that a fed-back token is a row gather of W.
/// Everything runs in float32, by default on the CPU: products on the native library's GEMM
/// (<see cref="Kernels.Cpu.NativeGemm"/>), pointwise passes vectorised on the calling thread. Given an
/// <see cref="IlgpuBackend"/> it runs on that backend's accelerator instead (CUDA, or ILGPU's CPU simulator for tests):
/// the same computation, with products on cuBLAS or the ILGPU GEMM kernel and fused pointwise kernels; see
/// <see cref="Device"/> for what crosses to the device on each call.
/// Thread-safety: not safe; a training step accumulates into shared gradients and reuses the network's workspaces, so a call made
/// while another thread is inside one throws <see cref="InvalidOperationException"/>.
/// Non-finite values: a NaN or ∞ in a parameter, or one that arises inside a pass, propagates as IEEE arithmetic gives it;
/// <see cref="Train"/> never returns a finite loss while the gradients hold NaN or ∞ (it returns NaN then).
/// </summary>
/// <remarks>Lifetime: owned by its creator; it borrows the <see cref="Device"/> backend (dispose the network first). <see cref="Dispose"/> frees its device workspaces (nothing on the CPU); a call after it throws <see cref="ObjectDisposedException"/>.</remarks>
public sealed class OutputRecurrentNetwork : IDisposable
{
    private readonly OutputRecurrentEngine<float> _engine;
    private readonly IlgpuMatrixOps? _deviceOps;
    private readonly ModelCalls _calls = new("output-recurrent network");

    /// <summary>Creates the network with weights uniform in ±1/√H (PyTorch's recurrent initialisation), seeded so runs repeat.</summary>
    /// <param name="inputSize">I ≥ 0: features of the external input x_t; 0 for a network driven by its outputs alone (then pass x = null).</param>
    /// <param name="hiddenSize">H ≥ 1.</param>
    /// <param name="outputSize">O ≥ 1: the vocabulary size for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, else the features of o_t.</param>
    /// <param name="loss">Discrete (softmax cross-entropy) or real-valued (squared error) outputs.</param>
    /// <param name="activation">The hidden layer's activation.</param>
    /// <param name="startToken">The token fed back at t = 0 (discrete outputs only), in [0, O); null feeds zeros.</param>
    /// <param name="seed">Seed of the initialisation.</param>
    /// <param name="device">
    /// Null (the default) to run on the CPU; else the ILGPU backend whose accelerator runs every training step, forward
    /// and generation. The network borrows it (its owner disposes it, after the network) and allocates its own
    /// workspaces there, freed by <see cref="Dispose"/>.
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, the start token is outside the vocabulary, an enum value is
    /// unknown, or a weight (U [I, H], W [O, H], V [H, O]) would have more elements than one array holds (the message names the sizes).</exception>
    /// <exception cref="ArgumentException">A start token was given for real-valued outputs.</exception>
    public OutputRecurrentNetwork(int inputSize, int hiddenSize, int outputSize, SequenceLoss loss,
        RnnActivation activation = RnnActivation.Tanh, int? startToken = null, int seed = 0, IlgpuBackend? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(inputSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputSize, 1);
        if (!Enum.IsDefined(loss)) throw new ArgumentOutOfRangeException(nameof(loss), loss, "expected SoftmaxCrossEntropy or SquaredError");
        if (!Enum.IsDefined(activation)) throw new ArgumentOutOfRangeException(nameof(activation), activation, "expected Tanh or Relu");
        if (startToken is not null)
        {
            if (loss != SequenceLoss.SoftmaxCrossEntropy)
                throw new ArgumentException("startToken: only discrete outputs have a start token; real-valued outputs start from zeros. Pass null.", nameof(startToken));
            if ((uint)startToken.Value >= (uint)outputSize)
                throw new ArgumentOutOfRangeException(nameof(startToken), startToken, $"expected a token in [0, {outputSize}).");
        }
        Sizes.Elements(nameof(inputSize), "input_weight U [I, H]", ("I", inputSize), ("H", hiddenSize));
        Sizes.Elements(nameof(outputSize), "feedback_weight W [O, H]", ("O", outputSize), ("H", hiddenSize));
        Device = device;
        // In the order of the engine's constants (OutputRecurrentEngine<T>.InputWeight …).
        Parameters = new ParameterSet(
            [
                ParameterSet.Entry.Own("input_weight", [inputSize, hiddenSize]),
                ParameterSet.Entry.Own("feedback_weight", [outputSize, hiddenSize]),
                ParameterSet.Entry.Own("hidden_bias", [hiddenSize]),
                ParameterSet.Entry.Own("output_weight", [hiddenSize, outputSize]),
                ParameterSet.Entry.Own("output_bias", [outputSize]),
            ],
            new Dictionary<string, string> { [ActivationMetadataKey] = activation.ToString() }, "this output-recurrent network");
        var values = Parameters.All.Select(p => p.Value.Memory).ToArray();
        var grads = Parameters.All.Select(p => p.Grad.Memory).ToArray();
        if (device is null)
            _engine = OutputRecurrentEngine.Create(inputSize, hiddenSize, outputSize, loss, activation, startToken ?? -1, CpuMatrixOps.Instance, values, grads);
        else
        {
            _deviceOps = new IlgpuMatrixOps(device.Accelerator);
            _engine = OutputRecurrentEngine.Create(inputSize, hiddenSize, outputSize, loss, activation, startToken ?? -1, _deviceOps, values, grads);
        }
        var random = new Random(seed);
        float bound = 1f / MathF.Sqrt(hiddenSize);
        // Parameter after parameter, as the flat storage holds them.
        var all = Parameters.Values.Span;
        for (int i = 0; i < all.Length; i++) all[i] = (float)((random.NextDouble() * 2 - 1) * bound);
    }

    // Save records the activation under this key: tanh and relu networks have the same parameters, and Load refuses the other's file.
    private const string ActivationMetadataKey = "recurrent.activation";

    /// <summary>I: features of x_t (0 when the network has no external input).</summary>
    public int InputSize => _engine.InputSize;
    /// <summary>H.</summary>
    public int HiddenSize => _engine.HiddenSize;
    /// <summary>O: vocabulary size or output features.</summary>
    public int OutputSize => _engine.OutputSize;
    /// <summary>The loss and kind of output.</summary>
    public SequenceLoss Loss => _engine.Loss;
    /// <summary>The hidden layer's activation.</summary>
    public RnnActivation Activation => _engine.Activation;
    /// <summary>The token fed back at t = 0, or null when the start value is zeros.</summary>
    public int? StartToken => _engine.StartToken < 0 ? null : _engine.StartToken;

    /// <summary>
    /// The ILGPU backend whose accelerator runs the network, or null on the CPU. On a device the parameters stay on the
    /// host, where <see cref="Parameters"/> shows them and <see cref="SgdStep"/> and <see cref="ZeroGrad"/> change them,
    /// so each call synchronises: <see cref="Train"/> uploads every parameter value (P floats, P = I·H + O·H + H + H·O + O),
    /// x and the targets, zeroes P device floats, and ends by downloading the P gradient floats and adding them into
    /// <see cref="Parameter.Grad"/> on the host; <see cref="TeacherForcedOutputs"/> and <see cref="Generate"/>
    /// upload the values and inputs and download the outputs. Per step that is about 2·P floats besides the data, small
    /// beside the step's O(T·N·(I + O)·H) work once T·N is in the hundreds.
    /// </summary>
    public IlgpuBackend? Device { get; }

    /// <summary>
    /// input_weight U [I, H], feedback_weight W [O, H], hidden_bias b [H], output_weight V [H, O], output_bias c [O], with
    /// their gradients, in one flat storage (see <see cref="ParameterSet"/>); the metadata of a saved file records the activation.
    /// </summary>
    public ParameterSet Parameters { get; }

    internal OutputRecurrentEngine<float> Engine => _engine;

    /// <summary>The operations it runs on, such as <c>native-cpu</c> or <c>ilgpu-cuda</c>.</summary>
    internal string OpsName => _engine.OpsName;

    /// <summary>
    /// One teacher-forced training step: returns the loss (mean over the T·N predictions, or over the Σ lengths real ones
    /// when the targets have lengths) and adds its gradient into every parameter's <see cref="Parameter.Grad"/>.
    /// Both schedules compute the same loss and gradients.
    /// </summary>
    /// <remarks>
    /// With lengths (<see cref="SequenceTargets.Tokens"/>, <see cref="SequenceTargets.Real"/>) sequence n counts over steps
    /// 0 … lengths[n]−1 only: the loss and every gradient are those of the sequences trained one at a time, each truncated
    /// to its length, weighted by their lengths. Under teacher forcing no step depends on another here, so the lengths
    /// only mask the loss: every row is still computed (the work stays T·N rows), the rows past an end are fed back zeros
    /// and contribute nothing. x past a sequence's end changes nothing, but must be finite like the rest of x.
    /// </remarks>
    /// <param name="x">External input [T, N, I]; null when I = 0.</param>
    /// <param name="targets">y: token ids [T, N] or values [T, N, O], matching <see cref="Loss"/>, optionally with lengths; y_{t−1} is also fed back at step t.</param>
    /// <param name="schedule">Parallel over time (the default) or the step-by-step baseline.</param>
    /// <exception cref="ArgumentException">x and the targets disagree in T or N, a shape does not match, a value is not finite, or the targets are of the other kind.</exception>
    /// <returns>The mean loss; NaN when a gradient came out NaN or ∞ (see the class remarks).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O), the schedule is unknown, or a [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The network was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native GEMM failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a <see cref="Device"/>: a launch, copy or allocation failed (the message names the operation and the sizes).</exception>
    public float Train(FloatTensor? x, SequenceTargets targets, TrainingSchedule schedule = TrainingSchedule.ParallelOverTime)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Enum.IsDefined(schedule)) throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "expected ParallelOverTime or StepByStep");
        Validate(x, targets);
        using var call = _calls.Enter(nameof(Train));
        using var pass = Parameters.EnterPass();
        float loss = DeviceFailures.Wrap(OnDevice,
            () => _engine.Train(schedule, MemoryOf(x), targets.Steps, targets.Batch, targets.TokenIds, MemoryOf(targets.Values), targets.Padding),
            () => Describe("training step", targets.Steps, targets.Batch));
        return ModelCalls.LossOrNaN(loss, Parameters);
    }

    private static ReadOnlyMemory<float> MemoryOf(FloatTensor? tensor) => tensor is null ? default : tensor.Memory;

    /// <summary>
    /// The outputs o [T, N, O] (logits or values) under teacher forcing, as <see cref="Train"/> computes them; with lengths,
    /// zero past each sequence's end.
    /// </summary>
    /// <param name="x">External input [T, N, I]; null when I = 0.</param>
    /// <param name="targets">y [T, N] or [T, N, O], optionally with lengths; y_{t−1} is fed back at step t.</param>
    /// <exception cref="ArgumentException">As <see cref="Train"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O), or a [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The network was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native GEMM failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a <see cref="Device"/>: a launch, copy or allocation failed.</exception>
    public FloatTensor TeacherForcedOutputs(FloatTensor? x, SequenceTargets targets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Validate(x, targets);
        using var call = _calls.Enter(nameof(TeacherForcedOutputs));
        using var pass = Parameters.EnterPass();
        var outputs = new FloatTensor(targets.Steps, targets.Batch, OutputSize);
        DeviceFailures.Wrap(OnDevice,
            () => _engine.TeacherForcedOutputs(MemoryOf(x), targets.Steps, targets.Batch, targets.TokenIds, MemoryOf(targets.Values), outputs.Memory, targets.Padding),
            () => Describe("teacher-forced forward", targets.Steps, targets.Batch));
        return outputs;
    }

    /// <summary>
    /// Free-running generation, one step at a time: step t feeds back the model's own output of step t − 1 (its argmax
    /// token for discrete outputs, its values otherwise), the start value at t = 0. It sees no targets.
    /// </summary>
    /// <param name="x">External input [T, N, I], or null when I = 0.</param>
    /// <param name="steps">T ≥ 1; must match x.</param>
    /// <param name="batch">N ≥ 1; must match x.</param>
    /// <exception cref="ArgumentException">A size is below 1 or x does not have shape [T, N, I].</exception>
    /// <exception cref="ArgumentOutOfRangeException">A [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The network was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native GEMM failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a <see cref="Device"/>: a launch, copy or allocation failed.</exception>
    public GeneratedSequence Generate(FloatTensor? x, int steps, int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"steps, batch: expected T ≥ 1 and N ≥ 1, got T = {steps}, N = {batch} (an empty sequence).", steps < 1 ? nameof(steps) : nameof(batch));
        RequireBatchSizes(steps < batch ? nameof(batch) : nameof(steps), steps, batch);
        ValidateInput(x, steps, batch);
        using var call = _calls.Enter(nameof(Generate));
        using var pass = Parameters.EnterPass();
        var outputs = new FloatTensor(steps, batch, OutputSize);
        var tokens = Loss == SequenceLoss.SoftmaxCrossEntropy ? new int[steps * batch] : null;
        DeviceFailures.Wrap(OnDevice, () => _engine.Generate(MemoryOf(x), steps, batch, outputs.Memory, tokens), () => Describe("generation", steps, batch));
        return new GeneratedSequence(outputs, tokens);
    }

    private bool OnDevice => _deviceOps is not null;

    /// <summary>What a failed device call was doing, for <see cref="DeviceFailures"/>.</summary>
    private string Describe(string operation, int steps, int batch) =>
        $"{OpsName}: {operation} of T={steps} N={batch} I={InputSize} H={HiddenSize} O={OutputSize} on {Device?.DeviceName}";

    /// <summary>Plain gradient descent: every parameter −= learningRate · gradient (<see cref="ParameterSet.SgdStep"/> of <see cref="Parameters"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The learning rate is NaN or infinite.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    public void SgdStep(float learningRate)
    {
        using var call = _calls.Enter(nameof(SgdStep));
        Parameters.SgdStep(learningRate);
    }

    /// <summary>Sets every gradient to zero.</summary>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    public void ZeroGrad()
    {
        using var call = _calls.Enter(nameof(ZeroGrad));
        Parameters.ZeroGrad();
    }

    /// <summary>
    /// Saves every parameter as a safetensors file under the names of <see cref="Parameters"/>, recording the activation:
    /// <see cref="ParameterSet.Save(string, SaveOptions?)"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be written; an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or infinity, or another thread is inside a call of this network.</exception>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="options">The dtype in the file and a prefix for the names; null: float32, no prefix.</param>
    /// <exception cref="ArgumentOutOfRangeException">The options' dtype is not a defined value.</exception>
    public void Save(string path, SaveOptions? options = null)
    {
        using var call = _calls.Enter(nameof(Save));
        Parameters.Save(path, options);
    }

    /// <summary>
    /// Loads the parameters from a safetensors file (F32, F16, BF16 or F64) with the names and shapes of <see cref="Parameters"/>:
    /// <see cref="ParameterSet.Load(string, LoadOptions?)"/>. Nothing is changed unless the whole file is valid.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, extra, misshaped or not finite, the file was saved from a network with
    /// another activation, or it is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be read (missing: <see cref="FileNotFoundException"/>; a folder).</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this network.</exception>
    /// <param name="path">The file.</param>
    /// <param name="options">Strict or not, and the prefix of this model in a larger file; null: strict, no prefix. A strict miss names
    /// the near miss the file has; a prefix that matches nothing lists the prefixes present (both <see cref="InvalidDataException"/>).</param>
    /// <returns>The parameters the file lacks and its names that are no parameter: both empty after a strict load.</returns>
    public LoadResult Load(string path, LoadOptions? options = null)
    {
        using var call = _calls.Enter(nameof(Load));
        return Parameters.Load(path, options);
    }

    /// <summary>Frees the network's device workspaces (nothing on the CPU). The <see cref="Device"/> backend stays open.</summary>
    public void Dispose()
    {
        _disposed = true;
        _deviceOps?.Dispose();
    }

    private bool _disposed;

    private void Validate(FloatTensor? x, SequenceTargets targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        targets.Validate(Loss, OutputSize, nameof(targets));
        RequireBatchSizes(nameof(targets), targets.Steps, targets.Batch);
        ValidateInput(x, targets.Steps, targets.Batch);
    }

    private void RequireBatchSizes(string argumentName, int steps, int batch) =>
        ModelCalls.RequireBatchSizes(argumentName, steps, batch, ("I", InputSize), ("H", HiddenSize), ("O", OutputSize));

    private void ValidateInput(FloatTensor? x, int steps, int batch)
    {
        if (InputSize == 0)
        {
            if (x is not null)
                throw new ArgumentException($"x: this network has no external input (I = 0); pass null, got {FloatTensor.FormatShape(x.Shape)}.", nameof(x));
            return;
        }
        if (x is null)
            throw new ArgumentException($"x: expected shape [{steps}, {batch}, {InputSize}] (T and N of the targets), got null.", nameof(x));
        FloatTensor.RequireShape(x, nameof(x), steps, batch, InputSize);
        FloatTensor.RequireFinite(x, nameof(x));
    }
}
