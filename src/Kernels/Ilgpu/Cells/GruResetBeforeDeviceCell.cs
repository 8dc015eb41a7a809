using ILGPU;
using ILGPU.Runtime;
using static Recurrent.Kernels.Ilgpu.BinaryOps;
using static Recurrent.Kernels.Ilgpu.UnaryOps;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// GRU as the Deep Learning book writes it, gate blocks r, z, n: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn),
/// h' = (1 − z) ⊙ n + z ⊙ h. The n block's recurrent product needs r first, so a step splits around it: W_hr,z h, the
/// gates half (r, z, r ⊙ h), W_hn (r ⊙ h), the candidate half (n, h'); back, the gates half (dz, dn), d(r ⊙ h) =
/// dRecur_n · W_hn, the reset half (dr), then dRecur_r,z · W_hr,z. The step keeps r ⊙ h, the operand of dW_hn.
/// </summary>
/// <remarks>Thread-safety: stateless, so safe. Lifetime: nothing to free.</remarks>
public sealed class GruResetBeforeDeviceCell() : DeviceCell(3)
{
    /// <inheritdoc />
    public override bool KeepsStepValue => true;

    /// <inheritdoc />
    public override bool SeparateRecurrentGradient => true;

    /// <inheritdoc />
    public override void Forward(CellContext c, in ForwardStep s)
    {
        int h = s.Hidden, gh = 3 * h;
        // r and z see W_hh h; the candidate's block sees W_hn (r ⊙ h), known only after r.
        c.Gemm.Sgemm(false, true, s.Batch, 2 * h, h, 1, s.HPrev, s.HPrevStride, s.WeightHH, h, 0, s.RecurrentProduct, gh);
        ForwardPointwise(c, s);
        c.Gemm.Sgemm(false, true, s.Batch, h, h, 1, s.Extra, h, s.WeightHH.SubView(2L * h * h), h, 0, s.RecurrentProduct.SubView(2 * h), gh);
        if (c.Fused) CandidateFused(c.Kernels, s);
        else CandidateUnfused(c, s);
    }

    /// <inheritdoc />
    public override void Backward(CellContext c, in BackwardStep s)
    {
        int h = s.Hidden, gh = 3 * h;
        BackwardPointwise(c, s);
        c.Gemm.Sgemm(false, false, s.Batch, h, h, 1, s.DRecur.SubView(2 * h), gh, s.WeightHH.SubView(2L * h * h), h, 0, s.Scratch, h);
        if (c.Fused) ResetFused(c.Kernels, s);
        else ResetUnfused(c, s);
        c.Gemm.Sgemm(false, false, s.Batch, h, 2 * h, 1, s.DRecur, gh, s.WeightHH, h, 1, s.Dh, h);
    }

    /// <inheritdoc />
    /// <remarks>W_hr and W_hz act on h_{t−1} as usual; W_hn acts on the kept r ⊙ h of every step.</remarks>
    public override void RecurrentWeightGradient(CellContext c, in RecurrentWeightPass pass)
    {
        int h = pass.Hidden, gh = 3 * h;
        AddHiddenProducts(c, pass, 2 * h);
        c.Gemm.Sgemm(true, false, h, h, pass.Rows, 1, pass.DRecur.SubView(2 * h), gh, pass.Extra, h, 1, pass.DWeightHH.SubView(2L * h * h), h);
    }

    /// <summary>The gates half: r, z and r ⊙ h into <see cref="ForwardStep.Extra"/>.</summary>
    protected override void ForwardFused(IlgpuKernels kernels, in ForwardStep s) =>
        kernels.Load(GruResetBeforeKernels.Gates, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetBeforeKernels.Gates))(
            s.Extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.Gates, s.Extra, s.Shape);

    /// <summary>The gates half, unfused.</summary>
    protected override void ForwardUnfused(CellContext c, in ForwardStep s)
    {
        int h = s.Hidden;
        GruUnfused.ResetAndUpdate(c, s);
        c.Binary<Multiply>(s.Gates, new Block(0, 3 * h), s.HPrev, new Block(0, s.HPrevStride), s.Extra, new Block(0, h), s.Batch, h);
    }

    private static void CandidateFused(IlgpuKernels kernels, in ForwardStep s) =>
        kernels.Load(GruResetBeforeKernels.Candidate, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetBeforeKernels.Candidate))(
            s.Extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.HOut, s.Gates, s.Shape);

    private static void CandidateUnfused(CellContext c, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        var (t1, _, _) = c.Temporaries(n * h);
        Block candidate = new(2 * h, gh), candidateBias = new(2 * h, 0);
        c.Binary<Add>(s.InputProduct, candidate, s.BiasIH, candidateBias, s.Gates, candidate, n, h);
        c.Binary<Add>(s.Gates, candidate, s.RecurrentProduct, candidate, s.Gates, candidate, n, h);
        c.Binary<Add>(s.Gates, candidate, s.BiasHH, candidateBias, s.Gates, candidate, n, h);
        c.Unary<Tanh>(s.Gates, candidate, s.Gates, candidate, n, h);
        GruUnfused.Output(c, s, t1);
    }

    /// <summary>The gates half back: dz and dn, and the direct part of dh_{t−1}.</summary>
    protected override void BackwardFused(IlgpuKernels kernels, in BackwardStep s) =>
        kernels.Load(GruResetBeforeKernels.BackwardGates, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetBeforeKernels.BackwardGates))(
            s.Extent, s.Dy, s.Dh, s.Gates, s.HPrev, s.DInput, s.DRecur, s.Shape);

    /// <summary>The gates half back, unfused.</summary>
    protected override void BackwardUnfused(CellContext c, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden;
        var (t1, t2, t3) = c.Temporaries(n * h);
        Block candidate = new(2 * h, 3 * h);
        GruUnfused.UpdateAndCandidateGradients(c, s, t1, t2, t3);
        c.Unary<Copy>(s.DInput, candidate, s.DRecur, candidate, n, h);
        GruUnfused.DirectHiddenGradient(c, s, t1);
    }

    private static void ResetFused(IlgpuKernels kernels, in BackwardStep s) =>
        kernels.Load(GruResetBeforeKernels.BackwardReset, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(GruResetBeforeKernels.BackwardReset))(
            s.Extent, s.Scratch, s.Gates, s.HPrev, s.DInput, s.DRecur, s.Dh, s.Shape);

    private static void ResetUnfused(CellContext c, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden;
        var (_, t2, t3) = c.Temporaries(n * h);
        Block hb = new(0, h), reset = new(0, 3 * h);
        c.Binary<Multiply>(s.Scratch, hb, s.HPrev, new Block(0, s.HPrevStride), t2, hb, n, h);
        c.Unary<SigmoidDerivative>(s.Gates, reset, t3, hb, n, h);
        c.Binary<Multiply>(t2, hb, t3, hb, s.DInput, reset, n, h);
        c.Unary<Copy>(s.DInput, reset, s.DRecur, reset, n, h);
        c.Binary<Multiply>(s.Scratch, hb, s.Gates, reset, t2, hb, n, h);
        c.Binary<Add>(s.Dh, hb, t2, hb, s.Dh, hb, n, h);
    }
}

