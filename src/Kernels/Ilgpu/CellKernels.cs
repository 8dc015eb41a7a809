using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// The sizes a pointwise step kernel needs besides its buffers. Gate buffers are [N, G·H] rows; hidden-state views
/// start at their (row 0, first feature) and step rows by a stride, so a direction reads and writes its H features of
/// a [T, N, D·H] layer output in place.
/// </summary>
public readonly struct StepShape(int hidden, int hPrevStride, int hOutStride, int dyStride)
{
    /// <summary>H.</summary>
    public readonly int Hidden = hidden;
    /// <summary>Row stride of the previous hidden state (H for h0, D·H inside a layer output).</summary>
    public readonly int HPrevStride = hPrevStride;
    /// <summary>Row stride of the new hidden state (D·H).</summary>
    public readonly int HOutStride = hOutStride;
    /// <summary>Row stride of the output gradient (D·H).</summary>
    public readonly int DyStride = dyStride;
}

/// <summary>An activation passed into a kernel as a type, so the kernel is specialised and the call inlined.</summary>
public interface IActivation
{
    /// <summary>f(x).</summary>
    float Apply(float x);
    /// <summary>f'(x) written through y = f(x), which is what the forward pass keeps.</summary>
    float DerivativeFromOutput(float y);
}

/// <summary>tanh.</summary>
public readonly struct TanhActivation : IActivation
{
    /// <inheritdoc />
    public float Apply(float x) => DeviceMath.Tanh(x);
    /// <inheritdoc />
    public float DerivativeFromOutput(float y) => 1 - y * y;
}

/// <summary>max(x, 0), NaN for NaN.</summary>
public readonly struct ReluActivation : IActivation
{
    /// <inheritdoc />
    public float Apply(float x) => DeviceMath.Relu(x);
    /// <inheritdoc />
    /// <remarks>1 for a NaN output, as the reference and PyTorch's <c>threshold_backward</c>: the gradient passes a NaN h.</remarks>
    public float DerivativeFromOutput(float y) => y <= 0 ? 0 : 1;
}

