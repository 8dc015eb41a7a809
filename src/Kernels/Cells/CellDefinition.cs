namespace Recurrent;

/// <summary>The sizes a parameter's shape depends on, for one layer.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
/// <param name="Gates">G: gate blocks of the cell.</param>
/// <param name="Hidden">H: features of the hidden state.</param>
/// <param name="Input">Input features of this layer: I for the first, D·H above.</param>
public readonly record struct LayerShape(int Gates, int Hidden, int Input);

/// <summary>
/// One parameter every layer and direction of a cell holds: PyTorch's name stem and its shape. A cell lists its own,
/// so a later one (peephole weights, layer-norm gains, a projection) adds specs rather than values to a closed enum.
/// </summary>
/// <remarks>Thread-safety: immutable, so safe. Lifetime: nothing to free.</remarks>
/// <param name="stem">PyTorch's name without the layer suffix, such as <c>weight_ih</c>.</param>
/// <param name="shape">The shape for a layer's sizes.</param>
public sealed class ParameterSpec(string stem, Func<LayerShape, int[]> shape)
{
    /// <summary>PyTorch's name without the layer suffix, such as <c>weight_ih</c>.</summary>
    public string Stem { get; } = stem;

    /// <summary>The shape for a layer's sizes.</summary>
    public Func<LayerShape, int[]> Shape { get; } = shape;

    /// <summary><c>weight_ih</c>: [G·H, I].</summary>
    public static readonly ParameterSpec WeightIH = new("weight_ih", s => [s.Gates * s.Hidden, s.Input]);
    /// <summary><c>weight_hh</c>: [G·H, H].</summary>
    public static readonly ParameterSpec WeightHH = new("weight_hh", s => [s.Gates * s.Hidden, s.Hidden]);
    /// <summary><c>bias_ih</c>: [G·H].</summary>
    public static readonly ParameterSpec BiasIH = new("bias_ih", s => [s.Gates * s.Hidden]);
    /// <summary><c>bias_hh</c>: [G·H].</summary>
    public static readonly ParameterSpec BiasHH = new("bias_hh", s => [s.Gates * s.Hidden]);

    /// <summary>
    /// The four that PyTorch's <c>nn.RNNBase</c> gives every cell, in its <c>named_parameters()</c> order; every cell lists
    /// them first, at these positions (a cell's own follow).
    /// </summary>
    public static IReadOnlyList<ParameterSpec> RnnBase { get; } = [WeightIH, WeightHH, BiasIH, BiasHH];

    /// <summary>PyTorch's full name in a stack, such as <c>weight_hh_l1_reverse</c>.</summary>
    /// <param name="layer">The layer index k.</param>
    /// <param name="direction">0 forward, 1 reverse.</param>
    public string Name(int layer, int direction) => direction == 0 ? $"{Stem}_l{layer}" : $"{Stem}_l{layer}_reverse";

    /// <inheritdoc/>
    public override string ToString() => Stem;
}

/// <summary>
/// What every backend needs to know of one cell: its gate blocks in PyTorch's order, the states it carries and the
/// parameters of each layer and direction. One file per cell under <c>src/Kernels/Cells</c>, registered once in
/// <see cref="CellDefinitions"/>; each backend keeps its own step forward and backward per cell beside these facts.
/// </summary>
/// <remarks>Thread-safety: immutable after construction (the registered definitions are shared by every layer), so safe. Lifetime: nothing to free.</remarks>
public sealed class CellDefinition
{
    /// <summary>Checks and keeps a definition.</summary>
    /// <exception cref="ArgumentException">No gates, no states, h is not the first state, or no parameters.</exception>
    public CellDefinition(CellKind kind, string pyTorchModule, IReadOnlyList<string> gates, IReadOnlyList<string> states,
        IReadOnlyList<ParameterSpec> parameters)
    {
        if (gates.Count == 0) throw new ArgumentException("a cell has at least one gate block.", nameof(gates));
        // Every stack reads its output from h; c and later states follow it.
        if (states.Count == 0 || states[0] != "h") throw new ArgumentException("a cell's first state is h.", nameof(states));
        if (parameters.Count == 0) throw new ArgumentException("a cell has parameters.", nameof(parameters));
        if (parameters.Select(p => p.Stem).Distinct().Count() != parameters.Count)
            throw new ArgumentException("parameter stems repeat.", nameof(parameters));
        (Kind, PyTorchModule, Gates, States, Parameters) = (kind, pyTorchModule, gates.ToArray(), states.ToArray(), parameters.ToArray());
    }

    /// <summary>The cell.</summary>
    public CellKind Kind { get; }

    /// <summary>
    /// The <c>torch.nn</c> module whose parameter names, shapes and gate order this cell shares (<c>LSTM</c>, <c>GRU</c>,
    /// <c>RNN</c>); for a cell PyTorch has no module of, the one whose layout it takes.
    /// </summary>
    public string PyTorchModule { get; }

    /// <summary>
    /// The gate blocks in PyTorch's order: block g is rows [g·H, (g+1)·H) of every [G·H, ·] parameter and of the gate
    /// buffers [T, N, G·H].
    /// </summary>
    public IReadOnlyList<string> Gates { get; }

    /// <summary>G: the number of gate blocks.</summary>
    public int GateCount => Gates.Count;

    /// <summary>The states carried from step to step, each [N, H] per layer and direction: h first, then c for LSTM.</summary>
    public IReadOnlyList<string> States { get; }

    /// <summary>Whether a cell state c is carried besides h.</summary>
    public bool HasCellState => States.Contains("c");

    /// <summary>The parameters of each layer and direction in PyTorch's <c>named_parameters()</c> order.</summary>
    public IReadOnlyList<ParameterSpec> Parameters { get; }

    /// <summary>The position of <paramref name="spec"/> in <see cref="Parameters"/>: its index in each layer and direction's block.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="spec"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">This cell has no such parameter.</exception>
    public int IndexOf(ParameterSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        for (int i = 0; i < Parameters.Count; i++)
            if (ReferenceEquals(Parameters[i], spec)) return i;
        throw new ArgumentOutOfRangeException(nameof(spec), spec.Stem, $"spec: {Kind} has no parameter {spec.Stem}; it has {string.Join(", ", Parameters)}.");
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Kind}: gates {string.Join(", ", Gates)}; states {string.Join(", ", States)}";
}
