namespace Recurrent;

/// <summary>A named parameter with its value and the gradient that backward passes accumulate into.</summary>
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
    /// <summary>Which of the four parameters of its layer and direction.</summary>
    public ParameterKind Kind { get; }
    /// <summary>The value; its shape never changes.</summary>
    public Tensor Value { get; }
    /// <summary>The accumulated gradient, same shape as <see cref="Value"/>; cleared by <see cref="RnnParameters.ZeroGrad"/>.</summary>
    public Tensor Grad { get; }
}

/// <summary>The parameters of a recurrent stack, in PyTorch's <c>named_parameters()</c> order.</summary>
public sealed class RnnParameters
{
    private readonly Parameter[] _parameters;
    private readonly Dictionary<string, Parameter> _byName;

    /// <summary>Zero-valued parameters for <paramref name="config"/>.</summary>
    public RnnParameters(RnnConfig config)
    {
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
            if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown parameter kind");
            return _parameters[(layer * Config.Directions + direction) * 4 + (int)kind];
        }
    }

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters) Array.Clear(p.Grad.Data);
    }

    /// <summary>
    /// PyTorch's initialisation: every parameter uniform in ±1/√H, drawn from a generator seeded with
    /// <paramref name="seed"/> (the values differ from PyTorch's, whose generator is another).
    /// </summary>
    public void Reset(int seed)
    {
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
