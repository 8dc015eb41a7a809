using Recurrent.Kernels.Cpu;

namespace Recurrent;

/// <summary>
/// The state of a unidirectional stack between two steps of a <see cref="RecurrentStepper"/>: every layer's hidden state
/// and, for LSTM, cell state. Made by <see cref="RecurrentStepper.InitialState"/> and returned by
/// <see cref="RecurrentStepper.Step(FloatTensor, RecurrentStepState)"/>; usable only with the stepper that made it. A step never changes the state it is
/// given, so one state may be stepped several ways (beam search, sampling several continuations).
/// </summary>
/// <remarks>Thread-safety: never changed after it is made, so several threads may step from one state at once. Lifetime: managed memory only; valid as long as its stepper is not disposed.</remarks>
public sealed class RecurrentStepState
{
    internal RecurrentStepState(RecurrentStepper owner, FloatTensor hidden, FloatTensor? cell) => (Owner, Hidden, Cell) = (owner, hidden, cell);

    /// <summary>h [L, N, H]: layer l's hidden state in slice l. Its values may be changed between steps (to reset a row); its shape is fixed.</summary>
    public FloatTensor Hidden { get; }
    /// <summary>c [L, N, H] for LSTM, else null.</summary>
    public FloatTensor? Cell { get; }
    /// <summary>N.</summary>
    public int Batch => Hidden.Shape[1];

    internal RecurrentStepper Owner { get; }
}

/// <summary>
/// One step of a <see cref="RecurrentStepper"/> run by <see cref="RecurrentStepper.Step(FloatTensor, RecurrentStepState, bool)"/>: the
/// output, the next state and, when asked for, what <see cref="RecurrentStepper.Backward"/> needs (the step's tape). Disposing
/// frees the tape (device or native memory on some backends; managed memory on the native one). Thread-safety: not safe; back-propagate
/// and dispose it from one thread at a time.
/// </summary>
/// <remarks>Lifetime: owned by the caller of the step; dispose it once its backward has run (or when no backward will); a backward after disposal is refused. Its tape must not outlive the stepper.</remarks>
public sealed class RecurrentStepResult : IDisposable
{
    internal RecurrentStepResult(RecurrentStepper owner, int batch, FloatTensor output, RecurrentStepState state, object? tape) =>
        (Owner, Batch, Output, State, Tape) = (owner, batch, output, state, tape);

    /// <summary>Output [N, H]: the top layer's new hidden state.</summary>
    public FloatTensor Output { get; }
    /// <summary>The state after the step, to step on from.</summary>
    public RecurrentStepState State { get; }
    /// <summary>Whether <see cref="RecurrentStepper.Backward"/> can run from this step (it kept its tape, and was not disposed).</summary>
    public bool CanBackward => Tape is not null;

    internal RecurrentStepper Owner { get; }
    internal int Batch { get; }
    /// <summary>The stepper's own record of the step: see each stepper.</summary>
    internal object? Tape { get; private set; }

    /// <summary>Frees what the step kept for backward. Safe to call more than once.</summary>
    public void Dispose()
    {
        (Tape as IDisposable)?.Dispose();
        Tape = null;
    }
}

/// <summary>Gradients of one step's backward with respect to the step's input and the state it started from.</summary>
/// <remarks>Thread-safety: an immutable record holding new tensors that belong to the caller (see <see cref="FloatTensor"/>). Lifetime: managed memory only; nothing to dispose.</remarks>
/// <param name="Input">dx [N, I].</param>
/// <param name="Hidden">dh [L, N, H]: the gradient of the state's h; pass it to the step before's backward as its dh.</param>
/// <param name="Cell">dc [L, N, H] for LSTM, else null.</param>
public sealed record RecurrentStepGradients(FloatTensor Input, FloatTensor Hidden, FloatTensor? Cell);

