namespace Recurrent.Sequence;

/// <summary>
/// A sequence model with a hidden-to-hidden recurrence (an <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/>
/// stack) trained with teacher forcing; with <see cref="SequenceLoss.SoftmaxCrossEntropy"/> it is a language model:
/// <code>
/// x_t = e(y_{t−1})                       [N, I]   e: row y_{t−1} of the embedding E [O, I] (tokens), or y_{t−1}·E (real values)
/// h_t = recurrent stack(x_t, h_{t−1})    [N, H]
/// o_t = c + h_t·V                        [N, O]   logits or values
/// </code>
/// At t = 0 the fed-back value is the start value (the <see cref="StartToken"/>'s embedding, else zeros); the initial
/// state is zeros. With <see cref="TrainingSchedule.ParallelOverTime"/> the embedding, the output layer and the loss with
/// their gradients run over all T·N rows at once and only the recurrence is sequential, inside the layer's backend (which
/// batches the input projections and weight gradients over time). With token outputs on the CPU the stack reads its
/// inputs straight from the embedding table: on the native backend each of the O rows is projected through W_ih once,
/// instead of each of the T·N uses, and the gates' gradients are summed per token before dW_ih and the embedding's
/// gradient are formed, so with O &lt; T·N those three products cost O rows instead of T·N.
/// Where the stack's backend is an <see cref="IlgpuBackend"/>, the embedding, output layer and loss run on that backend's
/// accelerator too, and the stack is driven through the backend's device-level entry, so the data crosses to the device
/// once per call and nothing at the stack boundary; otherwise they run on the CPU (native GEMM, AVX-512 passes).
/// Parameters (the model's and the stack's) are one <see cref="ParameterSet"/> (<see cref="Parameters"/>) and stay on the
/// host; on a device each call uploads their values and adds the device gradients into the host ones. Thread-safety: not safe; a training step accumulates into shared gradients and reuses
/// the model's workspaces, so a call made while another thread is inside one throws <see cref="InvalidOperationException"/>.
/// Non-finite values: a NaN or ∞ in a parameter, or one that arises inside a pass, propagates as IEEE arithmetic gives it;
/// <see cref="Train"/> never returns a finite loss while the gradients hold NaN or ∞ (it returns NaN then).
/// </summary>
/// <remarks>Lifetime: owned by its creator; it borrows its stack and the stack's backend. <see cref="Dispose"/> frees its device workspaces (nothing on the CPU) and gives the stack its own parameters back; a call after it throws <see cref="ObjectDisposedException"/>. Dispose it before the backend.</remarks>
public sealed class RecurrentSequenceModel : IDisposable
{
    /// <summary>The stack's parameters appear in <see cref="Parameters"/> under this prefix, as a PyTorch module's attribute <c>recurrent</c>'s would.</summary>
    public const string RecurrentPrefix = "recurrent.";

    // embedding, output_weight, output_bias: the engine's indices.
    private readonly Parameter[] _own;
    private readonly int _startToken;
    private readonly RecurrentSequenceEngine _engine;
    private readonly IlgpuMatrixOps? _deviceOps;
    private readonly ModelCalls _calls = new("sequence model");
    private bool _disposed;

