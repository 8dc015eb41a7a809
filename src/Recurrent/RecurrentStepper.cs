using Recurrent.Kernels.Cpu;

namespace Recurrent;

/// <summary>
/// The state of a unidirectional stack between two steps of a <see cref="RecurrentStepper"/>: every layer's hidden state
/// and, for LSTM, cell state. Made by <see cref="RecurrentStepper.InitialState"/> and returned by
/// <see cref="RecurrentStepper.Step"/>; usable only with the stepper that made it. A step never changes the state it is
/// given, so one state may be stepped several ways (beam search, sampling several continuations).
/// </summary>
public sealed class RecurrentStepState
{
    internal RecurrentStepState(RecurrentStepper owner, Tensor hidden, Tensor? cell) => (Owner, Hidden, Cell) = (owner, hidden, cell);

    /// <summary>h [L, N, H]: layer l's hidden state in slice l. Its values may be changed between steps (to reset a row); its shape is fixed.</summary>
    public Tensor Hidden { get; }
    /// <summary>c [L, N, H] for LSTM, else null.</summary>
    public Tensor? Cell { get; }
    /// <summary>N.</summary>
    public int Batch => Hidden.Shape[1];

    internal RecurrentStepper Owner { get; }
}

/// <summary>
/// Advances a unidirectional <see cref="RecurrentLayer"/> stack one time step at a time, for autoregressive use
/// (generation, where step t's input depends on step t − 1's output). Made by <see cref="RecurrentLayer.CreateStepper"/>.
/// Letters: L layers, N batch, I input features, H hidden features.
/// </summary>
/// <remarks>
/// <para>On the native CPU backend (<see cref="NativeCpuBackend"/>) the stepper packs every layer's weights once, when it is
/// made, and keeps them resident in native memory: a step costs its two matrix products and the cell's pointwise kernel
/// per layer, where a whole-sequence pass with T = 1 re-packs W_hh each time. On other backends (the reference, ILGPU)
/// each step is a whole-sequence pass with T = 1: the same results, with no resident weights.</para>
/// <para>Resident weights are never silently stale: the stepper records the parameters' version when it is made, and
/// <see cref="Step"/> throws <see cref="InvalidOperationException"/> once they were replaced (<see cref="RecurrentLayer.Load"/>,
/// <see cref="RnnParameters.Reset"/>, a sequence model's SGD step); make a new stepper then. Direct writes into a
/// parameter's <c>Value.Data</c> do not change the version and are not seen by a native stepper.</para>
/// <para>Thread-safety: steps may run on several threads at once, each with its own states.</para>
/// </remarks>
public abstract class RecurrentStepper : IDisposable
{
    private readonly int _version;
    private volatile bool _disposed;

    private protected RecurrentStepper(RecurrentLayer layer, int version) => (Layer, _version) = (layer, version);

    /// <summary>The layer this stepper advances.</summary>
    public RecurrentLayer Layer { get; }

    /// <summary>Whether the weights are resident (packed once, native CPU backend) rather than passed to a T = 1 pass per step.</summary>
    public abstract bool HasResidentWeights { get; }

    private RnnConfig Config => Layer.Config;