/// <summary>
/// Advances a unidirectional <see cref="RecurrentLayer"/> stack one time step at a time, for autoregressive use
/// (generation, where step t's input depends on step t − 1's output) and for training schedules that decide each step's
/// input as they go (step-by-step teacher forcing, scheduled sampling): <see cref="Step(FloatTensor, RecurrentStepState, bool)"/>
/// with keepForBackward keeps the step's tape, and <see cref="Backward"/> back-propagates it, from the last step to the
/// first. Made by <see cref="RecurrentLayer.CreateStepper"/>. Letters: L layers, N batch, I input features, H hidden features.
/// </summary>
/// <remarks>
/// <para>On the native CPU backend (<see cref="NativeCpuBackend"/>) the stepper packs every layer's weights once, when it is
/// made, and keeps them resident in native memory: a step costs its two matrix products and the cell's pointwise kernel
/// per layer, where a whole-sequence pass with T = 1 re-packs W_hh each time; a backward step likewise its products and the
/// cell's backward kernel (the whole-sequence backward's own step), with W_ih and W_hh packed for backward once too. On
/// <see cref="IlgpuBackend"/> it uploads the parameters once and keeps them on the device; each step uploads x and the state,
/// runs the device stack with T = 1 and downloads the output and the new state, its tape staying on the device. On other
/// backends (the reference) each step is a whole-sequence pass with T = 1, and each backward step that pass's backward: the
/// same results, with no resident weights.</para>
/// <para>Gradients: <see cref="Backward"/> adds the parameter gradients into the layer's <see cref="Parameter.Grad"/>, as
/// <see cref="RecurrentLayer.Backward"/> does (one backward at a time per layer, under the same lock); back-propagating
/// every step of a run from the last to the first, each given the step after's <see cref="RecurrentStepGradients.Hidden"/>
/// (and <see cref="RecurrentStepGradients.Cell"/>), gives what one whole-sequence backward gives.</para>
/// <para>Resident weights are never silently stale: the stepper records the parameters' version when it is made, and
/// its steps and backward steps throw <see cref="InvalidOperationException"/> once they were replaced (<see cref="RecurrentLayer.Load"/>,
/// <see cref="RnnParameters.Reset"/>, a sequence model's SGD step); make a new stepper then. Direct writes into a
/// parameter's <c>Value.Span</c> do not change the version and are not seen by a native or ILGPU stepper.</para>
/// <para>Thread-safety: steps may run on several threads at once, each with its own states.</para>
/// <para>Lifetime: owned by the caller of <see cref="RecurrentLayer.CreateStepper"/>; it borrows its layer and backend. <see cref="Dispose"/> frees the resident weights (native memory on the native backend, device buffers on ILGPU); a call after it throws <see cref="ObjectDisposedException"/>. Dispose it before the backend.</para>
/// </remarks>
public abstract class RecurrentStepper : IDisposable
{
    private readonly int _version;
    private volatile bool _disposed;

    private protected RecurrentStepper(RecurrentLayer layer, int version, bool training) => (Layer, _version, Training) = (layer, version, training);

    /// <summary>The layer this stepper advances.</summary>
    public RecurrentLayer Layer { get; }

    /// <summary>
    /// Whether the stepper was made for training (<see cref="RecurrentLayer.CreateStepper"/> with training): only then may steps
    /// keep their tapes for <see cref="Backward"/>. A native stepper then holds the weights packed for backward too.
    /// </summary>
    public bool Training { get; }

    /// <summary>Whether the weights are resident (packed once on the native CPU backend, uploaded once on ILGPU) rather than passed to a T = 1 pass per step.</summary>
    public abstract bool HasResidentWeights { get; }

    private RnnConfig Config => Layer.Config;