    /// <summary>Creates the model around <paramref name="recurrent"/> (whose parameters it trains too), seeded so runs repeat.</summary>
    /// <param name="recurrent">
    /// A unidirectional stack with input size I and hidden size H; a bidirectional one would see the future. Its backend
    /// decides where the model runs: on an <see cref="IlgpuBackend"/>'s accelerator, else on the CPU. Its parameters move
    /// into the model's storage (see <see cref="Parameters"/>) until the model is disposed: a stack belongs to one model at a time.
    /// </param>
    /// <param name="outputSize">O ≥ 1: the vocabulary size for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, else the features of o_t.</param>
    /// <param name="loss">Discrete (softmax cross-entropy) or real-valued (squared error) outputs.</param>
    /// <param name="startToken">The token fed back at t = 0 (discrete outputs only), in [0, O); null feeds zeros.</param>
    /// <param name="seed">Seed of the initialisation: embedding uniform in ±1 (tokens) or ±1/√O (projection), output layer in ±1/√H.</param>
    /// <exception cref="ArgumentException">The stack is bidirectional or belongs to another model that was not disposed, or a start token was given for real-valued outputs.</exception>
    /// <exception cref="InvalidOperationException">A pass of the stack is running on another thread (its parameters cannot move meanwhile).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size or enum value is out of range, the start token is outside the vocabulary, or
    /// the embedding [O, I] or output weight [H, O] would have more elements than one array holds.</exception>
    public RecurrentSequenceModel(RecurrentLayer recurrent, int outputSize, SequenceLoss loss, int? startToken = null, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(recurrent);
        if (recurrent.Config.Bidirectional)
            throw new ArgumentException("recurrent: a bidirectional stack reads the future of the sequence it predicts; expected a unidirectional one.", nameof(recurrent));
        ArgumentOutOfRangeException.ThrowIfLessThan(outputSize, 1);
        if (!Enum.IsDefined(loss)) throw new ArgumentOutOfRangeException(nameof(loss), loss, "expected SoftmaxCrossEntropy or SquaredError");
        if (startToken is not null)
        {
            if (loss != SequenceLoss.SoftmaxCrossEntropy)
                throw new ArgumentException("startToken: only discrete outputs have a start token; real-valued outputs start from zeros. Pass null.", nameof(startToken));
            if ((uint)startToken.Value >= (uint)outputSize)
                throw new ArgumentOutOfRangeException(nameof(startToken), startToken, $"expected a token in [0, {outputSize}).");
        }
        (Recurrent, OutputSize, Loss, _startToken) = (recurrent, outputSize, loss, startToken ?? -1);
        int input = recurrent.Config.InputSize, hidden = recurrent.Config.HiddenSize;
        Sizes.Elements(nameof(outputSize), "embedding [O, I]", ("O", outputSize), ("I", input));
        Sizes.Elements(nameof(outputSize), "output_weight [H, O]", ("H", hidden), ("O", outputSize));
        if (recurrent.Parameters.IsAdopted)
            throw new ArgumentException("recurrent: its parameters belong to another RecurrentSequenceModel, whose storage holds them; dispose that model first (a stack trains in one model at a time).", nameof(recurrent));
        // The model re-homes the stack's parameters into its own flat storage rather than listing two sets, so that an
        // optimizer, a gradient all-reduce or an upload sees one span of every value and one of every gradient (as
        // PyTorch's flatten_parameters and FSDP's flat parameters do); the stack's tensors are rebound, not replaced, so
        // the layer API and this set read and write the same numbers.
        Parameters = new ParameterSet(
            [
                ParameterSet.Entry.Own("embedding", [outputSize, input]),
                ParameterSet.Entry.Adopt(RecurrentPrefix, recurrent.Parameters),
                ParameterSet.Entry.Own("output_weight", [hidden, outputSize]),
                ParameterSet.Entry.Own("output_bias", [outputSize]),
            ],
            new Dictionary<string, string> { [RnnParameters.CellMetadataKey] = recurrent.Config.Cell.ToString() }, "this sequence model");
        _own = [Parameters["embedding"], Parameters["output_weight"], Parameters["output_bias"]];
        var random = new Random(seed);
        float[] bounds = [Discrete ? 1f : 1f / MathF.Sqrt(outputSize), 1f / MathF.Sqrt(hidden), 1f / MathF.Sqrt(hidden)];
        for (int p = 0; p < _own.Length; p++)
        {
            var values = _own[p].Value.Span;
            for (int i = 0; i < values.Length; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * bounds[p]);
        }
        try
        {
            if (recurrent.Backend is IlgpuBackend device)
            {
                _deviceOps = new IlgpuMatrixOps(device.Accelerator);
                _engine = new RecurrentSequenceEngine<ILGPU.ArrayView<float>, ILGPU.ArrayView<int>>(this, _deviceOps, new IlgpuRecurrentStack(recurrent, device));
            }
            else
                _engine = new RecurrentSequenceEngine<Memory<float>, Memory<int>>(this, CpuMatrixOps.Instance, new HostRecurrentStack(recurrent));
        }
        catch
        {
            Parameters.Release();
            throw;
        }
    }

