namespace Recurrent;

/// <summary>
/// The parameters of a recurrent stack, in PyTorch's <c>named_parameters()</c> order (for each layer the forward
/// direction's, then the reverse direction's, each in the order of the cell's <see cref="CellDefinition.Parameters"/>),
/// in one flat storage (see <see cref="ParameterSet"/>). Its metadata records the cell, so that a file saved from a cell
/// of the same shapes (GRU reset-after and reset-before, RNN tanh and relu) is refused by <see cref="ParameterSet.Load(string, LoadOptions?)"/>.
/// </summary>
/// <remarks>
/// Thread-safety: see <see cref="ParameterSet"/>. Passes (<see cref="RecurrentLayer.Forward"/>, <see cref="RecurrentLayer.Backward"/>
/// and the table forms) may run on several threads at once; backward passes add their gradients one at a time, so the
/// gradient after concurrent passes is the sum of their gradients (to rounding; the order of the additions is not fixed).
/// <see cref="Reset"/>, <see cref="ParameterSet.Load(string, LoadOptions?)"/> and an SGD step refuse to run while a pass is in flight, and a pass
/// refuses to start while they run; a backward pass refuses a forward pass whose values were replaced since.
/// <para>Lifetime: managed memory only, owned by its layer (not IDisposable). Steppers made from the layer refuse to step once these parameters are replaced.</para>
/// </remarks>
public sealed class RnnParameters : ParameterSet
{
    // Save records the cell under this key; Load refuses a file that records another.
    internal const string CellMetadataKey = "recurrent.cell";

    private readonly int _perDirection;

    /// <summary>Zero-valued parameters for <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    public RnnParameters(RnnConfig config)
        : base((config ?? throw new ArgumentNullException(nameof(config))).Parameters().Select(p => Entry.Own(p.Name, p.Shape)),
            new Dictionary<string, string> { [CellMetadataKey] = config.Cell.ToString() }, $"a {config.Cell} layer with this configuration")
    {
        Config = config;
        _perDirection = config.Definition.Parameters.Count;
    }

    /// <summary>The configuration these parameters are shaped for.</summary>
    public RnnConfig Config { get; }

    /// <summary>The parameter <paramref name="spec"/> of a layer and direction, such as <c>[1, 0, ParameterSpec.WeightHH]</c> for <c>weight_hh_l1</c>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="spec"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The layer or direction does not exist in this stack, or the cell has no such parameter.</exception>
    public Parameter this[int layer, int direction, ParameterSpec spec] => this[layer, direction, Config.Definition.IndexOf(spec)];

    /// <summary>The parameter at position <paramref name="position"/> of the cell's <see cref="CellDefinition.Parameters"/>, of a layer and direction.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The layer, direction or position does not exist in this stack.</exception>
    public Parameter this[int layer, int direction, int position]
    {
        get
        {
            // Unchecked, direction 1 of a one-way stack would silently be the next layer's parameter.
            ArgumentOutOfRangeException.ThrowIfNegative(layer);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NumLayers);
            ArgumentOutOfRangeException.ThrowIfNegative(direction);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(direction, Config.Directions);
            ArgumentOutOfRangeException.ThrowIfNegative(position);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(position, _perDirection);
            return All[(layer * Config.Directions + direction) * _perDirection + position];
        }
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
        // Parameter after parameter, as the flat storage holds them.
        var values = Values.Span;
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * bound);
    }
}
