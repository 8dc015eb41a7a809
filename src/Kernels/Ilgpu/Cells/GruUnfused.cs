using ILGPU;
using static Recurrent.Kernels.Ilgpu.BinaryOps;
using static Recurrent.Kernels.Ilgpu.UnaryOps;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// The unfused operations both GRU forms share: they differ only in where r enters the candidate n, so r, z, h' and
/// the gradients through z and n are the same launches. Gate blocks r, z, n of [N, 3H].
/// </summary>
internal static class GruUnfused
{
    private static Block Gate(int g, int h) => new(g * h, 3 * h);

    /// <summary>r and z into their gate blocks: σ(gx + gr + b_ih + b_hh).</summary>
    public static void ResetAndUpdate(CellContext c, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden;
        Block all = new(0, 3 * h), bias = new(0, 0);
        var gates = s.Gates;
        c.Binary<Add>(s.InputProduct, all, s.RecurrentProduct, all, gates, all, n, 2 * h);
        c.Binary<Add>(gates, all, s.BiasIH, bias, gates, all, n, 2 * h);
        c.Binary<Add>(gates, all, s.BiasHH, bias, gates, all, n, 2 * h);
        c.Unary<Sigmoid>(gates, all, gates, all, n, 2 * h);
    }

    /// <summary>h_t = n + z ⊙ (h_{t−1} − n), through <paramref name="t1"/> [N, H].</summary>
    public static void Output(CellContext c, in ForwardStep s, ArrayView<float> t1)
    {
        int n = s.Batch, h = s.Hidden;
        Block hb = new(0, h), z = Gate(1, h), candidate = Gate(2, h);
        c.Binary<Subtract>(s.HPrev, new Block(0, s.HPrevStride), s.Gates, candidate, t1, hb, n, h);
        c.Binary<Multiply>(s.Gates, z, t1, hb, t1, hb, n, h);
        c.Binary<Add>(s.Gates, candidate, t1, hb, s.HOut, new Block(0, s.HOutStride), n, h);
    }

    /// <summary>
    /// From the step's whole hidden gradient dh + dy, left in <paramref name="t1"/>: dn = dh (1 − z)(1 − n²) into
    /// dInput's n block, and dz = dh (h − n) z (1 − z) into both dInput's and dRecur's z blocks.
    /// </summary>
    public static void UpdateAndCandidateGradients(CellContext c, in BackwardStep s, ArrayView<float> t1, ArrayView<float> t2, ArrayView<float> t3)
    {
        int n = s.Batch, h = s.Hidden;
        Block hb = new(0, h);
        var gates = s.Gates;
        c.Binary<Add>(s.Dh, hb, s.Dy, new Block(0, s.DyStride), t1, hb, n, h);
        c.Unary<OneMinus>(gates, Gate(1, h), t2, hb, n, h);
        c.Binary<Multiply>(t2, hb, t1, hb, t2, hb, n, h);
        c.Unary<TanhDerivative>(gates, Gate(2, h), t3, hb, n, h);
        c.Binary<Multiply>(t2, hb, t3, hb, s.DInput, Gate(2, h), n, h);
        c.Binary<Subtract>(s.HPrev, new Block(0, s.HPrevStride), gates, Gate(2, h), t2, hb, n, h);
        c.Binary<Multiply>(t2, hb, t1, hb, t2, hb, n, h);
        c.Unary<SigmoidDerivative>(gates, Gate(1, h), t3, hb, n, h);
        c.Binary<Multiply>(t2, hb, t3, hb, s.DInput, Gate(1, h), n, h);
        c.Unary<Copy>(s.DInput, Gate(1, h), s.DRecur, Gate(1, h), n, h);
    }

    /// <summary>The direct part of dh_{t−1}, (dh + dy) ⊙ z, from <paramref name="t1"/>, into dh.</summary>
    public static void DirectHiddenGradient(CellContext c, in BackwardStep s, ArrayView<float> t1)
    {
        Block hb = new(0, s.Hidden);
        c.Binary<Multiply>(t1, hb, s.Gates, Gate(1, s.Hidden), s.Dh, hb, s.Batch, s.Hidden);
    }
}