    /// <summary>The recurrent stack; its <see cref="RecurrentLayer.Parameters"/> are trained with the model's own, and are part of <see cref="Parameters"/>.</summary>
    public RecurrentLayer Recurrent { get; }
    /// <summary>O: vocabulary size or output features.</summary>
    public int OutputSize { get; }
    /// <summary>The loss and kind of output.</summary>
    public SequenceLoss Loss { get; }
    /// <summary>The token fed back at t = 0, or null when the start value is zeros.</summary>
    public int? StartToken => _startToken < 0 ? null : _startToken;

    /// <summary>
    /// Every parameter the model trains, in one flat storage: <c>embedding</c> E [O, I] (a token's row, or the projection of
    /// a real-valued y_{t−1}), the recurrent stack's under <see cref="RecurrentPrefix"/> (<c>recurrent.weight_ih_l0</c>, …, in
    /// PyTorch's order), <c>output_weight</c> V [H, O] and <c>output_bias</c> c [O], with their gradients: a PyTorch module
    /// with these attributes loads <see cref="Save"/>'s file. The stack's own set (<see cref="Recurrent"/>'s
    /// <see cref="RecurrentLayer.Parameters"/>) moved into this storage when the model was made: its parameters and tensors
    /// are the same objects, viewing the same numbers (a <see cref="Memory{T}"/> taken from them before is stale). Once the
    /// model is disposed the stack is its own again, and this set refuses work (<see cref="ObjectDisposedException"/>).
    /// </summary>
    public ParameterSet Parameters { get; }

    /// <summary>The operations the embedding, output layer and loss run on, such as <c>native-cpu</c> or <c>ilgpu-cuda</c>.</summary>
    internal string OpsName => _engine.OpsName;

    internal bool Discrete => Loss == SequenceLoss.SoftmaxCrossEntropy;
    internal int InputSize => Recurrent.Config.InputSize;
    internal int HiddenSize => Recurrent.Config.HiddenSize;
    internal int StartTokenOrNone => _startToken;
    /// <summary>embedding, output_weight, output_bias.</summary>
    internal IReadOnlyList<Parameter> Own => _own;

