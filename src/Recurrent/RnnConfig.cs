namespace Recurrent;

/// <summary>
/// The shape of a recurrent stack: cell, input size I, hidden size H, layers L and directions D (1 or 2).
/// Letters used throughout: T steps, N batch, G gate blocks (<see cref="CellKindExtensions.GateCount"/>).
/// Thread-safety: immutable, so safe.
/// </summary>
/// <remarks>Lifetime: nothing to free.</remarks>
public sealed record RnnConfig
{
    /// <summary>Creates a configuration, checking every size.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, <paramref name="numLayers"/> is above <see cref="MaxLayers"/>, <paramref name="cell"/> is not a defined cell, or
    /// a parameter ([G·H, I], [G·H, H], [G·H, D·H]) or the state [L·D, 1, H] would have more elements than one array holds
    /// (the message names the sizes).</exception>
    public RnnConfig(CellKind cell, int inputSize, int hiddenSize, int numLayers = 1, bool bidirectional = false)
    {
        _ = cell.GateCount();
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numLayers, 1);
        // Each layer and direction holds its cell's named tensors: millions of layers would exhaust memory on objects long
        // before any size product overflowed.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(numLayers, MaxLayers);
        (Cell, InputSize, HiddenSize, NumLayers, Bidirectional) = (cell, inputSize, hiddenSize, numLayers, bidirectional);
        // Every parameter and per-step buffer must fit one array: a wrapped product would give an empty weight silently.
        int gates = cell.GateCount(), directions = Directions;
        Sizes.Elements(nameof(numLayers), "the states [L·D, N, H] (for N = 1)", ("L", numLayers), ("D", directions), ("H", hiddenSize));
        Sizes.Elements(nameof(hiddenSize), "weight_hh [G·H, H]", ("G", gates), ("H", hiddenSize), ("H", hiddenSize));
        Sizes.Elements(nameof(inputSize), "weight_ih_l0 [G·H, I]", ("G", gates), ("H", hiddenSize), ("I", inputSize));
        if (numLayers > 1)
            Sizes.Elements(nameof(hiddenSize), "weight_ih_l1 [G·H, D·H]", ("G", gates), ("H", hiddenSize), ("D", directions), ("H", hiddenSize));
        // All parameters together must fit one array too (one flat parameter span): each array alone can fit while
        // 4·L·D of them would need terabytes. Layers above the first are alike, so one of them counts for L − 1.
        Int128 total = directions * (LayerElements(0) + (numLayers - 1) * (numLayers > 1 ? LayerElements(1) : 0));
        string argument = numLayers > 1 ? nameof(numLayers) : nameof(hiddenSize);
        if (total > Array.MaxLength)
            throw new ArgumentOutOfRangeException(argument,
                $"{argument}: {numLayers} layers of {cell} with I = {inputSize}, H = {hiddenSize}, D = {directions} hold {total} parameters; at most {Array.MaxLength} are supported (one array).");
    }

    // Elements of one direction of a layer's parameters, in 128 bits: the shapes' products are checked above only for the
    // four every cell has.
    private Int128 LayerElements(int layer)
    {
        var sizes = LayerSizes(layer);
        Int128 sum = 0;
        foreach (var spec in Definition.Parameters)
            sum += spec.Shape(sizes).Aggregate((Int128)1, (product, d) => product * d);
        return sum;
    }

    /// <summary>The most layers a stack may have (far beyond any trained recurrent network, which have tens).</summary>
    public const int MaxLayers = 1 << 16;

    /// <summary>The cell.</summary>
    public CellKind Cell { get; }
    /// <summary>I: features per step of the input.</summary>
    public int InputSize { get; }
    /// <summary>H: features of the hidden state.</summary>
    public int HiddenSize { get; }
    /// <summary>L: stacked layers.</summary>
    public int NumLayers { get; }
    /// <summary>Whether each layer also runs over the reversed sequence.</summary>
    public bool Bidirectional { get; }

    /// <summary>D: 2 when bidirectional, else 1.</summary>
    public int Directions => Bidirectional ? 2 : 1;
    /// <summary>The cell's definition: gates, states, parameter specs.</summary>
    public CellDefinition Definition => Cell.Definition();
    /// <summary>G: gate blocks of the cell.</summary>
    public int GateCount => Cell.GateCount();
    /// <summary>Features per step of the output: D·H.</summary>
    public int OutputSize => Directions * HiddenSize;

    /// <summary>Input features of layer <paramref name="layer"/>: I for the first, D·H above.</summary>
    public int LayerInputSize(int layer) => layer == 0 ? InputSize : OutputSize;

    /// <summary>The sizes a parameter shape of layer <paramref name="layer"/> depends on.</summary>
    public LayerShape LayerSizes(int layer) => new(GateCount, HiddenSize, LayerInputSize(layer));

    /// <summary>
    /// Every parameter in PyTorch's <c>named_parameters()</c> order: for each layer, the forward direction's (in the order
    /// of <see cref="CellDefinition.Parameters"/>), then the reverse direction's.
    /// </summary>
    public IEnumerable<(string Name, int Layer, int Direction, ParameterSpec Spec, int[] Shape)> Parameters()
    {
        var specs = Definition.Parameters;
        for (int layer = 0; layer < NumLayers; layer++)
            for (int direction = 0; direction < Directions; direction++)
                foreach (var spec in specs)
                    yield return (spec.Name(layer, direction), layer, direction, spec, spec.Shape(LayerSizes(layer)));
    }

    /// <summary>Shape of h0, hN (and c0, cN): [L·D, N, H].</summary>
    public int[] StateShape(int batch) => [NumLayers * Directions, batch, HiddenSize];
}
