namespace Recurrent.Cells;

/// <summary>
/// Elman RNN (PyTorch's <c>nn.RNN</c>), h' = act(W_ih x + b_ih + W_hh h + b_hh) with act tanh or relu: one gate block,
/// which is the new h itself.
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class ElmanCell
{
    /// <summary><see cref="CellKind.RnnTanh"/>: <c>nn.RNN(nonlinearity='tanh')</c>.</summary>
    public static CellDefinition Tanh { get; } = Define(CellKind.RnnTanh);

    /// <summary><see cref="CellKind.RnnRelu"/>: <c>nn.RNN(nonlinearity='relu')</c>.</summary>
    public static CellDefinition Relu { get; } = Define(CellKind.RnnRelu);

    private static CellDefinition Define(CellKind kind) => new(kind, "RNN", gates: ["h"], states: ["h"], ParameterSpec.RnnBase);
}
