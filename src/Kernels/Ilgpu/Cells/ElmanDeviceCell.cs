using ILGPU;
using ILGPU.Runtime;
using static Recurrent.Kernels.Ilgpu.BinaryOps;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// Elman RNN, h' = f(W_ih x + b_ih + W_hh h + b_hh), one gate block; the step keeps h' as its gates. The fused kernels
/// take f as <typeparamref name="TActivation"/>; the unfused baseline launches the elementwise kernels of the same f
/// and f' (<typeparamref name="TApply"/>, <typeparamref name="TDerivative"/>), which the registration pairs with it.
/// </summary>
/// <remarks>Thread-safety: stateless, so safe. Lifetime: nothing to free.</remarks>
/// <typeparam name="TActivation">f, and f' through f's output.</typeparam>
/// <typeparam name="TApply">f as an elementwise operation.</typeparam>
/// <typeparam name="TDerivative">f' from f's output as an elementwise operation.</typeparam>
public sealed class ElmanDeviceCell<TActivation, TApply, TDerivative>() : DeviceCell(1)
    where TActivation : struct, IActivation
    where TApply : struct, IUnaryOp
    where TDerivative : struct, IUnaryOp
{
    /// <inheritdoc />
    protected override void ForwardFused(IlgpuKernels kernels, in ForwardStep s) =>
        kernels.Load(ElmanKernels.Forward<TActivation>, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(ElmanKernels.Forward<TActivation>))(
            s.Extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HOut, s.Gates, s.Shape);

    /// <inheritdoc />
    protected override void BackwardFused(IlgpuKernels kernels, in BackwardStep s) =>
        kernels.Load(ElmanKernels.Backward<TActivation>, a => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, StepShape>(ElmanKernels.Backward<TActivation>))(
            s.Extent, s.Dy, s.Dh, s.Gates, s.DInput, s.Shape);

    /// <inheritdoc />
    protected override void ForwardUnfused(CellContext c, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden;
        Block hb = new(0, h), bias = new(0, 0);
        var gates = s.Gates;
        c.Binary<Add>(s.InputProduct, hb, s.RecurrentProduct, hb, gates, hb, n, h);
        c.Binary<Add>(gates, hb, s.BiasIH, bias, gates, hb, n, h);
        c.Binary<Add>(gates, hb, s.BiasHH, bias, gates, hb, n, h);
        c.Unary<TApply>(gates, hb, gates, hb, n, h);
        c.Unary<UnaryOps.Copy>(gates, hb, s.HOut, new Block(0, s.HOutStride), n, h);
    }

    /// <inheritdoc />
    protected override void BackwardUnfused(CellContext c, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden;
        var (t1, t2, _) = c.Temporaries(n * h);
        Block hb = new(0, h);
        c.Binary<Add>(s.Dh, hb, s.Dy, new Block(0, s.DyStride), t1, hb, n, h);  // the step's whole hidden gradient
        c.Unary<TDerivative>(s.Gates, hb, t2, hb, n, h);
        c.Binary<Multiply>(t1, hb, t2, hb, s.DInput, hb, n, h);
    }
}

/// <summary>
/// The Elman RNN's fused step kernels. Index k runs over the N·H elements (n = k / H, j = k mod H). gx [N, H] = W_ih x_t
/// and gr [N, H] = W_hh h, both without bias.
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class ElmanKernels
{
    /// <summary>h' = f(gx + gr + b_ih + b_hh), also kept in <paramref name="gates"/> [N, H].</summary>
    public static void Forward<TActivation>(Index1D k, ArrayView<float> gx, ArrayView<float> gr, ArrayView<float> biasIH, ArrayView<float> biasHH,
        ArrayView<float> hOut, ArrayView<float> gates, StepShape s)
        where TActivation : struct, IActivation
    {
        int h = s.Hidden, n = k / h, j = k - n * h;
        float value = default(TActivation).Apply(gx[k] + gr[k] + biasIH[j] + biasHH[j]);
        gates[k] = value;
        hOut[n * s.HOutStride + j] = value;
    }

    /// <summary>dGates [N, H] = (dh + dy) ⊙ f'(pre-activation).</summary>
    public static void Backward<TActivation>(Index1D k, ArrayView<float> dy, ArrayView<float> dh, ArrayView<float> gates,
        ArrayView<float> dGates, StepShape s)
        where TActivation : struct, IActivation
    {
        int h = s.Hidden, n = k / h, j = k - n * h;
        dGates[k] = (dh[k] + dy[n * s.DyStride + j]) * default(TActivation).DerivativeFromOutput(gates[k]);
    }
}