    /// <summary>A state of <paramref name="batch"/> rows to start from: copies of <paramref name="h0"/> and <paramref name="c0"/>, zeros where null.</summary>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="h0">Hidden state [L, N, H]; zeros when null.</param>
    /// <param name="c0">Cell state [L, N, H] (LSTM only); zeros when null.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batch"/> is below 1.</exception>
    /// <exception cref="ArgumentException">A shape does not match, <paramref name="c0"/> was given for a cell without a cell state, or a value is NaN or ∞.</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    public RecurrentStepState InitialState(int batch, FloatTensor? h0 = null, FloatTensor? c0 = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        int[] shape = Config.StateShape(batch);
        bool hasCell = Config.Cell.HasCellState();
        if (h0 is not null)
        {
            FloatTensor.RequireShape(h0, nameof(h0), shape);
            FloatTensor.RequireFinite(h0, nameof(h0));
        }
        if (c0 is not null)
        {
            if (!hasCell) throw new ArgumentException($"c0: a {Config.Cell} layer has no cell state; pass null.", nameof(c0));
            FloatTensor.RequireShape(c0, nameof(c0), shape);
            FloatTensor.RequireFinite(c0, nameof(c0));
        }
        return new RecurrentStepState(this, h0?.Clone() ?? new FloatTensor(shape), hasCell ? c0?.Clone() ?? new FloatTensor(shape) : null);
    }

    /// <summary>Runs every layer one step: from <paramref name="state"/> and the input <paramref name="xt"/>, the top layer's output and the next state.</summary>
    /// <param name="xt">Input of this step [N, I].</param>
    /// <param name="state">The state after the step before, from this stepper (<see cref="InitialState"/> or an earlier <see cref="Step(FloatTensor, RecurrentStepState)"/>); not changed.</param>
    /// <returns>Output [N, H] (the top layer's new hidden state) and the new state.</returns>
    /// <exception cref="ArgumentException"><paramref name="xt"/> is not [N, I] or holds NaN or ∞; <paramref name="state"/> comes from another
    /// stepper or has another N than <paramref name="xt"/>.</exception>
    /// <exception cref="InvalidOperationException">The layer's parameters were replaced since this stepper was made, or are being replaced on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    public (FloatTensor Output, RecurrentStepState State) Step(FloatTensor xt, RecurrentStepState state)
    {
        var step = Step(xt, state, keepForBackward: false);
        return (step.Output, step.State);
    }

    /// <summary>
    /// <see cref="Step(FloatTensor, RecurrentStepState)"/>, keeping what <see cref="Backward"/> needs when <paramref name="keepForBackward"/>:
    /// the step's own copies, so changing <paramref name="xt"/> or <paramref name="state"/> afterwards does not change what backward computes.
    /// </summary>
    /// <param name="xt">Input of this step [N, I].</param>
    /// <param name="state">The state after the step before, from this stepper; not changed.</param>
    /// <param name="keepForBackward">Keep the step's tape for <see cref="Backward"/> (per layer about as much as a whole-sequence
    /// training pass keeps per step, plus a copy of the state it started from).</param>
    /// <returns>The output [N, H], the new state and, with <paramref name="keepForBackward"/>, the tape; dispose it once back-propagated.</returns>
    /// <exception cref="ArgumentException">As <see cref="Step(FloatTensor, RecurrentStepState)"/>.</exception>
    /// <exception cref="InvalidOperationException">As <see cref="Step(FloatTensor, RecurrentStepState)"/>; or <paramref name="keepForBackward"/> on a
    /// stepper not made for training (<see cref="Training"/>).</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    public RecurrentStepResult Step(FloatTensor xt, RecurrentStepState state, bool keepForBackward)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(xt);
        ArgumentNullException.ThrowIfNull(state);
        if (xt.Rank != 2 || xt.Shape[0] < 1 || xt.Shape[1] != Config.InputSize)
            throw new ArgumentException($"xt: expected shape [N, {Config.InputSize}] with N ≥ 1, got {FloatTensor.FormatShape(xt.Shape)}.", nameof(xt));
        RequireOwn(state.Owner, nameof(state), "state", "states");
        if (state.Batch != xt.Shape[0])
            throw new ArgumentException($"state: it holds {state.Batch} rows (N = {state.Batch}) but xt has {xt.Shape[0]}.", nameof(state));
        FloatTensor.RequireFinite(xt, nameof(xt));
        if (keepForBackward && !Training)
            throw new InvalidOperationException("Step: keepForBackward needs a stepper made for training (CreateStepper(training: true)), which also packs the weights backward reads; this one was made for inference.");
        return StepUnchecked(xt, state, keepForBackward, inputIsPrivate: false);
    }

    /// <summary>
    /// <see cref="Step(FloatTensor, RecurrentStepState, bool)"/> for callers that validated: x [N, I], a state of this stepper with N rows.
    /// Non-finite values propagate. <paramref name="inputIsPrivate"/>: no one changes x before the step's backward, so it need not be copied.
    /// </summary>
    internal RecurrentStepResult StepUnchecked(FloatTensor x, RecurrentStepState state, bool keepForBackward, bool inputIsPrivate)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var pass = EnterCurrentPass();
        return StepCore(x, state, keepForBackward, inputIsPrivate);
    }

    /// <summary>
    /// Back-propagates one step run with keepForBackward: from the gradients of its output and of the state it produced, the
    /// gradients of its input and of the state it started from; adds the parameter gradients into the layer's
    /// <see cref="Parameter.Grad"/>. Back-propagate a run's steps from the last to the first, passing each result's
    /// <see cref="RecurrentStepGradients.Hidden"/> and <see cref="RecurrentStepGradients.Cell"/> to the step before as
    /// <paramref name="dh"/> and <paramref name="dc"/>. A step may be back-propagated again (its gradients then add again).
    /// </summary>
    /// <param name="step">A step of this stepper, run with keepForBackward and not disposed.</param>
    /// <param name="dOutput">Gradient of the step's output [N, H]; zeros when null.</param>
    /// <param name="dh">Gradient of the new state's h [L, N, H] (from the step after); zeros when null. Its top slice adds to
    /// <paramref name="dOutput"/>, as the output is the top layer's h.</param>
    /// <param name="dc">Gradient of the new state's c [L, N, H] (LSTM only); zeros when null.</param>
    /// <returns>dx [N, I], and dh (and dc) [L, N, H] of the state the step started from.</returns>
    /// <exception cref="ArgumentException"><paramref name="step"/> comes from another stepper; a shape does not match (the message names
    /// the argument and the expected shape); a gradient holds NaN or ∞; <paramref name="dc"/> was given for a cell without a cell state.</exception>
    /// <exception cref="InvalidOperationException">The step kept nothing for backward, or was disposed; the layer's parameters were replaced
    /// since this stepper was made, or are being replaced on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    public RecurrentStepGradients Backward(RecurrentStepResult step, FloatTensor? dOutput, FloatTensor? dh = null, FloatTensor? dc = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(step);
        RequireOwn(step.Owner, nameof(step), "step", "steps");
        int batch = step.Batch;
        int[] stateShape = Config.StateShape(batch);
        if (dOutput is not null) FloatTensor.RequireShape(dOutput, nameof(dOutput), batch, Config.HiddenSize);
        if (dh is not null) FloatTensor.RequireShape(dh, nameof(dh), stateShape);
        if (dc is not null)
        {
            if (!Config.Cell.HasCellState()) throw new ArgumentException($"dc: a {Config.Cell} layer has no cell state; pass null.", nameof(dc));
            FloatTensor.RequireShape(dc, nameof(dc), stateShape);
        }
        if (dOutput is not null) FloatTensor.RequireFinite(dOutput, nameof(dOutput));
        if (dh is not null) FloatTensor.RequireFinite(dh, nameof(dh));
        if (dc is not null) FloatTensor.RequireFinite(dc, nameof(dc));
        return BackwardUnchecked(step, dOutput ?? new FloatTensor(batch, Config.HiddenSize), dh, dc);
    }

    /// <summary>
    /// <see cref="Backward"/> for callers that validated: a step of this stepper, dOutput [N, H], dh and dc [L, N, H] or null
    /// (zeros). Non-finite values propagate.
    /// </summary>
    internal RecurrentStepGradients BackwardUnchecked(RecurrentStepResult step, FloatTensor dOutput, FloatTensor? dh, FloatTensor? dc)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var tape = step.Tape ?? throw new InvalidOperationException(
            "step: it kept nothing for backward (run Step with keepForBackward: true), or it was disposed.");
        int[] stateShape = Config.StateShape(step.Batch);
        // The state gradients are overwritten in place, layer by layer, from the step after's (or zeros).
        var dHidden = dh?.Clone() ?? new FloatTensor(stateShape);
        var dCell = Config.Cell.HasCellState() ? dc?.Clone() ?? new FloatTensor(stateShape) : null;
        using var pass = EnterCurrentPass();
        var dx = BackwardCore(tape, step.Batch, dOutput, dHidden, dCell);
        return new RecurrentStepGradients(dx, dHidden, dCell);
    }

    /// <summary>Marks a pass of the layer in flight, after checking that its parameters are still those this stepper was made with.</summary>
    private ParameterSet.PassScope EnterCurrentPass()
    {
        var pass = Layer.Parameters.EnterPass();
        if (Layer.Parameters.Version != _version)
        {
            pass.Dispose();
            throw new InvalidOperationException("stepper: the layer's parameters were replaced (Load, Reset or an SGD step) after this stepper was made; its weights would be stale. Create a new stepper.");
        }
        return pass;
    }

    /// <summary>Refuses a state or step (<paramref name="what"/>) that another stepper made.</summary>
    private void RequireOwn(RecurrentStepper owner, string argumentName, string what, string plural)
    {
        if (!ReferenceEquals(owner, this))
            throw new ArgumentException(ReferenceEquals(owner.Layer, Layer)
                ? $"{what}: it comes from another stepper of this layer; use {plural} of the stepper they were made by."
                : $"{what}: it comes from a stepper of another layer.", argumentName);
    }

    /// <summary>One step inside a pass: x [N, I] (the caller's tensor: copy it when keeping it and not <paramref name="inputIsPrivate"/>).</summary>
    private protected abstract RecurrentStepResult StepCore(FloatTensor x, RecurrentStepState state, bool keepForBackward, bool inputIsPrivate);

    /// <summary>
    /// One step's backward inside a pass: from <paramref name="tape"/> (what <see cref="StepCore"/> kept) and dOutput [N, H], with
    /// dh (and dc) [L, N, H] holding the gradients of the new state on entry and receiving those of the state the step started
    /// from; adds the parameter gradients. Returns dx [N, I].
    /// </summary>
    private protected abstract FloatTensor BackwardCore(object tape, int batch, FloatTensor dOutput, FloatTensor dh, FloatTensor? dc);

    private protected RecurrentStepResult NewResult(int batch, FloatTensor output, FloatTensor hidden, FloatTensor? cell, object? tape) =>
        new(this, batch, output, new RecurrentStepState(this, hidden, cell), tape);

    /// <summary>Frees the resident weights. Safe to call more than once; a step after it throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    private protected virtual void Release() { }
}

