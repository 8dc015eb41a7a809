namespace Recurrent;

/// <summary>
/// A named parameter with its value and the gradient that backward passes accumulate into. Its tensors are the layer's
/// own storage; see <see cref="RnnParameters"/> for what may run concurrently.
/// </summary>
public sealed class Parameter
{
    internal Parameter(string name, int layer, int direction, ParameterKind kind, int[] shape)
    {
        (Name, Layer, Direction, Kind) = (name, layer, direction, kind);
        Value = new Tensor(shape);
        Grad = new Tensor(shape);
    }

    /// <summary>PyTorch's name, such as <c>weight_ih_l0_reverse</c>.</summary>
    public string Name { get; }
    /// <summary>The layer index k.</summary>
    public int Layer { get; }
    /// <summary>0 forward, 1 reverse.</summary>
    public int Direction { get; }
    /// <summary>Which parameter of its layer and direction: its position in the cell's <see cref="CellDefinition.Parameters"/>.</summary>
    public ParameterKind Kind { get; }
    /// <summary>The value; its shape never changes.</summary>
    public Tensor Value { get; }
    /// <summary>The accumulated gradient, same shape as <see cref="Value"/>; cleared by <see cref="RnnParameters.ZeroGrad"/>.</summary>
    public Tensor Grad { get; }
}

/// <summary>The parameters of a recurrent stack, in PyTorch's <c>named_parameters()</c> order.</summary>
/// <remarks>
/// Thread-safety: passes (<see cref="RecurrentLayer.Forward"/>, <see cref="RecurrentLayer.Backward"/> and the table
/// forms) may run on several threads at once: backward passes add their gradients one at a time, so the gradient after
/// concurrent passes is the sum of their gradients (to rounding; the order of the additions is not fixed), as if they had
/// run one after another. <see cref="ZeroGrad"/> waits for a backward pass in flight. What replaces the values
/// (<see cref="Reset"/>, <see cref="RecurrentLayer.Load"/>, a sequence model's SGD step) refuses to run while a pass is
/// in flight, and a pass refuses to start while they run (<see cref="InvalidOperationException"/> both ways); a backward
/// pass refuses a forward pass whose values were replaced since. Writing into <see cref="Parameter.Value"/>'s data
/// directly is outside this protection: do it only while no pass is in flight, and not between a forward pass and its
/// backward pass.
/// </remarks>
public sealed class RnnParameters
{
    private readonly Parameter[] _parameters;
    private readonly Dictionary<string, Parameter> _byName;
    // ≥ 0: passes in flight; −1: the values are being replaced. One word, so entering and leaving are single atomics.
    private int _state;
    private int _version;

    /// <summary>Zero-valued parameters for <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    public RnnParameters(RnnConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        _parameters = config.Parameters().Select(p => new Parameter(p.Name, p.Layer, p.Direction, p.Kind, p.Shape)).ToArray();
        _byName = _parameters.ToDictionary(p => p.Name);
    }

    /// <summary>The configuration these parameters are shaped for.</summary>
    public RnnConfig Config { get; }

    /// <summary>All parameters in PyTorch's order.</summary>
    public IReadOnlyList<Parameter> All => _parameters;

    /// <summary>The parameter with PyTorch's name <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name.</exception>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"no parameter named '{name}'; expected one of {string.Join(", ", _byName.Keys)}.");

    /// <summary>The parameter of a layer, direction and kind.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The layer, direction or kind does not exist in this stack.</exception>
    public Parameter this[int layer, int direction, ParameterKind kind]
    {
        get
        {
            // Unchecked, direction 1 of a one-way stack would silently be the next layer's parameter.
            ArgumentOutOfRangeException.ThrowIfNegative(layer);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NumLayers);
            ArgumentOutOfRangeException.ThrowIfNegative(direction);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(direction, Config.Directions);
            int perDirection = Config.Definition.Parameters.Count;
            if ((uint)kind >= (uint)perDirection) throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown parameter kind");
            return _parameters[(layer * Config.Directions + direction) * perDirection + (int)kind];
        }
    }

    /// <summary>Sets every gradient to zero (after any backward pass in flight has added its gradient).</summary>
    public void ZeroGrad()
    {
        lock (GradientLock)
            foreach (var p in _parameters) Array.Clear(p.Grad.Data);
    }

    /// <summary>Held while gradients are added into <see cref="Parameter.Grad"/> or cleared.</summary>
    internal object GradientLock { get; } = new();

    /// <summary>Counts replacements of the values (<see cref="BeginWrite"/>): a tape records it, and backward compares.</summary>
    internal int Version => Volatile.Read(ref _version);

    /// <summary>Marks a pass in flight until the returned scope is disposed.</summary>
    /// <exception cref="InvalidOperationException">The values are being replaced on another thread.</exception>
    internal PassScope EnterPass()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state < 0)
                throw new InvalidOperationException("parameters: another thread is replacing the values (Load, Reset or an SGD step); a pass cannot run meanwhile.");
            if (Interlocked.CompareExchange(ref _state, state + 1, state) == state) return new PassScope(this);
        }
    }

    /// <summary>Marks the values as being replaced until the returned scope is disposed; bumps <see cref="Version"/>.</summary>
    /// <param name="operation">What replaces them, for the message.</param>
    /// <exception cref="InvalidOperationException">A pass or another replacement is in flight.</exception>
    internal WriteScope BeginWrite(string operation)
    {
        int state = Interlocked.CompareExchange(ref _state, -1, 0);
        if (state != 0)
            throw new InvalidOperationException(state > 0
                ? $"{operation}: {state} forward or backward pass(es) of this layer are running on other threads; replace the values once they have returned."
                : $"{operation}: another thread is replacing the values already.");
        Interlocked.Increment(ref _version);
        return new WriteScope(this);
    }

    internal readonly struct PassScope(RnnParameters owner) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref owner._state);
    }

    internal readonly struct WriteScope(RnnParameters owner) : IDisposable
    {
        public void Dispose() => Volatile.Write(ref owner._state, 0);
    }

    /// <summary>
    /// PyTorch's initialisation: every parameter uniform in ±1/√H, drawn from a generator seeded with
    /// <paramref name="seed"/> (the values differ from PyTorch's, whose generator is another).
    /// </summary>
    /// <exception cref="InvalidOperationException">A forward or backward pass is running on another thread.</exception>
    public void Reset(int seed)
    {
        using var write = BeginWrite(nameof(Reset));
        var random = new Random(seed);
        float bound = 1f / MathF.Sqrt(Config.HiddenSize);
        foreach (var p in _parameters)
        {
            var data = p.Value.Data;
            for (int i = 0; i < data.Length; i++)
                data[i] = (float)((random.NextDouble() * 2 - 1) * bound);
        }
    }
}
