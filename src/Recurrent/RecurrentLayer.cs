namespace Recurrent;

/// <summary>
/// The result of <see cref="RecurrentLayer.Forward"/>: outputs, final states and, when asked for, what backward needs.
/// Thread-safety: not safe; back-propagate and dispose it from one thread at a time.
/// </summary>
/// <remarks>Lifetime: owned by the caller of the forward pass; <see cref="Dispose"/> frees the pass's tape (native memory on the native backend, device buffers on ILGPU), after which <see cref="RecurrentLayer.Backward"/> refuses it. The output tensors are managed and stay valid after disposal.</remarks>
public sealed class RnnForwardResult : IDisposable
{
    /// <summary>Made while the pass is still in flight, so no replacement of the parameters slips in before the version is read.</summary>
    internal RnnForwardResult(RecurrentLayer layer, FloatTensor output, FloatTensor hidden, FloatTensor? cell, IRnnTape? tape, RecurrentLayer.TableRun? table = null,
        int? parameterVersion = null, int[]? lengths = null)
    {
        (Layer, Output, HiddenState, CellState, Tape, Table, Lengths) = (layer, output, hidden, cell, tape, table, lengths);
        ParameterVersion = parameterVersion ?? layer.Parameters.Version;
    }

    /// <summary>y [T, N, D·H]: the last layer's hidden state at every step, forward direction first.</summary>
    public FloatTensor Output { get; }
    /// <summary>hN [L·D, N, H].</summary>
    public FloatTensor HiddenState { get; }
    /// <summary>cN [L·D, N, H] for LSTM, else null.</summary>
    public FloatTensor? CellState { get; }
    /// <summary>The per-sequence lengths [N] the pass ran with (its own copy), or null when every sequence ran all T steps.</summary>
    public IReadOnlyList<int>? Lengths { get; }
    /// <summary>Whether <see cref="RecurrentLayer.Backward"/> can run from this result.</summary>
    public bool CanBackward => Tape is not null;

    internal RecurrentLayer Layer { get; }
    internal IRnnTape? Tape { get; private set; }
    /// <summary>Set when the input came from a table (<see cref="RecurrentLayer.ForwardFromTable"/>), null for dense input.</summary>
    internal RecurrentLayer.TableRun? Table { get; }
    /// <summary>The parameters' <see cref="ParameterSet.Version"/> the pass ran with: backward refuses to run with others.</summary>
    internal int ParameterVersion { get; }

    /// <summary>Frees what the forward pass kept for backward.</summary>
    public void Dispose()
    {
        Tape?.Dispose();
        Tape = null;
    }
}

/// <summary>Gradients of a backward pass with respect to the inputs of the forward pass.</summary>
/// <remarks>Thread-safety: an immutable record holding new tensors that belong to the caller (see <see cref="FloatTensor"/>). Lifetime: managed memory only; nothing to dispose.</remarks>
/// <param name="Input">dx [T, N, I].</param>
/// <param name="InitialHidden">dh0 [L·D, N, H].</param>
/// <param name="InitialCell">dc0 [L·D, N, H] for LSTM, else null.</param>
public sealed record RnnInputGradients(FloatTensor Input, FloatTensor InitialHidden, FloatTensor? InitialCell);

/// <summary>Gradients of a backward pass through <see cref="RecurrentLayer.ForwardFromTable"/> with respect to the initial state (the table's gradient is added into the caller's tensor).</summary>
/// <remarks>Thread-safety: an immutable record holding new tensors that belong to the caller (see <see cref="FloatTensor"/>). Lifetime: managed memory only; nothing to dispose.</remarks>
/// <param name="InitialHidden">dh0 [L·D, N, H].</param>
/// <param name="InitialCell">dc0 [L·D, N, H] for LSTM, else null.</param>
public sealed record RnnStateGradients(FloatTensor InitialHidden, FloatTensor? InitialCell);

