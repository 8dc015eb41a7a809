namespace Recurrent.Cells;

/// <summary>
/// GRU as PyTorch (<c>nn.GRU</c>) and cuDNN compute it, the reset applied after the recurrent product: gates r, z, n;
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class GruResetAfterCell
{
    /// <summary><see cref="CellKind.GruResetAfter"/>.</summary>
    public static CellDefinition Definition { get; } =
        new(CellKind.GruResetAfter, "GRU", gates: ["r", "z", "n"], states: ["h"], ParameterSpec.RnnBase);
}