    /// <summary>
    /// One teacher-forced training step: returns the loss (mean over the T·N predictions, or over the Σ lengths real ones
    /// when the targets have lengths) and adds its gradient into the model's and the recurrent stack's parameter
    /// gradients. Both schedules compute the same loss and gradients.
    /// </summary>
    /// <remarks>
    /// With lengths (<see cref="SequenceTargets.Tokens"/>, <see cref="SequenceTargets.Real"/>) sequence n counts over steps
    /// 0 … lengths[n]−1 only: the loss and every gradient are those of the sequences trained one at a time, each truncated
    /// to its length, weighted by their lengths. The parallel schedule runs the stack with the lengths
    /// (<see cref="RecurrentLayer.Forward"/>'s <c>lengths</c>), so on a backend that packs the batch its cost follows the
    /// real tokens (an <see cref="IlgpuBackend"/> packs it on its device, through its device-level entry); the
    /// step-by-step baseline steps all N sequences and masks the loss past each end.
    /// </remarks>
    /// <param name="targets">y: token ids [T, N] or values [T, N, O], matching <see cref="Loss"/>, optionally with lengths; y_{t−1} is the input at step t.</param>
    /// <param name="schedule">Parallel over time (the default) or the step-by-step baseline: the stack advanced one step at a time (its stepper's resident weights: on the host through the public stepper, on ILGPU through a device step run), chained through its states.</param>
    /// <exception cref="ArgumentException">A shape does not match, a value is not finite, or the targets are of the other kind.</exception>
    /// <returns>The mean loss; NaN when a gradient came out NaN or ∞ (see the class remarks).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O), the schedule is unknown, or a [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model, or is replacing its parameters or the stack's.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a device: a launch, copy or allocation failed (the message names the operation and the sizes).</exception>
    public float Train(SequenceTargets targets, TrainingSchedule schedule = TrainingSchedule.ParallelOverTime)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Enum.IsDefined(schedule)) throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "expected ParallelOverTime or StepByStep");
        ArgumentNullException.ThrowIfNull(targets);
        targets.Validate(Loss, OutputSize, nameof(targets));
        RequireBatchSizes(nameof(targets), targets.Steps, targets.Batch);
        using var call = _calls.Enter(nameof(Train));
        using var pass = Parameters.EnterPass();
        float loss = DeviceFailures.Wrap(OnDevice, () => _engine.Train(targets, schedule), () => Describe("training step", targets.Steps, targets.Batch));
        return ModelCalls.LossOrNaN(loss, Parameters);
    }

    private void RequireBatchSizes(string argumentName, int steps, int batch) =>
        ModelCalls.RequireBatchSizes(argumentName, steps, batch, ("I", InputSize), ("H", HiddenSize), ("O", OutputSize));

    /// <summary>
    /// The outputs o [T, N, O] (logits or values) under teacher forcing, as <see cref="Train"/> computes them; with lengths,
    /// zero past each sequence's end.
    /// </summary>
    /// <param name="targets">y: token ids [T, N] or values [T, N, O], optionally with lengths; y_{t−1} is the input at step t.</param>
    /// <exception cref="ArgumentException">As <see cref="Train"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O), or a [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a device: a launch, copy or allocation failed.</exception>
    public FloatTensor TeacherForcedOutputs(SequenceTargets targets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(targets);
        targets.Validate(Loss, OutputSize, nameof(targets));
        RequireBatchSizes(nameof(targets), targets.Steps, targets.Batch);
        using var call = _calls.Enter(nameof(TeacherForcedOutputs));
        using var pass = Parameters.EnterPass();
        var outputs = new FloatTensor(targets.Steps, targets.Batch, OutputSize);
        DeviceFailures.Wrap(OnDevice, () => _engine.TeacherForcedOutputs(targets, outputs.Memory), () => Describe("teacher-forced forward", targets.Steps, targets.Batch));
        return outputs;
    }

    /// <summary>
    /// Free-running generation, one step at a time: step t feeds back the model's own output of step t − 1 (its argmax
    /// token, or its values), the start value at t = 0. It sees no targets.
    /// </summary>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <exception cref="ArgumentException">A size is below 1.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A [T, N, ·] buffer would have more elements than one array holds.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On a device: a launch, copy or allocation failed.</exception>
    public GeneratedSequence Generate(int steps, int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"steps, batch: expected T ≥ 1 and N ≥ 1, got T = {steps}, N = {batch} (an empty sequence).", steps < 1 ? nameof(steps) : nameof(batch));
        RequireBatchSizes(steps < batch ? nameof(batch) : nameof(steps), steps, batch);
        using var call = _calls.Enter(nameof(Generate));
        using var pass = Parameters.EnterPass();
        var outputs = new FloatTensor(steps, batch, OutputSize);
        var tokens = Discrete ? new int[steps * batch] : null;
        DeviceFailures.Wrap(OnDevice, () => _engine.Generate(steps, batch, outputs.Memory, tokens), () => Describe("generation", steps, batch));
        return new GeneratedSequence(outputs, tokens);
    }

    private bool OnDevice => _deviceOps is not null;

    /// <summary>What a failed device call was doing, for <see cref="DeviceFailures"/>.</summary>
    private string Describe(string operation, int steps, int batch) =>
        $"{OpsName}: {operation} of the sequence model T={steps} N={batch} I={InputSize} H={HiddenSize} O={OutputSize}";

    /// <summary>Plain gradient descent on every parameter, the stack's included: <see cref="ParameterSet.SgdStep"/> of <see cref="Parameters"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The learning rate is NaN or infinite.</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model, or running a pass of the stack.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public void SgdStep(float learningRate)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = _calls.Enter(nameof(SgdStep));
        Parameters.SgdStep(learningRate);
    }

    /// <summary>Sets every gradient (the model's and the recurrent stack's) to zero.</summary>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public void ZeroGrad()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = _calls.Enter(nameof(ZeroGrad));
        Parameters.ZeroGrad();
    }

    /// <summary>
    /// Saves every parameter (the stack's under <see cref="RecurrentPrefix"/>) as a safetensors file, recording the stack's
    /// cell: <see cref="ParameterSet.Save(string, SaveOptions?)"/> of <see cref="Parameters"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be written; an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or infinity, or another thread is inside a call of this model or replacing the stack's parameters.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="options">The dtype in the file and a prefix for the names; null: float32, no prefix.</param>
    /// <exception cref="ArgumentOutOfRangeException">The options' dtype is not a defined value.</exception>
    public void Save(string path, SaveOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = _calls.Enter(nameof(Save));
        Parameters.Save(path, options);
    }

    /// <summary>
    /// Loads the parameters from a safetensors file (F32, F16, BF16 or F64) with the names and shapes of <see cref="Parameters"/> (as
    /// <see cref="Save"/> writes it): <see cref="ParameterSet.Load(string, LoadOptions?)"/>. Nothing is changed unless the whole file is valid.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, extra, misshaped or not finite, the file was saved around another
    /// cell, or it is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be read (missing: <see cref="FileNotFoundException"/>; a folder).</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model or running a pass of the stack.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <param name="path">The file.</param>
    /// <param name="options">Strict or not, and the prefix of this model in a larger file; null: strict, no prefix. A strict miss names
    /// the near miss the file has; a prefix that matches nothing lists the prefixes present (both <see cref="InvalidDataException"/>).</param>
    /// <returns>The parameters the file lacks and its names that are no parameter: both empty after a strict load.</returns>
    public LoadResult Load(string path, LoadOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = _calls.Enter(nameof(Load));
        return Parameters.Load(path, options);
    }

    /// <summary>
    /// Frees the model's device workspaces (nothing on the CPU) and gives the stack its parameters back: the stack and its
    /// backend stay usable (also in another model), and <see cref="Parameters"/> refuses further work.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _deviceOps?.Dispose();
        Parameters.Release();
    }
}