/// <summary>
/// A stack of recurrent layers with PyTorch's parameters, shapes and semantics (sequence first).
/// Compute runs on the <see cref="IRnnBackend"/> chosen at construction: by default the native CPU library
/// (<see cref="NativeCpuBackend"/>), optionally the reference (<see cref="ReferenceBackend.Instance"/>) or another backend.
/// Thread-safety: forward and backward passes may run on several threads at once (concurrent backward passes add up
/// to the sum of their gradients); what replaces the parameters is refused while a pass runs; see <see cref="RnnParameters"/>.
/// </summary>
/// <remarks>Lifetime: not IDisposable: a layer holds managed memory only (its parameters); native or device memory lives in the results of training forward passes (<see cref="RnnForwardResult"/>), in steppers and in the backend, each disposed by its own owner. The layer borrows its backend.</remarks>
public abstract class RecurrentLayer
{
    /// <summary>Creates the layer with parameters initialised as PyTorch does (uniform in ±1/√H).</summary>
    /// <param name="config">Cell and sizes.</param>
    /// <param name="backend">Where compute runs; when null, the native CPU library with fused kernels
    /// (<see cref="NativeCpuBackend"/>). Pass <see cref="ReferenceBackend.Instance"/> for the double-precision reference.</param>
    /// <param name="seed">Seed of the initialisation; a fixed default so runs repeat.</param>
    protected RecurrentLayer(RnnConfig config, IRnnBackend? backend, int seed)
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        Backend = backend ?? NativeCpuBackend.Default;
        Parameters = new RnnParameters(config);
        Parameters.Reset(seed);
    }

    /// <summary>
    /// The public layer class of <paramref name="config"/>'s cell (<see cref="Lstm"/>, <see cref="Gru"/> or
    /// <see cref="ElmanRnn"/>) with its sizes, for code that holds a configuration (a file's, an importer's) rather than a
    /// choice of class.
    /// </summary>
    /// <param name="config">Cell and sizes.</param>
    /// <param name="backend">As the constructors take it; null for the native CPU library.</param>
    /// <param name="seed">Seed of the initialisation.</param>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The configuration's cell has no layer class.</exception>
    public static RecurrentLayer Create(RnnConfig config, IRnnBackend? backend = null, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Cell switch
        {
            CellKind.Lstm => new Lstm(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, backend, seed),
            CellKind.GruResetAfter => new Gru(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, GruVariant.ResetAfter, backend, seed),
            CellKind.GruResetBefore => new Gru(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, GruVariant.ResetBefore, backend, seed),
            CellKind.RnnTanh => new ElmanRnn(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, RnnActivation.Tanh, backend, seed),
            CellKind.RnnRelu => new ElmanRnn(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, RnnActivation.Relu, backend, seed),
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Cell, "a cell with no layer class"),
        };
    }

    /// <summary>Cell and sizes.</summary>
    public RnnConfig Config { get; }
    /// <summary>Where compute runs.</summary>
    public IRnnBackend Backend { get; }
    /// <summary>Parameters and their gradients, named as PyTorch names them.</summary>
    public RnnParameters Parameters { get; }

    /// <summary>Runs the stack over a sequence.</summary>
    /// <param name="x">Input [T, N, I], T ≥ 1, N ≥ 1.</param>
    /// <param name="h0">Initial hidden state [L·D, N, H]; zeros when null.</param>
    /// <param name="c0">Initial cell state [L·D, N, H] (LSTM only); zeros when null.</param>
    /// <param name="keepForBackward">Keep what <see cref="Backward"/> needs. Without it, inference keeps O(N·H) per layer and nothing per step.
    /// What is kept is the pass's own: changing x, h0 or c0 after Forward returns does not change what Backward computes.</param>
    /// <param name="lengths">Per-sequence lengths [N] of a padded batch, each in [1, T], in any order (not necessarily sorted); null
    /// when every sequence runs all T steps. As PyTorch's <c>pack_padded_sequence(x, lengths, enforce_sorted=False)</c> → RNN →
    /// <c>pad_packed_sequence(total_length=T)</c> (cuDNN's packed layout with sequence lengths): sequence n runs over
    /// x[0 … lengths[n]−1, n] alone, y is zero past its end, hN and cN hold its state at its own end, and the reverse
    /// direction starts at its own last step. x past a sequence's end is not read (it may hold anything finite). At step t
    /// only the sequences still running are computed, so the work is proportional to the real tokens.
    /// <see cref="Backward"/> ignores dy past a sequence's end and gives zero dx there.</param>
    /// <remarks>
    /// Non-finite inputs are refused, but parameters are not checked: a NaN or ∞ in a parameter, or one that arises inside
    /// the pass (a product that overflows), propagates as IEEE arithmetic gives it, on every backend, as in PyTorch and the
    /// reference; the outputs then hold NaN or ∞ where the arithmetic puts them. Thread-safety: see <see cref="RnnParameters"/>.
    /// </remarks>
    /// <exception cref="ArgumentException">A shape does not match (the message names the argument, the expected and the actual shape), an input holds NaN or ∞,
    /// or <paramref name="lengths"/> does not have N entries or holds a length outside [1, T] (ParamName "lengths").</exception>
    /// <exception cref="ArgumentOutOfRangeException">The output [T, N, D·H] or the states [L·D, N, H] would have more elements than one array holds.</exception>
    /// <exception cref="InvalidOperationException">Another thread is replacing the parameters (<see cref="Load"/>, <see cref="RnnParameters.Reset"/>).</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory; the message says what it was doing).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    public RnnForwardResult Forward(FloatTensor x, FloatTensor? h0 = null, FloatTensor? c0 = null, bool keepForBackward = false, int[]? lengths = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 3 || x.Shape[0] < 1 || x.Shape[1] < 1 || x.Shape[2] != Config.InputSize)
            throw new ArgumentException($"x: expected shape [T, N, {Config.InputSize}] with T ≥ 1 and N ≥ 1, got {FloatTensor.FormatShape(x.Shape)}.", nameof(x));
        int steps = x.Shape[0], batch = x.Shape[1];
        RequireOutputSizes(steps, batch, nameof(x));
        int[] state = Config.StateShape(batch);
        RequireInitialState(h0, c0, state);
        SequenceLengths.Validate(lengths, steps, batch);
        // NaN or ∞ in an input would silently poison every later step; the check is a small fraction of the pass.
        FloatTensor.RequireFinite(x, nameof(x));
        return Run(x, h0, c0, keepForBackward, inputIsPrivate: false, (int[]?)lengths?.Clone());
    }

    /// <summary>
    /// The pass behind <see cref="Forward"/>, for validated arguments. <paramref name="inputIsPrivate"/>: x is a buffer no
    /// one changes before backward (a gathered table, a sequence model's workspace), so the backend need not copy it.
    /// </summary>
    /// <paramref name="lengths"/>: validated, and the pass's own (the result keeps it).
    internal RnnForwardResult Run(FloatTensor x, FloatTensor? h0, FloatTensor? c0, bool keepForBackward, bool inputIsPrivate, int[]? lengths = null) =>
        RunPass(x.Shape[0], x.Shape[1], h0, c0, null, lengths, (h, c, y, hN, cN) => Backend is DirectionwiseBackend directionwise
            ? directionwise.Forward(Parameters, x, h, c, y, hN, cN, keepForBackward, copyInput: !inputIsPrivate, lengths)
            : Backend.Forward(Parameters, x, h, c, y, hN, cN, keepForBackward, lengths));

    /// <summary>
    /// Allocates y [T, N, D·H], hN and cN, puts zeros for a missing h0 or c0, and runs <paramref name="pass"/> (h0, c0, y,
    /// hN, cN → tape) with the pass marked in flight; the result records the parameters' version inside it.
    /// </summary>
    private RnnForwardResult RunPass(int steps, int batch, FloatTensor? h0, FloatTensor? c0, TableRun? table, int[]? lengths,
        Func<FloatTensor, FloatTensor?, FloatTensor, FloatTensor, FloatTensor?, IRnnTape?> pass)
    {
        int[] state = Config.StateShape(batch);
        bool hasCell = Config.Cell.HasCellState();
        var y = new FloatTensor(steps, batch, Config.OutputSize);
        var hN = new FloatTensor(state);
        var cN = hasCell ? new FloatTensor(state) : null;
        using var inFlight = Parameters.EnterPass();
        var tape = pass(h0 ?? new FloatTensor(state), hasCell ? c0 ?? new FloatTensor(state) : null, y, hN, cN);
        return new RnnForwardResult(this, y, hN, cN, tape, table, lengths: lengths);
    }

    /// <summary>
    /// Makes a stepper that advances this stack one time step at a time (for generation: each step's input depends on
    /// the step before): <c>Step(xt [N, I], state) → (output [N, H], new state)</c>, state h [L, N, H] (and c for LSTM);
    /// made for training, its steps may keep their tapes and be back-propagated one at a time
    /// (<see cref="RecurrentStepper.Backward"/>), for schedules that choose each step's input as they go.
    /// On the native CPU backend it packs every layer's weights once and keeps them resident in native memory; on ILGPU it
    /// uploads them once and keeps them on the device; on the reference each step is a whole-sequence pass with T = 1.
    /// Dispose it to free the resident weights.
    /// </summary>
    /// <param name="training">Also allow steps with keepForBackward and their backward; on the native CPU backend this packs
    /// W_ih and W_hh a second time, as backward's products read them (twice the resident memory).</param>
    /// <remarks>
    /// The stepper sees the parameters as they are now: once they are replaced (<see cref="Load"/>, <see cref="RnnParameters.Reset"/>,
    /// a sequence model's SGD step) its steps and backward steps throw <see cref="InvalidOperationException"/>; writes straight
    /// into a parameter's <c>Value.Span</c> are not seen by a native or ILGPU stepper. See <see cref="RecurrentStepper"/>.
    /// </remarks>
    /// <exception cref="NotSupportedException">The stack is bidirectional: its reverse direction needs the whole sequence, so it cannot step.</exception>
    /// <exception cref="InvalidOperationException">Another thread is replacing the parameters.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: the upload or allocation failed.</exception>
    public RecurrentStepper CreateStepper(bool training = false)
    {
        if (Config.Bidirectional)
            throw new NotSupportedException($"CreateStepper: this {Config.Cell} stack is bidirectional; its reverse direction reads the sequence from its end, so it cannot advance one step at a time. Use Forward over the whole sequence.");
        return Backend is IStepperFactory factory ? factory.CreateStepper(this, training) : new SequencePassStepper(this, training);
    }

    /// <summary>Checks that y [T, N, D·H] and the states [L·D, N, H] fit one array each.</summary>
    private void RequireOutputSizes(int steps, int batch, string argumentName)
    {
        Sizes.Elements(argumentName, "the output y [T, N, D·H]", ("T", steps), ("N", batch), ("D", Config.Directions), ("H", Config.HiddenSize));
        Sizes.Elements(argumentName, "the states [L·D, N, H]", ("L", Config.NumLayers), ("D", Config.Directions), ("N", batch), ("H", Config.HiddenSize));
    }

    /// <summary>How a <see cref="ForwardFromTable"/> pass ran: on the backend's table path, or on rows gathered into a dense x.</summary>
    internal sealed record TableRun(DirectionwiseBackend.TableInput Input, bool Gathered);

    /// <summary>
    /// Runs the stack over a sequence whose input rows are rows of a table, as an embedding lookup gives them:
    /// x[t, n] = table[ids[t·N + n]], a zero row where the id is −1. The result is that of <see cref="Forward"/> on the
    /// gathered x; on a backend with the table path (the native CPU backend) and V &lt; T·N, each table row is projected
    /// through W_ih once instead of once per use, and <see cref="BackwardFromTable"/> sums the gate gradients per table row
    /// before forming dW_ih and the table's gradient, so those three products cost V rows instead of T·N. Elsewhere the
    /// rows are gathered into a dense x.
    /// </summary>
    /// <param name="table">The rows [V, I], V ≥ 1 (an embedding).</param>
    /// <param name="ids">The table row of each input row [T·N] (row t·N + n is step t of sequence n), each in [−1, V).</param>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="h0">Initial hidden state [L·D, N, H]; zeros when null.</param>
    /// <param name="c0">Initial cell state [L·D, N, H] (LSTM only); zeros when null.</param>
    /// <param name="keepForBackward">Keep what <see cref="BackwardFromTable"/> needs: copies of what it reads of <paramref name="table"/>
    /// and <paramref name="ids"/>, so changing them after this returns does not change what backward computes.</param>
    /// <param name="lengths">Per-sequence lengths [N] in [1, T], any order, as in <see cref="Forward"/>; null when every sequence runs all T steps.
    /// Ids past a sequence's end are checked but not used.</param>
    /// <exception cref="ArgumentException">A shape does not match (the message names the argument, the expected and the actual shape), or the table or a state holds NaN or ∞.</exception>
    /// <exception cref="ArgumentException">(ParamName "lengths") <paramref name="lengths"/> does not have N entries or holds a length outside [1, T].</exception>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside [−1, V), or the output or states would have more elements than one array holds.</exception>
    /// <exception cref="InvalidOperationException">Another thread is replacing the parameters.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    public RnnForwardResult ForwardFromTable(FloatTensor table, int[] ids, int steps, int batch, FloatTensor? h0 = null, FloatTensor? c0 = null, bool keepForBackward = false,
        int[]? lengths = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(ids);
        if (table.Rank != 2 || table.Shape[0] < 1 || table.Shape[1] != Config.InputSize)
            throw new ArgumentException($"table: expected shape [V, {Config.InputSize}] with V ≥ 1, got {FloatTensor.FormatShape(table.Shape)}.", nameof(table));
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"steps, batch: expected T ≥ 1 and N ≥ 1, got T = {steps}, N = {batch} (an empty sequence).", steps < 1 ? nameof(steps) : nameof(batch));
        if (ids.Length != (long)steps * batch)
            throw new ArgumentException($"ids: expected [{(long)steps * batch}] (T·N = {steps}·{batch} ids), got {ids.Length} ids.", nameof(ids));
        RequireOutputSizes(steps, batch, nameof(ids));
        int vocab = table.Shape[0];
        for (int r = 0; r < ids.Length; r++)
            if (ids[r] < -1 || ids[r] >= vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), ids[r], $"ids: id {r} (step {r / batch}, sequence {r % batch}) is {ids[r]}; expected −1 (a zero row) or a table row in [0, {vocab}).");
        RequireInitialState(h0, c0, Config.StateShape(batch));
        SequenceLengths.Validate(lengths, steps, batch);
        FloatTensor.RequireFinite(table, nameof(table));
        // Backward reads the ids again (and, on the table path, the table); the caller may change its own arrays meanwhile.
        bool keepsTable = keepForBackward && UsesTablePath(vocab, steps * batch);
        return RunFromTable(keepsTable ? table.ToArray() : table.Memory, vocab, keepForBackward ? (int[])ids.Clone() : ids, steps, batch, h0, c0, keepForBackward,
            (int[]?)lengths?.Clone());
    }

    private bool UsesTablePath(int vocab, int rows) => Backend is DirectionwiseBackend { SupportsTableInput: true } && vocab < rows;

    /// <summary><see cref="ForwardFromTable(FloatTensor, int[], int, int, FloatTensor?, FloatTensor?, bool, int[])"/> from a zero state, for callers that validated: table [V, I], ids [T·N] in [−1, V).</summary>
    internal RnnForwardResult ForwardFromTableUnchecked(ReadOnlyMemory<float> table, int vocab, int[] ids, int steps, int batch, bool keepForBackward, int[]? lengths = null) =>
        RunFromTable(table, vocab, ids, steps, batch, null, null, keepForBackward, lengths);

    private RnnForwardResult RunFromTable(ReadOnlyMemory<float> table, int vocab, int[] ids, int steps, int batch, FloatTensor? h0, FloatTensor? c0, bool keepForBackward, int[]? lengths)
    {
        int rows = steps * batch, input = Config.InputSize;
        var tableInput = new DirectionwiseBackend.TableInput(table, vocab, ids);
        if (UsesTablePath(vocab, rows))
            return RunPass(steps, batch, h0, c0, new TableRun(tableInput, Gathered: false), lengths, (h, c, y, hN, cN) =>
                ((DirectionwiseBackend)Backend).ForwardFromTable(Parameters, tableInput, h, c, y, hN, cN, keepForBackward, lengths));
        var x = new FloatTensor(steps, batch, input);
        for (int r = 0; r < rows; r++)
            if (ids[r] >= 0) table.Span.Slice(ids[r] * input, input).CopyTo(x.Span.Slice(r * input, input));
        var gathered = Run(x, h0, c0, keepForBackward, inputIsPrivate: true, lengths);
        return new RnnForwardResult(this, gathered.Output, gathered.HiddenState, gathered.CellState, gathered.Tape, new TableRun(tableInput, Gathered: true),
            gathered.ParameterVersion, lengths);
    }

    /// <summary>
    /// Back-propagates through a pass of <see cref="ForwardFromTable(FloatTensor, int[], int, int, FloatTensor?, FloatTensor?, bool, int[])"/>
    /// (run with keepForBackward): adds every parameter's gradient into its <see cref="Parameter.Grad"/> and the table's
    /// gradient into <paramref name="tableGradient"/>, as <see cref="Backward"/> followed by summing dx per table row would.
    /// </summary>
    /// <param name="forward">The forward pass to differentiate.</param>
    /// <param name="dy">Gradient of the output [T, N, D·H]; zeros when null.</param>
    /// <param name="tableGradient">[V, I], the table's shape: the table's gradient is added into it.</param>
    /// <param name="dhN">Gradient of the final hidden state [L·D, N, H]; zeros when null.</param>
    /// <param name="dcN">Gradient of the final cell state (LSTM only); zeros when null.</param>
    /// <returns>dh0 and (LSTM) dc0.</returns>
    /// <exception cref="InvalidOperationException">The forward pass kept nothing for backward, or was disposed; the parameters were
    /// replaced (<see cref="Load"/>, <see cref="RnnParameters.Reset"/>) since it ran, or are being replaced on another thread.</exception>
    /// <exception cref="ArgumentException">A shape does not match, a gradient holds NaN or ∞, or the pass came from another layer or had dense input.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    public RnnStateGradients BackwardFromTable(RnnForwardResult forward, FloatTensor? dy, FloatTensor tableGradient, FloatTensor? dhN = null, FloatTensor? dcN = null)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(tableGradient);
        if (!ReferenceEquals(forward.Layer, this))
            throw new ArgumentException("forward: the result comes from another layer.", nameof(forward));
        var run = forward.Table ?? throw new ArgumentException("forward: the pass had dense input; back-propagate it with Backward.", nameof(forward));
        FloatTensor.RequireShape(tableGradient, nameof(tableGradient), run.Input.Vocab, Config.InputSize);
        int steps = forward.Output.Shape[0], batch = forward.Output.Shape[1];
        RequireOutputGradients(dy, dhN, dcN, steps, batch);
        return BackwardFromTableUnchecked(forward, dy ?? new FloatTensor(steps, batch, Config.OutputSize), tableGradient.Memory, dhN, dcN);
    }

    /// <summary>
    /// <see cref="BackwardFromTable(RnnForwardResult, FloatTensor?, FloatTensor, FloatTensor?, FloatTensor?)"/> for callers that validated the
    /// shapes; <paramref name="tableGradient"/> [V, I] is added into.
    /// </summary>
    internal RnnStateGradients BackwardFromTableUnchecked(RnnForwardResult forward, FloatTensor dy, Memory<float> tableGradient, FloatTensor? dhN = null, FloatTensor? dcN = null)
    {
        var run = forward.Table ?? throw new ArgumentException("forward: the pass had dense input; back-propagate it with Backward.", nameof(forward));
        var tape = forward.Tape ?? throw new InvalidOperationException("forward: this forward pass kept nothing for backward, or it was disposed.");
        int batch = dy.Shape[1], input = Config.InputSize;
        if (run.Gathered)
        {
            var gradients = BackwardUnchecked(forward, tape, dy, dhN, dcN);
            ReadOnlySpan<float> dx = gradients.Input.Span;
            var ids = run.Input.Ids;
            for (int r = 0; r < ids.Length; r++)
                if (ids[r] >= 0)
                {
                    var destination = tableGradient.Span.Slice(ids[r] * input, input);
                    var source = dx.Slice(r * input, input);
                    for (int i = 0; i < input; i++) destination[i] += source[i];
                }
            return new RnnStateGradients(gradients.InitialHidden, gradients.InitialCell);
        }
        var states = BackwardStates(batch, dhN, dcN);
        using var pass = EnterBackward(forward);
        lock (Parameters.GradientLock)
            ((DirectionwiseBackend)Backend).BackwardFromTable(Parameters, tape, dy, states.DhN, states.DcN, tableGradient, states.Dh0, states.Dc0);
        return new RnnStateGradients(states.Dh0, states.Dc0);
    }

    /// <summary>
    /// Back-propagates through the forward pass <paramref name="forward"/> (run with keepForBackward), adding
    /// every parameter's gradient into its <see cref="Parameter.Grad"/> as PyTorch's autograd does.
    /// Works whatever mode the layer is in; the weights must be those the forward pass used.
    /// </summary>
    /// <param name="forward">The forward pass to differentiate.</param>
    /// <param name="dy">Gradient of the output [T, N, D·H]; zeros when null.</param>
    /// <param name="dhN">Gradient of the final hidden state [L·D, N, H]; zeros when null.</param>
    /// <param name="dcN">Gradient of the final cell state (LSTM only); zeros when null.</param>
    /// <returns>dx, dh0 and (LSTM) dc0.</returns>
    /// <exception cref="InvalidOperationException">The forward pass kept nothing for backward, or was disposed; the parameters were
    /// replaced (<see cref="Load"/>, <see cref="RnnParameters.Reset"/>) since it ran, or are being replaced on another thread.</exception>
    /// <exception cref="ArgumentException">A shape does not match, a gradient holds NaN or ∞, or the result came from another layer.</exception>
    /// <exception cref="Kernels.Cpu.NativeException">The native library failed (out of memory).</exception>
    /// <exception cref="Kernels.Ilgpu.IlgpuOperationException">On an <see cref="IlgpuBackend"/>: a launch, copy or allocation failed.</exception>
    /// <remarks>Several threads may run backward passes of one layer at once: the gradients are added one pass at a time
    /// (see <see cref="RnnParameters"/>).</remarks>
    public RnnInputGradients Backward(RnnForwardResult forward, FloatTensor? dy, FloatTensor? dhN = null, FloatTensor? dcN = null)
    {
        ArgumentNullException.ThrowIfNull(forward);
        if (!ReferenceEquals(forward.Layer, this))
            throw new ArgumentException("forward: the result comes from another layer.", nameof(forward));
        var tape = forward.Tape ?? throw new InvalidOperationException(
            "forward: this forward pass kept nothing for backward (run Forward with keepForBackward: true), or it was disposed.");
        if (forward.Table is { Gathered: false })
            throw new ArgumentException("forward: the pass read its input from a table; back-propagate it with BackwardFromTable.", nameof(forward));
        int steps = forward.Output.Shape[0], batch = forward.Output.Shape[1];
        RequireOutputGradients(dy, dhN, dcN, steps, batch);
        return BackwardUnchecked(forward, tape, dy ?? new FloatTensor(steps, batch, Config.OutputSize), dhN, dcN);
    }

    /// <summary>
    /// <see cref="Backward"/> for callers that validated the shapes; gradients may hold non-finite values (inside a sequence
    /// model they propagate to its loss rather than being refused).
    /// </summary>
    internal RnnInputGradients BackwardUnchecked(RnnForwardResult forward, IRnnTape tape, FloatTensor dy, FloatTensor? dhN, FloatTensor? dcN)
    {
        int steps = forward.Output.Shape[0], batch = forward.Output.Shape[1];
        var dx = new FloatTensor(steps, batch, Config.InputSize);
        var states = BackwardStates(batch, dhN, dcN);
        using var pass = EnterBackward(forward);
        // Backends add into Parameter.Grad with plain +=; one backward at a time keeps concurrent passes from losing updates.
        lock (Parameters.GradientLock)
            Backend.Backward(Parameters, tape, dy, states.DhN, states.DcN, dx, states.Dh0, states.Dc0);
        return new RnnInputGradients(dx, states.Dh0, states.Dc0);
    }

    /// <summary>The final-state gradients with zeros for null ones, and fresh dh0 and dc0 (LSTM) for a backward pass to overwrite.</summary>
    private (FloatTensor DhN, FloatTensor? DcN, FloatTensor Dh0, FloatTensor? Dc0) BackwardStates(int batch, FloatTensor? dhN, FloatTensor? dcN)
    {
        int[] state = Config.StateShape(batch);
        bool hasCell = Config.Cell.HasCellState();
        return (dhN ?? new FloatTensor(state), hasCell ? dcN ?? new FloatTensor(state) : null, new FloatTensor(state), hasCell ? new FloatTensor(state) : null);
    }

    /// <summary>Marks a backward pass in flight, after checking that the parameters are those <paramref name="forward"/> ran with.</summary>
    private ParameterSet.PassScope EnterBackward(RnnForwardResult forward)
    {
        var pass = Parameters.EnterPass();
        if (forward.ParameterVersion != Parameters.Version)
        {
            pass.Dispose();
            throw new InvalidOperationException("forward: the parameters were replaced (Load, Reset or an SGD step) after this forward pass ran; its gradient would mix two sets of weights. Run Forward again.");
        }
        return pass;
    }

    /// <summary>Checks h0 and c0 (each may be null) against the state shape [L·D, N, H]: shape, cell kind, finite values.</summary>
    private void RequireInitialState(FloatTensor? h0, FloatTensor? c0, int[] state)
    {
        if (h0 is not null) FloatTensor.RequireShape(h0, nameof(h0), state);
        if (c0 is not null)
        {
            if (!Config.Cell.HasCellState()) throw new ArgumentException($"c0: a {Config.Cell} layer has no cell state; pass null.", nameof(c0));
            FloatTensor.RequireShape(c0, nameof(c0), state);
        }
        if (h0 is not null) FloatTensor.RequireFinite(h0, nameof(h0));
        if (c0 is not null) FloatTensor.RequireFinite(c0, nameof(c0));
    }

    /// <summary>Checks dy [T, N, D·H], dhN and dcN [L·D, N, H] (each may be null): shape, cell kind, finite values.</summary>
    private void RequireOutputGradients(FloatTensor? dy, FloatTensor? dhN, FloatTensor? dcN, int steps, int batch)
    {
        int[] state = Config.StateShape(batch);
        if (dy is not null) FloatTensor.RequireShape(dy, nameof(dy), steps, batch, Config.OutputSize);
        if (dhN is not null) FloatTensor.RequireShape(dhN, nameof(dhN), state);
        if (dcN is not null)
        {
            if (!Config.Cell.HasCellState()) throw new ArgumentException($"dcN: a {Config.Cell} layer has no cell state; pass null.", nameof(dcN));
            FloatTensor.RequireShape(dcN, nameof(dcN), state);
        }
        if (dy is not null) FloatTensor.RequireFinite(dy, nameof(dy));
        if (dhN is not null) FloatTensor.RequireFinite(dhN, nameof(dhN));
        if (dcN is not null) FloatTensor.RequireFinite(dcN, nameof(dcN));
    }

    /// <summary>Sets every parameter gradient to zero (after any backward pass in flight on another thread has added its gradient).</summary>
    public void ZeroGrad() => Parameters.ZeroGrad();

    /// <summary>
    /// Saves the parameters as a safetensors file under PyTorch's names (atomically: temporary file, then rename),
    /// recording the cell in the metadata: <see cref="ParameterSet.Save(string, SaveOptions?)"/> of <see cref="Parameters"/>. PyTorch loads it
    /// with <c>load_state_dict(load_file(path))</c>.
    /// </summary>
    /// <remarks>Through a symbolic link the link's final target is replaced and the link kept; see <see cref="SafeTensors.Write(string, IEnumerable{KeyValuePair{string, FloatTensor}}, IReadOnlyDictionary{string, string}?, SafeTensorsDType)"/>.</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be written (its folder is missing, the target is a folder, the disk is full);
    /// an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or infinity: <see cref="Load"/> refuses such files, so they are not written;
    /// or another thread is replacing the parameters.</exception>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="options">The dtype in the file and a prefix for the names; null: float32, PyTorch's names.</param>
    public void Save(string path, SaveOptions? options = null) => Parameters.Save(path, options);

    /// <summary>
    /// Loads parameters from a safetensors file, such as one written by PyTorch's <c>save_file(rnn.state_dict(), path)</c>:
    /// <see cref="ParameterSet.Load(string, LoadOptions?)"/> of <see cref="Parameters"/>, which also takes streams and in-memory maps.
    /// F16, BF16 and F64 tensors are converted to float32. Nothing is changed unless every check passes.
    /// </summary>
    /// <exception cref="InvalidDataException">Strict: a tensor is missing (named with the near miss the file has) or extra. Either mode:
    /// one is misshaped or not finite, an F64 value is beyond float32's range, the file was saved from another cell, no name starts
    /// with the prefix (the prefixes present are listed), or the file is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be read: it is missing (<see cref="FileNotFoundException"/>), or a folder.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    /// <exception cref="InvalidOperationException">A forward or backward pass of this layer is running on another thread.</exception>
    /// <remarks>A forward pass run before Load cannot be back-propagated after it (<see cref="Backward"/> throws).</remarks>
    /// <param name="path">The file.</param>
    /// <param name="options">Strict or not, and the prefix of a sub-module in a whole-model file; null: strict, no prefix.</param>
    /// <returns>The parameters the file lacks and its names that are no parameter: both empty after a strict load.</returns>
    public LoadResult Load(string path, LoadOptions? options = null) => Parameters.Load(path, options);
}