/// <summary>
/// Fused pointwise kernels: one launch per step does every elementwise operation of a cell. Index k runs over the
/// N·H elements (n = k / H, j = k mod H). Inputs: gx [N, G·H] = W_ih x_t (no bias), gr [N, G·H] = W_hh h (no bias),
/// the biases [G·H]. Gate order is <see cref="CellKind"/>'s. What the backward pass needs is written to
/// <c>gates</c> [N, G·H] (activated gates; RNN: the new h).
/// </summary>
public static class CellKernels
{
    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>LSTM step: c' = f ⊙ c + i ⊙ g into <paramref name="cOut"/> (may be <paramref name="cPrev"/>), h' = o ⊙ tanh(c').</summary>
    public static void LstmForward(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> cPrev, ArrayView<float> cOut, ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 4 * h;
        float ig = Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float fg = Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
        float gg = DeviceMath.Tanh(gx[row + 2 * h + j] + gr[row + 2 * h + j] + biasIH[2 * h + j] + biasHH[2 * h + j]);
        float og = Sigmoid(gx[row + 3 * h + j] + gr[row + 3 * h + j] + biasIH[3 * h + j] + biasHH[3 * h + j]);
        float c = fg * cPrev[k] + ig * gg;
        cOut[k] = c;
        hOut[n * s.HOutStride + j] = og * DeviceMath.Tanh(c);
        gates[row + j] = ig;
        gates[row + h + j] = fg;
        gates[row + 2 * h + j] = gg;
        gates[row + 3 * h + j] = og;
    }

    /// <summary>
    /// LSTM step backward. dh (the recurrent gradient) plus dy is the step's hidden gradient; <paramref name="dc"/> is
    /// updated in place to the gradient of c_{t−1}; dGates [N, 4H] is the gradient of both pre-activation sums.
    /// </summary>
    public static void LstmBackward(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> dc, ArrayView<float> gates,
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

    /// <summary>Elman step: h' = f(gx + gr + b_ih + b_hh), also kept in <paramref name="gates"/> [N, H].</summary>
    public static void RnnForward<TActivation>(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
        where TActivation : struct, IActivation
    {
        int h = s.Hidden, n = k / h, j = k - n * h;
        float value = default(TActivation).Apply(gx[k] + gr[k] + biasIH[j] + biasHH[j]);
        gates[k] = value;
        hOut[n * s.HOutStride + j] = value;
    }

    /// <summary>Elman step backward: dGates [N, H] = (dh + dy) ⊙ f'(pre-activation).</summary>
    public static void RnnBackward<TActivation>(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates,
        ArrayView<float> dGates, StepShape s)
        where TActivation : struct, IActivation
    {
        int h = s.Hidden, n = k / h, j = k - n * h;
        dGates[k] = (dh[k] + dy[n * s.DyStride + j]) * default(TActivation).DerivativeFromOutput(gates[k]);
    }

    /// <summary>
    /// GRU reset-after step: r, z from both products; n = tanh(gx_n + b_in + r ⊙ (gr_n + b_hn));
    /// h' = (1 − z) ⊙ n + z ⊙ h. Keeps gr_n + b_hn in <paramref name="hiddenN"/> [N, H].
    /// </summary>
    public static void GruResetAfterForward(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> hOut, ArrayView<float> gates, ArrayView<float> hiddenN, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float r = Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float z = Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
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
    /// GRU reset-after step backward. Writes dInput [N, 3H] (gradient of W_ih x + b_ih), dRecur [N, 3H] (of W_hh h + b_hh:
    /// the n block is scaled by r), and replaces dh with the direct part of dh_{t−1}, (dh + dy) ⊙ z; the caller adds dRecur · W_hh.
    /// </summary>
    public static void GruResetAfterBackward(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates, ArrayView<float> hiddenN,
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

    /// <summary>
    /// GRU reset-before, first half of a step: r and z (gr holds W_hh h for their blocks), and r ⊙ h into
    /// <paramref name="resetHidden"/> [N, H], the operand of the n block's recurrent product that follows.
    /// </summary>
    public static void GruResetBeforeGates(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> gates, ArrayView<float> resetHidden, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float r = Sigmoid(gx[row + j] + gr[row + j] + biasIH[j] + biasHH[j]);
        float z = Sigmoid(gx[row + h + j] + gr[row + h + j] + biasIH[h + j] + biasHH[h + j]);
        gates[row + j] = r;
        gates[row + h + j] = z;
        resetHidden[k] = r * hPrev[n * s.HPrevStride + j];
    }

    /// <summary>
    /// GRU reset-before, second half: gr's n block now holds W_hn (r ⊙ h); n = tanh(gx_n + b_in + that + b_hn),
    /// h' = (1 − z) ⊙ n + z ⊙ h.
    /// </summary>
    public static void GruResetBeforeCandidate(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hPrev, ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
    {
        int h = s.Hidden, n = k / h, j = k - n * h, row = n * 3 * h;
        float z = gates[row + h + j];
        float candidate = DeviceMath.Tanh(gx[row + 2 * h + j] + biasIH[2 * h + j] + gr[row + 2 * h + j] + biasHH[2 * h + j]);
        gates[row + 2 * h + j] = candidate;
        hOut[n * s.HOutStride + j] = (1 - z) * candidate + z * hPrev[n * s.HPrevStride + j];
    }

    /// <summary>
    /// GRU reset-before backward, first half: dz and dn into dInput and dRecur (whose n block is the gradient of
    /// W_hn (r ⊙ h) + b_hn), and dh replaced by (dh + dy) ⊙ z. The caller then forms d(r ⊙ h) = dRecur_n · W_hn.
    /// </summary>
    public static void GruResetBeforeBackwardGates(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates,
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
    /// GRU reset-before backward, second half: from d(r ⊙ h) in <paramref name="dResetHidden"/> [N, H], dr into dInput and
    /// dRecur, and d(r ⊙ h) ⊙ r added into dh. The caller then adds dRecur[:, r and z] · W_hh[r and z rows].
    /// </summary>
    public static void GruResetBeforeBackwardReset(Index1D k, ArrayView<float> dResetHidden, ArrayView<float> gates, ArrayView<float> hPrev,
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
