namespace Recurrent.Cells;

/// <summary>
/// LSTM (PyTorch's <c>nn.LSTM</c>): gates i, f, g, o (input, forget, cell candidate, output) from
/// W_ih x + b_ih + W_hh h + b_hh; c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class LstmCell
{
    /// <summary><see cref="CellKind.Lstm"/>.</summary>
    public static CellDefinition Definition { get; } =
        new(CellKind.Lstm, "LSTM", gates: ["i", "f", "g", "o"], states: ["h", "c"], ParameterSpec.RnnBase);
}
