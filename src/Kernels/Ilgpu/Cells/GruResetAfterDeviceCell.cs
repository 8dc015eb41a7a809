using ILGPU;
using ILGPU.Runtime;
using static Recurrent.Kernels.Ilgpu.BinaryOps;
using static Recurrent.Kernels.Ilgpu.UnaryOps;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// GRU as PyTorch and cuDNN compute it, gate blocks r, z, n: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),
/// h' = (1 − z) ⊙ n + z ⊙ h. One recurrent product over all 3H rows, as the usual cell. The step keeps W_hn h + b_hn
/// for dr; the recurrent sum's gradient differs from the input sum's in the n block (scaled by r).
/// </summary>
/// <remarks>Thread-safety: stateless, so safe. Lifetime: nothing to free.</remarks>
public sealed class GruResetAfterDeviceCell() : DeviceCell(3)
{
    /// <inheritdoc />
    public override bool KeepsStepValue => true;

    /// <inheritdoc />
    public override bool SeparateRecurrentGradient => true;

    /// <inheritdoc />
    protected override bool LeavesDirectHiddenGradient => true;

    /// <inheritdoc />
    protected override void ForwardFused(IlgpuKernels kernels, in ForwardStep s) =>
        kernels.Load(GruResetAfterKernels.Forward, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetAfterKernels.Forward))(
            s.Extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.HOut, s.Gates, s.Extra, s.Shape);

    /// <inheritdoc />
    protected override void BackwardFused(IlgpuKernels kernels, in BackwardStep s) =>
        kernels.Load(GruResetAfterKernels.Backward, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetAfterKernels.Backward))(
            s.Extent, s.Dy, s.Dh, s.Gates, s.Extra, s.HPrev, s.DInput, s.DRecur, s.Shape);

    /// <inheritdoc />
    protected override void ForwardUnfused(CellContext c, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        var (t1, _, _) = c.Temporaries(n * h);
        Block hb = new(0, h), candidate = new(2 * h, gh), candidateBias = new(2 * h, 0);
        var gates = s.Gates;
        GruUnfused.ResetAndUpdate(c, s);
        c.Binary<Add>(s.RecurrentProduct, candidate, s.BiasHH, candidateBias, s.Extra, hb, n, h);
        c.Binary<Multiply>(gates, new Block(0, gh), s.Extra, hb, t1, hb, n, h);
        c.Binary<Add>(s.InputProduct, candidate, s.BiasIH, candidateBias, gates, candidate, n, h);
        c.Binary<Add>(gates, candidate, t1, hb, gates, candidate, n, h);
        c.Unary<Tanh>(gates, candidate, gates, candidate, n, h);
        GruUnfused.Output(c, s, t1);
    }

    /// <inheritdoc />
    protected override void BackwardUnfused(CellContext c, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        var (t1, t2, t3) = c.Temporaries(n * h);
        Block hb = new(0, h), reset = new(0, gh), candidate = new(2 * h, gh);
        GruUnfused.UpdateAndCandidateGradients(c, s, t1, t2, t3);
        // dr = dn hn r (1 − r); the recurrent n block sees dn r
        c.Binary<Multiply>(s.DInput, candidate, s.Extra, hb, t2, hb, n, h);
        c.Unary<SigmoidDerivative>(s.Gates, reset, t3, hb, n, h);
        c.Binary<Multiply>(t2, hb, t3, hb, s.DInput, reset, n, h);
        c.Unary<Copy>(s.DInput, reset, s.DRecur, reset, n, h);
        c.Binary<Multiply>(s.DInput, candidate, s.Gates, reset, s.DRecur, candidate, n, h);
        GruUnfused.DirectHiddenGradient(c, s, t1);
    }
}

/// <summary>
/// GRU reset-after's fused step kernels. Index k runs over the N·H elements (n = k / H, j = k mod H). gx [N, 3H] = W_ih x_t
/// and gr [N, 3H] = W_hh h, both without bias; <c>gates</c> [N, 3H] keeps r, z, n activated.
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class GruResetAfterKernels
{
    /// <summary>
    /// r, z from both products; n = tanh(gx_n + b_in + r ⊙ (gr_n + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h.
    /// Keeps gr_n + b_hn in <paramref name="hiddenN"/> [N, H].
    /// </summary>
    public static void Forward(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> hOut, ArrayView<float> gates, ArrayView<float> hiddenN, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float r = DeviceMath.Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float z = DeviceMath.Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
        float hn = gr[row + 2 * h + j] + biasHH[2 * h + j];
        float candidate = DeviceMath.Tanh(gx[row + 2 * h + j] + biasIH[2 * h + j] + r * hn);
        float hp = hPrev[n * s.HPrevStride + j];
        hOut[n * s.HOutStride + j] = (1 - z) * candidate + z * hp;
        gates[row + j] = r;
        gates[row + h + j] = z;
        gates[row + 2 * h + j] = candidate;
        hiddenN[k] = hn;
    }

    /// <summary>
    /// Writes dInput [N, 3H] (gradient of W_ih x + b_ih), dRecur [N, 3H] (of W_hh h + b_hh: the n block is scaled by r),
    /// and replaces dh with the direct part of dh_{t−1}, (dh + dy) ⊙ z; the caller adds dRecur · W_hh.
    /// </summary>
    public static void Backward(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates, ArrayView<float> hiddenN,
        ArrayView<float> hPrev, ArrayView<float> dInput, ArrayView<float> dRecur, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float dhTotal = dh[k] + dy[n * s.DyStride + j];
        float r = gates[row + j], z = gates[row + h + j], candidate = gates[row + 2 * h + j];
        float hp = hPrev[n * s.HPrevStride + j];
        float dn = dhTotal * (1 - z) * (1 - candidate * candidate);
        float dz = dhTotal * (hp - candidate) * z * (1 - z);
        float dr = dn * hiddenN[k] * r * (1 - r);
        dInput[row + j] = dr;
        dInput[row + h + j] = dz;
        dInput[row + 2 * h + j] = dn;
        dRecur[row + j] = dr;
        dRecur[row + h + j] = dz;
        dRecur[row + 2 * h + j] = dn * r;
        dh[k] = dhTotal * z;
    }
}