/// <summary>
/// GRU reset-before's fused kernels, two per step each way. Index k runs over the N·H elements (n = k / H, j = k mod H).
/// gx [N, 3H] = W_ih x_t and gr [N, 3H] the recurrent products, both without bias; <c>gates</c> [N, 3H] keeps r, z, n activated.
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class GruResetBeforeKernels
{
    /// <summary>
    /// First half of a step: r and z (gr holds W_hh h for their blocks), and r ⊙ h into
    /// <paramref name="resetHidden"/> [N, H], the operand of the n block's recurrent product that follows.
    /// </summary>
    public static void Gates(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> gates, ArrayView<float> resetHidden, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float r = DeviceMath.Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float z = DeviceMath.Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
        gates[row + j] = r;
        gates[row + h + j] = z;
        resetHidden[k] = r * hPrev[n * s.HPrevStride + j];
    }

    /// <summary>
    /// Second half: gr's n block now holds W_hn (r ⊙ h); n = tanh(gx_n + b_in + that + b_hn),
    /// h' = (1 − z) ⊙ n + z ⊙ h.
    /// </summary>
    public static void Candidate(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float z = gates[row + h + j];
        float candidate = DeviceMath.Tanh(gx[row + 2 * h + j] + biasIH[2 * h + j] + gr[row + 2 * h + j] + biasHH[2 * h + j]);
        gates[row + 2 * h + j] = candidate;
        hOut[n * s.HOutStride + j] = (1 - z) * candidate + z * hPrev[n * s.HPrevStride + j];
    }

    /// <summary>
    /// Backward, first half: dz and dn into dInput and dRecur (whose n block is the gradient of
    /// W_hn (r ⊙ h) + b_hn), and dh replaced by (dh + dy) ⊙ z. The caller then forms d(r ⊙ h) = dRecur_n · W_hn.
    /// </summary>
    public static void BackwardGates(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates,
        ArrayView<float> hPrev, ArrayView<float> dInput, ArrayView<float> dRecur, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float dhTotal = dh[k] + dy[n * s.DyStride + j];
        float z = gates[row + h + j], candidate = gates[row + 2 * h + j];
        float dn = dhTotal * (1 - z) * (1 - candidate * candidate);
        float dz = dhTotal * (hPrev[n * s.HPrevStride + j] - candidate) * z * (1 - z);
        dInput[row + h + j] = dz;
        dInput[row + 2 * h + j] = dn;
        dRecur[row + h + j] = dz;
        dRecur[row + 2 * h + j] = dn;
        dh[k] = dhTotal * z;
    }

    /// <summary>
    /// Backward, second half: from d(r ⊙ h) in <paramref name="dResetHidden"/> [N, H], dr into dInput and
    /// dRecur, and d(r ⊙ h) ⊙ r added into dh. The caller then adds dRecur[:, r and z] · W_hh[r and z rows].
    /// </summary>
    public static void BackwardReset(Index1D k, ArrayView<float> dResetHidden, ArrayView<float> gates, ArrayView<float> hPrev,
        ArrayView<float> dInput, ArrayView<float> dRecur, ArrayView<float> dh, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float r = gates[row + j], drh = dResetHidden[k];
        float dr = drh * hPrev[n * s.HPrevStride + j] * r * (1 - r);
        dInput[row + j] = dr;
        dRecur[row + j] = dr;
        dh[k] += drh * r;
    }
}