/// <summary>The native CPU backend's stepper: one resident-weights handle per layer (<see cref="NativeRnnStep"/>), chained here.</summary>
internal sealed class NativeRecurrentStepper : RecurrentStepper
{
    /// <summary>
    /// What a native training step keeps: layer 0's input (the caller's array when it is private, else a copy) and each layer's
    /// native tape [<see cref="NativeRnnStep.TapeLength"/>(N)], whose second N·H floats (h_out) are the next layer's input.
    /// </summary>
    private sealed record Tape(ReadOnlyMemory<float> Input, float[][] Layers);

    private readonly NativeRnnStep[] _layers;

    private NativeRecurrentStepper(RecurrentLayer layer, int version, NativeRnnStep[] layers, bool training) : base(layer, version, training) => _layers = layers;

    public static NativeRecurrentStepper Create(RecurrentLayer layer, bool fused, bool training)
    {
        var config = layer.Config;
        var p = layer.Parameters;
        // Inside a pass, so no Load or Reset changes the values between packing and reading the version.
        using var pass = p.EnterPass();
        var layers = new NativeRnnStep[config.NumLayers];
        try
        {
            for (int l = 0; l < config.NumLayers; l++)
                layers[l] = NativeRnnStep.Create(config.Cell, fused, config.LayerInputSize(l), config.HiddenSize,
                    p[l, 0, ParameterSpec.WeightIH].Value.Span, p[l, 0, ParameterSpec.WeightHH].Value.Span,
                    p[l, 0, ParameterSpec.BiasIH].Value.Span, p[l, 0, ParameterSpec.BiasHH].Value.Span, training, Own(p, l, q => q.Value.Memory));
        }
        catch
        {
            foreach (var made in layers) made?.Dispose();
            throw;
        }
        return new NativeRecurrentStepper(layer, p.Version, layers, training);
    }