    /// <summary>A state of <paramref name="batch"/> rows to start from: copies of <paramref name="h0"/> and <paramref name="c0"/>, zeros where null.</summary>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="h0">Hidden state [L, N, H]; zeros when null.</param>
    /// <param name="c0">Cell state [L, N, H] (LSTM only); zeros when null.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batch"/> is below 1.</exception>
    /// <exception cref="ArgumentException">A shape does not match, <paramref name="c0"/> was given for a cell without a cell state, or a value is NaN or ∞.</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    public RecurrentStepState InitialState(int batch, Tensor? h0 = null, Tensor? c0 = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        int[] shape = Config.StateShape(batch);
        bool hasCell = Config.Cell.HasCellState();
        if (h0 is not null)
        {
            Tensor.RequireShape(h0, nameof(h0), shape);
            Tensor.RequireFinite(h0, nameof(h0));
        }
        if (c0 is not null)
        {
            if (!hasCell) throw new ArgumentException($"c0: a {Config.Cell} layer has no cell state; pass null.", nameof(c0));
            Tensor.RequireShape(c0, nameof(c0), shape);
            Tensor.RequireFinite(c0, nameof(c0));
        }
        return new RecurrentStepState(this, h0?.Clone() ?? new Tensor(shape), hasCell ? c0?.Clone() ?? new Tensor(shape) : null);
    }

    /// <summary>Runs every layer one step: from <paramref name="state"/> and the input <paramref name="xt"/>, the top layer's output and the next state.</summary>
    /// <param name="xt">Input of this step [N, I].</param>
    /// <param name="state">The state after the step before, from this stepper (<see cref="InitialState"/> or an earlier <see cref="Step"/>); not changed.</param>
    /// <returns>Output [N, H] (the top layer's new hidden state) and the new state.</returns>
    /// <exception cref="ArgumentException"><paramref name="xt"/> is not [N, I] or holds NaN or ∞; <paramref name="state"/> comes from another
    /// stepper or has another N than <paramref name="xt"/>.</exception>
    /// <exception cref="InvalidOperationException">The layer's parameters were replaced since this stepper was made, or are being replaced on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The stepper was disposed.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    public (Tensor Output, RecurrentStepState State) Step(Tensor xt, RecurrentStepState state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(xt);
        ArgumentNullException.ThrowIfNull(state);
        if (xt.Rank != 2 || xt.Shape[0] < 1 || xt.Shape[1] != Config.InputSize)
            throw new ArgumentException($"xt: expected shape [N, {Config.InputSize}] with N ≥ 1, got {Tensor.FormatShape(xt.Shape)}.", nameof(xt));
        if (!ReferenceEquals(state.Owner, this))
            throw new ArgumentException(ReferenceEquals(state.Owner.Layer, Layer)
                ? "state: it comes from another stepper of this layer; use states of the stepper they were made by."
                : "state: it comes from a stepper of another layer.", nameof(state));
        if (state.Batch != xt.Shape[0])
            throw new ArgumentException($"state: it holds {state.Batch} rows (N = {state.Batch}) but xt has {xt.Shape[0]}.", nameof(state));
        Tensor.RequireFinite(xt, nameof(xt));
        return StepUnchecked(xt.Data, xt.Shape[0], state);
    }

    /// <summary><see cref="Step"/> for callers that validated: x [N, I], a state of this stepper with N rows. Non-finite values propagate.</summary>
    internal (Tensor Output, RecurrentStepState State) StepUnchecked(float[] x, int batch, RecurrentStepState state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var pass = Layer.Parameters.EnterPass();
        if (Layer.Parameters.Version != _version)
            throw new InvalidOperationException("stepper: the layer's parameters were replaced (Load, Reset or an SGD step) after this stepper was made; its weights would be stale. Create a new stepper.");
        return StepCore(x, batch, state);
    }

    private protected abstract (Tensor Output, RecurrentStepState State) StepCore(float[] x, int batch, RecurrentStepState state);

    private protected RecurrentStepState NewState(Tensor hidden, Tensor? cell) => new(this, hidden, cell);

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
    private readonly NativeRnnStep[] _layers;

    private NativeRecurrentStepper(RecurrentLayer layer, int version, NativeRnnStep[] layers) : base(layer, version) => _layers = layers;

    public static NativeRecurrentStepper Create(RecurrentLayer layer, bool fused)
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
                    p[l, 0, ParameterKind.WeightIH].Value.Data, p[l, 0, ParameterKind.WeightHH].Value.Data,
                    p[l, 0, ParameterKind.BiasIH].Value.Data, p[l, 0, ParameterKind.BiasHH].Value.Data);
        }
        catch
        {
            foreach (var made in layers) made?.Dispose();
            throw;
        }
        return new NativeRecurrentStepper(layer, p.Version, layers);
    }

    public override bool HasResidentWeights => true;

    private protected override (Tensor Output, RecurrentStepState State) StepCore(float[] x, int batch, RecurrentStepState state)
    {
        var config = Layer.Config;
        int hidden = config.HiddenSize, nh = batch * hidden;
        int[] shape = config.StateShape(batch);
        var h = new Tensor(shape);
        var c = state.Cell is null ? null : new Tensor(shape);
        ReadOnlySpan<float> input = x;
        for (int l = 0; l < _layers.Length; l++)
        {
            var hOut = h.Data.AsSpan(l * nh, nh);
            _layers[l].Forward(batch, input, state.Hidden.Data.AsSpan(l * nh, nh), state.Cell is null ? default : state.Cell.Data.AsSpan(l * nh, nh),
                hOut, c is null ? default : c.Data.AsSpan(l * nh, nh));
            input = hOut;
        }
        var output = new Tensor(batch, hidden);
        input.CopyTo(output.Data);
        return (output, NewState(h, c));
    }

    private protected override void Release()
    {
        foreach (var layer in _layers) layer.Dispose();
    }
}

/// <summary>Any other backend's stepper: each step is the layer's whole-sequence pass with T = 1 (no resident weights).</summary>
internal sealed class SequencePassStepper(RecurrentLayer layer) : RecurrentStepper(layer, layer.Parameters.Version)
{
    public override bool HasResidentWeights => false;

    private protected override (Tensor Output, RecurrentStepState State) StepCore(float[] x, int batch, RecurrentStepState state)
    {
        using var result = Layer.Run(new Tensor(x, 1, batch, Layer.Config.InputSize), state.Hidden, state.Cell, keepForBackward: false, inputIsPrivate: true);
        return (new Tensor(result.Output.Data, batch, Layer.Config.HiddenSize), NewState(result.HiddenState, result.CellState));
    }
}