/// <summary>What <see cref="RecurrentSequenceModel"/> calls, whatever its buffers are.</summary>
internal abstract class RecurrentSequenceEngine
{
    public abstract string OpsName { get; }
    public abstract float Train(SequenceTargets targets, TrainingSchedule schedule);
    public abstract void TeacherForcedOutputs(SequenceTargets targets, Memory<float> outputs);
    public abstract void Generate(int steps, int batch, Memory<float> outputs, int[]? tokens);
}

/// <summary>
/// The embedding, output layer and loss of <see cref="RecurrentSequenceModel"/> around its stack, written once over
/// <see cref="IMatrixOps{T, TData, TIds}"/> and <see cref="IRecurrentStack{TData}"/>. As in
/// <see cref="OutputRecurrentEngine{T, TData, TIds}"/>, each call binds the host parameters (identity on the host, an
/// upload on a device) and ends by adding the gradients into the host ones; the stack does the same for its own.
/// </summary>
internal sealed class RecurrentSequenceEngine<TData, TIds>(RecurrentSequenceModel model, IMatrixOps<float, TData, TIds> ops, IRecurrentStack<TData> stack)
    : RecurrentSequenceEngine
    where TData : struct where TIds : struct
{
    private const int Embedding = 0, OutputWeight = 1, OutputBias = 2, ParameterCount = 3;
    private readonly TData[] _values = new TData[ParameterCount], _grads = new TData[ParameterCount];
    private readonly TData[] _valueStages = new TData[ParameterCount], _gradStages = new TData[ParameterCount];
    private readonly TeacherForcedTargets<float, TData, TIds> _targets = new(ops, model.Loss, model.OutputSize);
    private TData _input, _output, _outputGradient, _lossSum;

    public override string OpsName => ops.Name;

    private bool Discrete => model.Discrete;
    private int InputSize => model.InputSize;
    private int HiddenSize => model.HiddenSize;
    private int OutputSize => model.OutputSize;

    private void BindParameters(bool withGradients)
    {
        for (int p = 0; p < ParameterCount; p++)
        {
            _values[p] = ops.Upload(model.Own[p].Value.Memory, ref _valueStages[p]);
            if (withGradients) _grads[p] = ops.GradientAccumulator(model.Own[p].Grad.Memory, ref _gradStages[p]);
        }
    }

    private void AddGradientsToHost()
    {
        for (int p = 0; p < ParameterCount; p++) ops.AddToHost(_grads[p], model.Own[p].Grad.Memory);
    }

    /// <summary>
    /// The targets where the operations read them: tokens [T + 1, N] (<see cref="TeacherForcing.StartAndTargets"/>) or
    /// values [T, N, O], marked past each end (see <see cref="TeacherForcedTargets{T, TData, TIds}"/>).
    /// </summary>
    private (TIds Tokens, TData Values) StageTargets(SequenceTargets targets)
    {
        _targets.Stage(targets.TokenIds, targets.Values is null ? default : targets.Values.Memory, targets.Steps, targets.Batch, model.StartTokenOrNone, targets.Padding);
        return (_targets.Tokens, _targets.Values);
    }

    public override float Train(SequenceTargets targets, TrainingSchedule schedule)
    {
        BindParameters(withGradients: true);
        var (tokens, values) = StageTargets(targets);
        float loss = schedule == TrainingSchedule.StepByStep
            ? TrainStepByStep(tokens, values, targets.Steps, targets.Batch)
            : TrainParallel(tokens, values, targets.Steps, targets.Batch, targets.Padding);
        AddGradientsToHost();
        return loss;
    }

    /// <summary>For token outputs, the stack's table input when it has one (see <see cref="ITableInputStack{TData, TIds}"/>), else null.</summary>
    private ITableInputStack<TData, TIds>? TableStack => Discrete ? stack as ITableInputStack<TData, TIds> : null;

    /// <summary>
    /// The stack over every step under teacher forcing: reading its inputs straight from the embedding table where it can
    /// (each of the O rows projected once instead of each of the T·N uses), else over x = the gathered or projected rows.
    /// With <paramref name="lengths"/> the stack runs each sequence to its end only (its output is zero past it), so on a
    /// backend that packs the batch the work follows the real tokens.
    /// </summary>
    private IRecurrentStackPass<TData> TeacherForcedStack(TIds tokens, TData values, int steps, int batch, bool keepForBackward, int[]? lengths)
    {
        int rows = steps * batch;
        if (TableStack is { } table)
            return table.ForwardFromTable(_values[Embedding], OutputSize, ops.SliceIds(tokens, 0, rows), steps, batch, keepForBackward, lengths);
        var x = ops.Workspace(ref _input, rows * InputSize);
        EmbeddingForward(tokens, values, 0, rows, batch, x);
        return stack.Forward(x, steps, batch, null, keepForBackward, lengths);
    }

    private float TrainParallel(TIds tokens, TData values, int steps, int batch, int[]? lengths)
    {
        int rows = steps * batch, width = OutputSize;
        using var pass = TeacherForcedStack(tokens, values, steps, batch, keepForBackward: true, lengths);
        var y = pass.Output;
        var o = ops.Workspace(ref _output, rows * width);
        OutputForward(y, rows, o);
        var lossSum = ZeroLoss();
        // Past an end the loss gives a zero gradient: dy is zero there, and so is every gradient the row would feed.
        _targets.AddLoss(o, batch, 0, rows, lossSum);
        var dy = ops.Workspace(ref _outputGradient, rows * HiddenSize);
        OutputBackward(y, o, rows, dy);
        if (TableStack is { } table)
            table.BackwardFromTable(pass, dy, _grads[Embedding]);
        else
            EmbeddingBackward(tokens, values, stack.Backward(pass, dy, null), 0, rows, batch);
        return ops.ReadScalar(lossSum) * _targets.Scale;
    }

    /// <summary>
    /// The step-by-step baseline: per step the embedding, the stack, the output layer and the loss over N rows, then backward
    /// from t = T−1. The stack steps through <see cref="IRecurrentStack{TData}.BeginSteps"/>, its weights prepared once per call.
    /// </summary>
    private float TrainStepByStep(TIds tokens, TData values, int steps, int batch)
    {
        int input = InputSize, width = OutputSize, ni = batch * input, no = batch * width, nh = batch * HiddenSize;
        var lossSum = ZeroLoss();
        // Every step's input, output gradient and dy keep their own slice: the run keeps step t's input until its backward.
        var x = ops.Workspace(ref _input, steps * ni);
        var dOutput = ops.Workspace(ref _output, steps * no);
        var dy = ops.Workspace(ref _outputGradient, steps * nh);
        var y = new TData[steps];
        using var run = stack.BeginSteps(batch, keepForBackward: true);
        for (int t = 0; t < steps; t++)
        {
            var xt = ops.Slice(x, t * ni, ni);
            EmbeddingForward(tokens, values, t * batch, batch, batch, xt);
            y[t] = run.Step(xt);
            var ot = ops.Slice(dOutput, t * no, no);
            OutputForward(y[t], batch, ot);
            // Sequences past their end keep stepping (the stack runs all N rows), but their loss is masked: a zero gradient.
            _targets.AddLoss(ot, batch, t * batch, batch, lossSum);
        }
        for (int t = steps - 1; t >= 0; t--)
        {
            var dyt = ops.Slice(dy, t * nh, nh);
            OutputBackward(y[t], ops.Slice(dOutput, t * no, no), batch, dyt);
            EmbeddingBackward(tokens, values, run.Backward(dyt), t * batch, batch, batch);
        }
        return ops.ReadScalar(lossSum) * _targets.Scale;
    }

    /// <summary>The loss accumulator [1], zeroed: the losses add into it where they run, and it is read once per step.</summary>
    private TData ZeroLoss()
    {
        var lossSum = ops.Workspace(ref _lossSum, 1);
        ops.Clear(lossSum);
        return lossSum;
    }

    public override void TeacherForcedOutputs(SequenceTargets targets, Memory<float> outputs)
    {
        int steps = targets.Steps, batch = targets.Batch, rows = steps * batch;
        BindParameters(withGradients: false);
        var (tokens, values) = StageTargets(targets);
        using var pass = TeacherForcedStack(tokens, values, steps, batch, keepForBackward: false, targets.Padding);
        var o = ops.Destination(outputs, ref _output);
        OutputForward(pass.Output, rows, o);
        ops.Download(o, outputs);
        TeacherForcing.ClearPastEnds(outputs.Span, steps, batch, OutputSize, targets.Padding);
    }

    public override void Generate(int steps, int batch, Memory<float> outputs, int[]? tokens)
    {
        int width = OutputSize;
        BindParameters(withGradients: false);
        var o = ops.Destination(outputs, ref _output);
        // Tokens laid out as in teacher forcing: row 0 the start token, row t + 1 the token step t emits (written where
        // the operations run before it is read); real values feed back rows of o.
        TIds fedBack = default;
        if (Discrete)
        {
            _targets.Stage(null, default, steps, batch, model.StartTokenOrNone, null);
            fedBack = _targets.Tokens;
        }
        using (var run = stack.BeginSteps(batch, keepForBackward: false))
            for (int t = 0; t < steps; t++)
            {
                // The stack copies or consumes x during the call, so one step-sized buffer serves every step.
                var x = ops.Workspace(ref _input, batch * InputSize);
                EmbeddingForward(fedBack, o, t * batch, batch, batch, x);
                var y = run.Step(x);
                var ot = ops.Slice(o, t * batch * width, batch * width);
                OutputForward(y, batch, ot);
                if (Discrete) ops.ArgMaxRows(ot, width, ops.SliceIds(fedBack, (t + 1) * batch, batch));
            }
        ops.Download(o, outputs);
        if (Discrete) ops.DownloadIds(ops.SliceIds(fedBack, batch, steps * batch), tokens);
    }

    /// <summary>
    /// x [rows, I] for rows [firstRow, firstRow + rows) of the T·N rows: the embedding row of the fed-back token
    /// (<paramref name="tokens"/> [0, T·N)), or the fed-back values (row r − N of <paramref name="fedBackValues"/>)
    /// times the embedding; zeros for a zero start value.
    /// </summary>
    private void EmbeddingForward(TIds tokens, TData fedBackValues, int firstRow, int rows, int batch, TData x)
    {
        int input = InputSize, width = OutputSize;
        if (Discrete)
        {
            ops.Clear(x);
            ops.GatherRowsAdd(_values[Embedding], input, ops.SliceIds(tokens, firstRow, rows), x);
            return;
        }
        // Rows of the first step have the zero start value.
        int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
        if (skipped > 0) ops.Clear(ops.Slice(x, 0, Math.Min(skipped, rows) * input));
        if (fed > 0)
            ops.Gemm(false, false, fed, input, width, 1, ops.Slice(fedBackValues, (firstRow + skipped - batch) * width, fed * width), width,
                _values[Embedding], input, 0, ops.Slice(x, skipped * input, fed * input), input);
    }

    /// <summary>Adds the embedding's gradient from dx [rows, I] of rows [firstRow, firstRow + rows).</summary>
    private void EmbeddingBackward(TIds tokens, TData fedBackValues, TData dx, int firstRow, int rows, int batch)
    {
        int input = InputSize, width = OutputSize;
        if (Discrete)
        {
            ops.ScatterRowsAdd(dx, input, ops.SliceIds(tokens, firstRow, rows), _grads[Embedding]);
            return;
        }
        int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
        if (fed > 0)
            ops.Gemm(true, false, width, input, fed, 1, ops.Slice(fedBackValues, (firstRow + skipped - batch) * width, fed * width), width,
                ops.Slice(dx, skipped * input, fed * input), input, 1, _grads[Embedding], input);
    }

    /// <summary>o = c + y·V over <paramref name="rows"/> rows.</summary>
    private void OutputForward(TData y, int rows, TData o)
    {
        ops.BroadcastRows(_values[OutputBias], o);
        ops.Gemm(false, false, rows, OutputSize, HiddenSize, 1, y, HiddenSize, _values[OutputWeight], OutputSize, 1, o, OutputSize);
    }

    /// <summary>From dO [rows, O]: adds dV and dc, writes dy [rows, H].</summary>
    private void OutputBackward(TData y, TData dOutput, int rows, TData dy)
    {
        int hidden = HiddenSize, width = OutputSize;
        ops.Gemm(true, false, hidden, width, rows, 1, y, hidden, dOutput, width, 1, _grads[OutputWeight], width);
        ops.AddColumnSums(dOutput, width, _grads[OutputBias]);
        ops.Gemm(false, true, rows, hidden, width, 1, dOutput, width, _values[OutputWeight], width, 0, dy, hidden);
    }
}