    public override bool HasResidentWeights => true;

    private protected override RecurrentStepResult StepCore(FloatTensor x, RecurrentStepState state, bool keepForBackward, bool inputIsPrivate)
    {
        var config = Layer.Config;
        int batch = x.Shape[0], hidden = config.HiddenSize, nh = batch * hidden;
        int[] shape = config.StateShape(batch);
        var h = new FloatTensor(shape);
        var c = state.Cell is null ? null : new FloatTensor(shape);
        // Uninitialised: the native step writes every element of its tape.
        var tapes = keepForBackward ? Array.ConvertAll(_layers, layer => GC.AllocateUninitializedArray<float>(layer.TapeLength(batch))) : null;
        ReadOnlySpan<float> input = x.Span;
        for (int l = 0; l < _layers.Length; l++)
        {
            var hOut = h.Span.Slice(l * nh, nh);
            _layers[l].Forward(batch, input, state.Hidden.Span.Slice(l * nh, nh), state.Cell is null ? default : state.Cell.Span.Slice(l * nh, nh),
                hOut, c is null ? default : c.Span.Slice(l * nh, nh), tapes is null ? default : tapes[l]);
            input = hOut;
        }
        var output = new FloatTensor(batch, hidden);
        input.CopyTo(output.Span);
        var tape = tapes is null ? null : new Tape(inputIsPrivate ? x.Memory : x.ToArray(), tapes);
        return NewResult(batch, output, h, c, tape);
    }