/// <summary>Activation of an Elman RNN.</summary>
public enum RnnActivation
{
    /// <summary>tanh, PyTorch's default.</summary>
    Tanh,
    /// <summary>relu.</summary>
    Relu,
}

/// <summary>Which GRU: both forms are common and they are not interchangeable.</summary>
public enum GruVariant
{
    /// <summary>PyTorch and cuDNN: r multiplies (W_hn h + b_hn). Use for weights from PyTorch or ONNX (linear_before_reset=1).</summary>
    ResetAfter,
    /// <summary>Deep Learning book and Cho et al. v3 (Keras reset_after=False): r multiplies h before W_hn.</summary>
    ResetBefore,
}

/// <summary>A multi-layer, optionally bidirectional LSTM, as PyTorch's <c>nn.LSTM</c> (gate order i, f, g, o).</summary>
/// <remarks>Thread-safety and lifetime: as <see cref="RecurrentLayer"/>.</remarks>
public sealed class Lstm(int inputSize, int hiddenSize, int numLayers = 1, bool bidirectional = false, IRnnBackend? backend = null, int seed = 0)
    : RecurrentLayer(new RnnConfig(CellKind.Lstm, inputSize, hiddenSize, numLayers, bidirectional), backend, seed);

/// <summary>
/// A multi-layer, optionally bidirectional GRU (gate order r, z, n). The variant defaults to
/// <see cref="GruVariant.ResetAfter"/>, PyTorch's <c>nn.GRU</c>, cuDNN's and ONNX's <c>linear_before_reset=1</c>; pass
/// <c>variant: GruVariant.ResetBefore</c> for weights from Keras (<c>reset_after=False</c>) or the textbook form.
/// </summary>
/// <remarks>
/// Arguments in the order shared by <see cref="Lstm"/>, <see cref="Gru"/> and <see cref="ElmanRnn"/>: sizes, layer count,
/// direction, then the cell-specific choice, backend and seed.
/// Thread-safety and lifetime: as <see cref="RecurrentLayer"/>.
/// </remarks>
public sealed class Gru(int inputSize, int hiddenSize, int numLayers = 1, bool bidirectional = false, GruVariant variant = GruVariant.ResetAfter, IRnnBackend? backend = null, int seed = 0)
    : RecurrentLayer(new RnnConfig(variant switch
    {
        GruVariant.ResetAfter => CellKind.GruResetAfter,
        GruVariant.ResetBefore => CellKind.GruResetBefore,
        _ => throw new ArgumentOutOfRangeException(nameof(variant), variant, "expected ResetAfter or ResetBefore"),
    }, inputSize, hiddenSize, numLayers, bidirectional), backend, seed);

/// <summary>A multi-layer, optionally bidirectional Elman RNN, as PyTorch's <c>nn.RNN</c>.</summary>
/// <remarks>Thread-safety and lifetime: as <see cref="RecurrentLayer"/>.</remarks>
public sealed class ElmanRnn(int inputSize, int hiddenSize, int numLayers = 1, bool bidirectional = false, RnnActivation activation = RnnActivation.Tanh, IRnnBackend? backend = null, int seed = 0)
    : RecurrentLayer(new RnnConfig(activation switch
    {
        RnnActivation.Tanh => CellKind.RnnTanh,
        RnnActivation.Relu => CellKind.RnnRelu,
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "expected Tanh or Relu"),
    }, inputSize, hiddenSize, numLayers, bidirectional), backend, seed);
