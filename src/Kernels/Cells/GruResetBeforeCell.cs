namespace Recurrent.Cells;

/// <summary>
/// GRU as the Deep Learning book (eq. 10.45–10.47) and Cho et al. v3 write it (Keras reset_after=False), the reset
/// applied to h before the recurrent product: gates r, z, n; n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn),
/// h' = (1 − z) ⊙ n + z ⊙ h. PyTorch has no module for it; its parameters are <c>nn.GRU</c>'s, names, shapes and order.
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class GruResetBeforeCell
{
    /// <summary><see cref="CellKind.GruResetBefore"/>.</summary>
    public static CellDefinition Definition { get; } =
        new(CellKind.GruResetBefore, "GRU", gates: ["r", "z", "n"], states: ["h"], ParameterSpec.RnnBase);
}
