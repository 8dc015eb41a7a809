namespace Recurrent;

/// <summary>
/// The recurrent cells Recurrent computes. Gate order and the meaning of each gate block
/// are PyTorch's, so weights move between Recurrent, PyTorch and ONNX without reordering.
/// Each value's facts (gates, states, parameters) are its <see cref="CellDefinition"/> in <c>Cells/</c>, registered in
/// <see cref="CellDefinitions"/>.
/// </summary>
public enum CellKind
{
    /// <summary>Elman RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh). One gate block.</summary>
    RnnTanh,

    /// <summary>Elman RNN, h' = relu(W_ih x + b_ih + W_hh h + b_hh). One gate block.</summary>
    RnnRelu,

    /// <summary>
    /// LSTM with gate blocks i, f, g, o (input, forget, cell candidate, output):
    /// c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
    /// </summary>
    Lstm,

    /// <summary>
    /// GRU as PyTorch and cuDNN compute it ("linear before reset"), gate blocks r, z, n:
    /// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
    /// </summary>
    GruResetAfter,

    /// <summary>
    /// GRU as the Deep Learning book (eq. 10.45–10.47) and Cho et al. v3 write it (Keras reset_after=False),
    /// gate blocks r, z, n: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), h' = (1 − z) ⊙ n + z ⊙ h.
    /// </summary>
    GruResetBefore,
}

/// <summary>Facts about each <see cref="CellKind"/> that every backend shares, read from its <see cref="CellDefinition"/>.</summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class CellKindExtensions
{
    /// <summary>Gate blocks per cell: rows of W_ih and W_hh are <c>GateCount · H</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cell"/> is not a registered cell.</exception>
    public static int GateCount(this CellKind cell) => cell.Definition().GateCount;

    /// <summary>Whether the cell carries a cell state c besides h (LSTM only).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cell"/> is not a registered cell.</exception>
    public static bool HasCellState(this CellKind cell) => cell.Definition().HasCellState;

    /// <summary>Whether the cell is one of the two GRU forms.</summary>
    public static bool IsGru(this CellKind cell) => cell is CellKind.GruResetAfter or CellKind.GruResetBefore;
}