    private protected override FloatTensor BackwardCore(object tape, int batch, FloatTensor dOutput, FloatTensor dh, FloatTensor? dc)
    {
        var kept = (Tape)tape;
        var config = Layer.Config;
        var p = Layer.Parameters;
        int nh = batch * config.HiddenSize;
        var dx = new FloatTensor(batch, config.InputSize);
        // The gradient of each layer's output: the caller's for the top layer, the layer above's dx for the others. Layer
        // l ≥ 1 writes its dx into between[l % 2] while it reads its dy from the other.
        float[][] between = _layers.Length > 1 ? [new float[nh], new float[nh]] : [];
        // The layer's native steps add into Parameter.Grad with plain +=; one backward at a time, as RecurrentLayer.Backward.
        lock (p.GradientLock)
            for (int l = _layers.Length - 1; l >= 0; l--)
            {
                ReadOnlySpan<float> input = l == 0 ? kept.Input.Span : kept.Layers[l - 1].AsSpan(nh, nh);
                ReadOnlySpan<float> dy = l == _layers.Length - 1 ? dOutput.Span : between[(l + 1) % 2];
                Span<float> dInput = l == 0 ? dx.Span : between[l % 2];
                var dhLayer = dh.Span.Slice(l * nh, nh);
                var dcLayer = dc is null ? default : dc.Span.Slice(l * nh, nh);
                _layers[l].Backward(batch, input, kept.Layers[l], dy, dhLayer, dcLayer, dInput, dhLayer, dcLayer,
                    p[l, 0, ParameterSpec.WeightIH].Grad.Span, p[l, 0, ParameterSpec.WeightHH].Grad.Span,
                    p[l, 0, ParameterSpec.BiasIH].Grad.Span, p[l, 0, ParameterSpec.BiasHH].Grad.Span, Own(p, l, q => q.Grad.Memory));
            }
        return dx;
    }

    // The cell's own parameters of layer l (or their gradients), after the four every cell has, in its definition's order.
    private static Memory<float>[] Own(RnnParameters p, int l, Func<Parameter, Memory<float>> part)
    {
        int count = p.Config.Definition.Parameters.Count - ParameterSpec.RnnBase.Count;
        if (count == 0) return [];
        var own = new Memory<float>[count];
        for (int k = 0; k < count; k++) own[k] = part(p[l, 0, ParameterSpec.RnnBase.Count + k]);
        return own;
    }

    private protected override void Release()
    {
        foreach (var layer in _layers) layer.Dispose();
    }
}

/// <summary>
/// The stepper of a backend without one of its own (<see cref="IStepperFactory"/>): each step is the layer's whole-sequence
/// pass with T = 1 (no resident weights), and each backward step that pass's backward.
/// </summary>
internal sealed class SequencePassStepper(RecurrentLayer layer, bool training) : RecurrentStepper(layer, layer.Parameters.Version, training)
{
    public override bool HasResidentWeights => false;

    private protected override RecurrentStepResult StepCore(FloatTensor x, RecurrentStepState state, bool keepForBackward, bool inputIsPrivate)
    {
        var config = Layer.Config;
        int batch = x.Shape[0];
        // Without backward the pass reads x during the call only, so it is private for it.
        var result = Layer.Run(x.Reshape(1, batch, config.InputSize), state.Hidden, state.Cell, keepForBackward, inputIsPrivate || !keepForBackward);
        if (!keepForBackward) result.Dispose();
        return NewResult(batch, result.Output.Reshape(batch, config.HiddenSize), result.HiddenState, result.CellState, keepForBackward ? result : null);
    }

    private protected override FloatTensor BackwardCore(object tape, int batch, FloatTensor dOutput, FloatTensor dh, FloatTensor? dc)
    {
        var forward = (RnnForwardResult)tape;
        var config = Layer.Config;
        var saved = forward.Tape ?? throw new InvalidOperationException("step: its tape was disposed.");
        var gradients = Layer.BackwardUnchecked(forward, saved, dOutput.Reshape(1, batch, config.HiddenSize), dh, dc);
        gradients.InitialHidden.Span.CopyTo(dh.Span);
        gradients.InitialCell?.Span.CopyTo(dc!.Span);
        return gradients.Input.Reshape(batch, config.InputSize);
    }
}
