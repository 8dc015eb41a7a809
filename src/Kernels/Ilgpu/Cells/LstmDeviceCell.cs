using ILGPU;
using ILGPU.Runtime;
using static Recurrent.Kernels.Ilgpu.BinaryOps;
using static Recurrent.Kernels.Ilgpu.UnaryOps;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// LSTM, gate blocks i, f, g, o: c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'). The step keeps the activated gates and c'.
/// </summary>
/// <remarks>Thread-safety: stateless, so safe. Lifetime: nothing to free.</remarks>
public sealed class LstmDeviceCell() : DeviceCell(4)
{
    /// <inheritdoc />
    protected override void ForwardFused(IlgpuKernels kernels, in ForwardStep s) =>
        kernels.Load(LstmKernels.Forward, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(LstmKernels.Forward))(
            s.Extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.CPrev, s.COut, s.HOut, s.Gates, s.Shape);

    /// <inheritdoc />
    protected override void BackwardFused(IlgpuKernels kernels, in BackwardStep s) =>
        kernels.Load(LstmKernels.Backward, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(LstmKernels.Backward))(
            s.Extent, s.Dy, s.Dh, s.Dc, s.Gates, s.CNew, s.CPrev, s.DInput, s.Shape);

    /// <inheritdoc />
    protected override void ForwardUnfused(CellContext c, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 4 * h;
        var (t1, _, _) = c.Temporaries(n * h);
        Block hb = new(0, h), all = new(0, gh), bias = new(0, 0);
        Block Gate(int g) => new(g * h, gh);
        var gates = s.Gates;
        c.Binary<Add>(s.InputProduct, all, s.RecurrentProduct, all, gates, all, n, gh);
        c.Binary<Add>(gates, all, s.BiasIH, bias, gates, all, n, gh);
        c.Binary<Add>(gates, all, s.BiasHH, bias, gates, all, n, gh);
        c.Unary<Sigmoid>(gates, Gate(0), gates, Gate(0), n, 2 * h);
        c.Unary<Tanh>(gates, Gate(2), gates, Gate(2), n, h);
        c.Unary<Sigmoid>(gates, Gate(3), gates, Gate(3), n, h);
        c.Binary<Multiply>(gates, Gate(1), s.CPrev, hb, s.COut, hb, n, h);
        c.Binary<Multiply>(gates, Gate(0), gates, Gate(2), t1, hb, n, h);
        c.Binary<Add>(s.COut, hb, t1, hb, s.COut, hb, n, h);
        c.Unary<Tanh>(s.COut, hb, t1, hb, n, h);
        c.Binary<Multiply>(gates, Gate(3), t1, hb, s.HOut, new Block(0, s.HOutStride), n, h);
    }

    /// <inheritdoc />
    protected override void BackwardUnfused(CellContext c, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 4 * h;
        var (t1, t2, t3) = c.Temporaries(n * h);
        Block hb = new(0, h);
        Block Gate(int g) => new(g * h, gh);
        var gates = s.Gates;
        var dg = s.DInput;
        c.Binary<Add>(s.Dh, hb, s.Dy, new Block(0, s.DyStride), t1, hb, n, h);  // the step's whole hidden gradient
        c.Unary<Tanh>(s.CNew, hb, t2, hb, n, h);
        c.Binary<Multiply>(t1, hb, t2, hb, dg, Gate(3), n, h);
        c.Unary<SigmoidDerivative>(gates, Gate(3), t3, hb, n, h);
        c.Binary<Multiply>(dg, Gate(3), t3, hb, dg, Gate(3), n, h);
        c.Unary<TanhDerivative>(t2, hb, t2, hb, n, h);
        c.Binary<Multiply>(t2, hb, gates, Gate(3), t2, hb, n, h);
        c.Binary<Multiply>(t2, hb, t1, hb, t2, hb, n, h);
        c.Binary<Add>(s.Dc, hb, t2, hb, s.Dc, hb, n, h);
        c.Binary<Multiply>(s.Dc, hb, gates, Gate(2), dg, Gate(0), n, h);
        c.Unary<SigmoidDerivative>(gates, Gate(0), t3, hb, n, h);
        c.Binary<Multiply>(dg, Gate(0), t3, hb, dg, Gate(0), n, h);
        c.Binary<Multiply>(s.Dc, hb, s.CPrev, hb, dg, Gate(1), n, h);
        c.Unary<SigmoidDerivative>(gates, Gate(1), t3, hb, n, h);
        c.Binary<Multiply>(dg, Gate(1), t3, hb, dg, Gate(1), n, h);
        c.Binary<Multiply>(s.Dc, hb, gates, Gate(0), dg, Gate(2), n, h);
        c.Unary<TanhDerivative>(gates, Gate(2), t3, hb, n, h);
        c.Binary<Multiply>(dg, Gate(2), t3, hb, dg, Gate(2), n, h);
        c.Binary<Multiply>(s.Dc, hb, gates, Gate(1), s.Dc, hb, n, h);
    }
}

/// <summary>
/// The LSTM's fused step kernels. Index k runs over the N·H elements (n = k / H, j = k mod H). gx [N, 4H] = W_ih x_t and
/// gr [N, 4H] = W_hh h, both without bias; <c>gates</c> [N, 4H] keeps i, f, g, o activated.
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class LstmKernels
{
    /// <summary>c' = f ⊙ c + i ⊙ g into <paramref name="cOut"/> (may be <paramref name="cPrev"/>), h' = o ⊙ tanh(c').</summary>
    public static void Forward(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> cPrev, ArrayView<float> cOut, ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 4 * h;
        float ig = DeviceMath.Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float fg = DeviceMath.Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
        float gg = DeviceMath.Tanh(gx[row + 2 * h + j] + gr[row + 2 * h + j] + biasIH[2 * h + j] + biasHH[2 * h + j]);
        float og = DeviceMath.Sigmoid(gx[row + 3 * h + j] + gr[row + 3 * h + j] + biasIH[3 * h + j] + biasHH[3 * h + j]);
        float c = fg * cPrev[k] + ig * gg;
        cOut[k] = c;
        hOut[n * s.HOutStride + j] = og * DeviceMath.Tanh(c);
        gates[row + j] = ig;
        gates[row + h + j] = fg;
        gates[row + 2 * h + j] = gg;
        gates[row + 3 * h + j] = og;
    }

    /// <summary>
    /// dh (the recurrent gradient) plus dy is the step's hidden gradient; <paramref name="dc"/> is updated in place to
    /// the gradient of c_{t−1}; dGates [N, 4H] is the gradient of both pre-activation sums.
    /// </summary>
    public static void Backward(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> dc, ArrayView<float> gates,
        ArrayView<float> cNew, ArrayView<float> cPrev, ArrayView<float> dGates, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 4 * h;
        float dhTotal = dh[k] + dy[n * s.DyStride + j];
        float ig = gates[row + j], fg = gates[row + h + j], gg = gates[row + 2 * h + j], og = gates[row + 3 * h + j];
        float tc = DeviceMath.Tanh(cNew[k]);
        float dcTotal = dc[k] + dhTotal * og * (1 - tc * tc);
        dGates[row + j] = dcTotal * gg * ig * (1 - ig);
        dGates[row + h + j] = dcTotal * cPrev[k] * fg * (1 - fg);
        dGates[row + 2 * h + j] = dcTotal * ig * (1 - gg * gg);
        dGates[row + 3 * h + j] = dhTotal * tc * og * (1 - og);
        dc[k] = dcTotal * fg;
    }
}
