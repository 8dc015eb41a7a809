using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// The device buffers of one forward step's pointwise part, each view starting at the step's first element.
/// Gate buffers are [N, G·H]; hidden-state views are [N, H] rows with a stride.
/// </summary>
public readonly struct ForwardStep
{
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>H.</summary>
    public required int Hidden { get; init; }
    /// <summary>W_ih x_t for this step, no bias [N, G·H].</summary>
    public required ArrayView<float> InputProduct { get; init; }
    /// <summary>W_hh h_{t−1}, no bias [N, G·H] (GRU reset-before: the n block is filled between the two halves).</summary>
    public required ArrayView<float> RecurrentProduct { get; init; }
    /// <summary>b_ih [G·H].</summary>
    public required ArrayView<float> BiasIH { get; init; }
    /// <summary>b_hh [G·H].</summary>
    public required ArrayView<float> BiasHH { get; init; }
    /// <summary>h_{t−1}, rows <see cref="HPrevStride"/> apart.</summary>
    public required ArrayView<float> HPrev { get; init; }
    /// <summary>Row stride of <see cref="HPrev"/>.</summary>
    public required int HPrevStride { get; init; }
    /// <summary>h_t, written, rows <see cref="HOutStride"/> apart.</summary>
    public required ArrayView<float> HOut { get; init; }
    /// <summary>Row stride of <see cref="HOut"/>.</summary>
    public required int HOutStride { get; init; }
    /// <summary>LSTM: c_{t−1} [N, H]; else unused.</summary>
    public ArrayView<float> CPrev { get; init; }
    /// <summary>LSTM: c_t [N, H], written (may be <see cref="CPrev"/>); else unused.</summary>
    public ArrayView<float> COut { get; init; }
    /// <summary>Activated gates [N, G·H], written (RNN: h_t).</summary>
    public required ArrayView<float> Gates { get; init; }
    /// <summary>GRU reset-after: W_hn h + b_hn [N, H]; reset-before: r ⊙ h [N, H]; written. Else unused.</summary>
    public ArrayView<float> Extra { get; init; }
}

/// <summary>The device buffers of one backward step's pointwise part.</summary>
public readonly struct BackwardStep
{
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>H.</summary>
    public required int Hidden { get; init; }
    /// <summary>dy_t, rows <see cref="DyStride"/> apart.</summary>
    public required ArrayView<float> Dy { get; init; }
    /// <summary>Row stride of <see cref="Dy"/>.</summary>
    public required int DyStride { get; init; }
    /// <summary>In: the gradient reaching h_t through the recurrence [N, H]. Out (GRU): the direct part of dh_{t−1}.</summary>
    public required ArrayView<float> Dh { get; init; }
    /// <summary>LSTM: dc_t in, dc_{t−1} out [N, H].</summary>
    public ArrayView<float> Dc { get; init; }
    /// <summary>The forward step's activated gates [N, G·H].</summary>
    public required ArrayView<float> Gates { get; init; }
    /// <summary>LSTM: c_t [N, H].</summary>
    public ArrayView<float> CNew { get; init; }
    /// <summary>LSTM: c_{t−1} [N, H].</summary>
    public ArrayView<float> CPrev { get; init; }
    /// <summary>GRU reset-after: the forward's W_hn h + b_hn; reset-before second half: d(r ⊙ h) [N, H].</summary>
    public ArrayView<float> Extra { get; init; }
    /// <summary>h_{t−1}, rows <see cref="HPrevStride"/> apart.</summary>
    public required ArrayView<float> HPrev { get; init; }
    /// <summary>Row stride of <see cref="HPrev"/>.</summary>
    public required int HPrevStride { get; init; }
    /// <summary>Gradient of W_ih x + b_ih [N, G·H], written.</summary>
    public required ArrayView<float> DInput { get; init; }
    /// <summary>Gradient of the recurrent sum [N, G·H], written; the same buffer as <see cref="DInput"/> for LSTM and RNN.</summary>
    public required ArrayView<float> DRecur { get; init; }
}

/// <summary>
/// The pointwise part of a step. For every cell but GRU reset-before a step is one call; reset-before splits at the
/// n block's recurrent product W_hn (r ⊙ h): <see cref="Forward"/> then the product then <see cref="ForwardCandidate"/>,
/// and <see cref="Backward"/> then d(r ⊙ h) = dRecur_n · W_hn then <see cref="BackwardReset"/>.
/// </summary>
public interface ICellSteps
{
    /// <summary>Whether each step is one fused kernel.</summary>
    bool Fused { get; }
    /// <summary>A whole step; GRU reset-before: r, z and r ⊙ h.</summary>
    void Forward(CellKind cell, in ForwardStep step);
    /// <summary>GRU reset-before: n and h_t.</summary>
    void ForwardCandidate(in ForwardStep step);
    /// <summary>A whole step back; GRU reset-before: dz, dn, the direct part of dh_{t−1}.</summary>
    void Backward(CellKind cell, in BackwardStep step);
    /// <summary>GRU reset-before: dr and d(r ⊙ h) ⊙ r into dh_{t−1}.</summary>
    void BackwardReset(in BackwardStep step);
}

/// <summary>One <see cref="CellKernels"/> launch per step (two for GRU reset-before).</summary>
public sealed class FusedCellSteps(IlgpuKernels kernels) : ICellSteps
{
    /// <inheritdoc />
    public bool Fused => true;

    /// <inheritdoc />
    public void Forward(CellKind cell, in ForwardStep s)
    {
        var extent = new Index1D(s.Batch * s.Hidden);
        var shape = new StepShape(s.Hidden, s.HPrevStride, s.HOutStride, 0);
        switch (cell)
        {
            case CellKind.Lstm:
                kernels.LstmForward(extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.CPrev, s.COut, s.HOut, s.Gates, shape);
                break;
            case CellKind.RnnTanh:
                kernels.RnnForward<TanhActivation>()(extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HOut, s.Gates, shape);
                break;
            case CellKind.RnnRelu:
                kernels.RnnForward<ReluActivation>()(extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HOut, s.Gates, shape);
                break;
            case CellKind.GruResetAfter:
                kernels.GruResetAfterForward(extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.HOut, s.Gates, s.Extra, shape);
                break;
            case CellKind.GruResetBefore:
                kernels.GruResetBeforeGates(extent, s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.Gates, s.Extra, shape);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(cell), cell, "unknown cell kind");
        }
    }

    /// <inheritdoc />
    public void ForwardCandidate(in ForwardStep s) =>
        kernels.GruResetBeforeCandidate(new Index1D(s.Batch * s.Hidden), s.InputProduct, s.RecurrentProduct, s.BiasIH, s.BiasHH, s.HPrev, s.HOut, s.Gates,
            new StepShape(s.Hidden, s.HPrevStride, s.HOutStride, 0));

    /// <inheritdoc />
    public void Backward(CellKind cell, in BackwardStep s)
    {
        var extent = new Index1D(s.Batch * s.Hidden);
        var shape = new StepShape(s.Hidden, s.HPrevStride, 0, s.DyStride);
        switch (cell)
        {
            case CellKind.Lstm:
                kernels.LstmBackward(extent, s.Dy, s.Dh, s.Dc, s.Gates, s.CNew, s.CPrev, s.DInput, shape);
                break;
            case CellKind.RnnTanh:
                kernels.RnnBackward<TanhActivation>()(extent, s.Dy, s.Dh, s.Gates, s.DInput, shape);
                break;
            case CellKind.RnnRelu:
                kernels.RnnBackward<ReluActivation>()(extent, s.Dy, s.Dh, s.Gates, s.DInput, shape);
                break;
            case CellKind.GruResetAfter:
                kernels.GruResetAfterBackward(extent, s.Dy, s.Dh, s.Gates, s.Extra, s.HPrev, s.DInput, s.DRecur, shape);
                break;
            case CellKind.GruResetBefore:
                kernels.GruResetBeforeBackwardGates(extent, s.Dy, s.Dh, s.Gates, s.HPrev, s.DInput, s.DRecur, shape);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(cell), cell, "unknown cell kind");
        }
    }

    /// <inheritdoc />
    public void BackwardReset(in BackwardStep s) =>
        kernels.GruResetBeforeBackwardReset(new Index1D(s.Batch * s.Hidden), s.Extra, s.Gates, s.HPrev, s.DInput, s.DRecur, s.Dh,
            new StepShape(s.Hidden, s.HPrevStride, 0, s.DyStride));
}

/// <summary>
/// Every elementwise operation of a step as its own <see cref="ElementwiseKernels"/> launch over the whole [N, H] or
/// [N, G·H] block, with [N, H] temporaries in device memory: the baseline that shows what fusing saves.
/// </summary>
public sealed class UnfusedCellSteps(IlgpuAccelerator gpu) : ICellSteps, IDisposable
{
    private readonly IlgpuKernels _kernels = gpu.Kernels;
    private MemoryBuffer1D<float, Stride1D.Dense>? _scratch;

    /// <inheritdoc />
    public bool Fused => false;

    private (ArrayView<float> T1, ArrayView<float> T2, ArrayView<float> T3) Temporaries(int nh)
    {
        if (_scratch is null || _scratch.Length < 3L * nh)
        {
            _scratch?.Dispose();
            _scratch = gpu.Allocate(3L * nh, "unfused step temporaries [3, N, H]");
        }
        var view = _scratch.View;
        return (view.SubView(0, nh), view.SubView(nh, nh), view.SubView(2 * nh, nh));
    }

    private void U<TOp>(ArrayView<float> source, Block sb, ArrayView<float> destination, Block db, int rows, int cols) where TOp : struct, IUnaryOp =>
        _kernels.Unary<TOp>()(new Index2D(cols, rows), source, sb, destination, db);

    private void B<TOp>(ArrayView<float> a, Block ab, ArrayView<float> b, Block bb, ArrayView<float> destination, Block db, int rows, int cols)
        where TOp : struct, IBinaryOp =>
        _kernels.Binary<TOp>()(new Index2D(cols, rows), a, ab, b, bb, destination, db);

    /// <inheritdoc />
    public void Forward(CellKind cell, in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = cell.GateCount() * h;
        var (t1, _, _) = Temporaries(n * h);
        Block hb = new(0, h), all = new(0, gh), bias = new(0, 0);
        Block Gate(int g) => new(g * h, gh);
        var gates = s.Gates;
        switch (cell)
        {
            case CellKind.Lstm:
                B<BinaryOps.Add>(s.InputProduct, all, s.RecurrentProduct, all, gates, all, n, gh);
                B<BinaryOps.Add>(gates, all, s.BiasIH, bias, gates, all, n, gh);
                B<BinaryOps.Add>(gates, all, s.BiasHH, bias, gates, all, n, gh);
                U<UnaryOps.Sigmoid>(gates, Gate(0), gates, Gate(0), n, 2 * h);
                U<UnaryOps.Tanh>(gates, Gate(2), gates, Gate(2), n, h);
                U<UnaryOps.Sigmoid>(gates, Gate(3), gates, Gate(3), n, h);
                B<BinaryOps.Multiply>(gates, Gate(1), s.CPrev, hb, s.COut, hb, n, h);
                B<BinaryOps.Multiply>(gates, Gate(0), gates, Gate(2), t1, hb, n, h);
                B<BinaryOps.Add>(s.COut, hb, t1, hb, s.COut, hb, n, h);
                U<UnaryOps.Tanh>(s.COut, hb, t1, hb, n, h);
                B<BinaryOps.Multiply>(gates, Gate(3), t1, hb, s.HOut, new Block(0, s.HOutStride), n, h);
                break;
            case CellKind.RnnTanh:
            case CellKind.RnnRelu:
                B<BinaryOps.Add>(s.InputProduct, hb, s.RecurrentProduct, hb, gates, hb, n, h);
                B<BinaryOps.Add>(gates, hb, s.BiasIH, bias, gates, hb, n, h);
                B<BinaryOps.Add>(gates, hb, s.BiasHH, bias, gates, hb, n, h);
                if (cell == CellKind.RnnTanh) U<UnaryOps.Tanh>(gates, hb, gates, hb, n, h);
                else U<UnaryOps.Relu>(gates, hb, gates, hb, n, h);
                U<UnaryOps.Copy>(gates, hb, s.HOut, new Block(0, s.HOutStride), n, h);
                break;
            case CellKind.GruResetAfter:
            case CellKind.GruResetBefore:
                B<BinaryOps.Add>(s.InputProduct, all, s.RecurrentProduct, all, gates, all, n, 2 * h);
                B<BinaryOps.Add>(gates, all, s.BiasIH, bias, gates, all, n, 2 * h);
                B<BinaryOps.Add>(gates, all, s.BiasHH, bias, gates, all, n, 2 * h);
                U<UnaryOps.Sigmoid>(gates, all, gates, all, n, 2 * h);
                if (cell == CellKind.GruResetBefore)
                {
                    B<BinaryOps.Multiply>(gates, Gate(0), s.HPrev, new Block(0, s.HPrevStride), s.Extra, hb, n, h);
                    break;
                }
                B<BinaryOps.Add>(s.RecurrentProduct, Gate(2), s.BiasHH, new Block(2 * h, 0), s.Extra, hb, n, h);
                B<BinaryOps.Multiply>(gates, Gate(0), s.Extra, hb, t1, hb, n, h);
                B<BinaryOps.Add>(s.InputProduct, Gate(2), s.BiasIH, new Block(2 * h, 0), gates, Gate(2), n, h);
                B<BinaryOps.Add>(gates, Gate(2), t1, hb, gates, Gate(2), n, h);
                U<UnaryOps.Tanh>(gates, Gate(2), gates, Gate(2), n, h);
                GruOutput(s, t1);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(cell), cell, "unknown cell kind");
        }
    }

    /// <summary>h_t = n + z ⊙ (h_{t−1} − n).</summary>
    private void GruOutput(in ForwardStep s, ArrayView<float> t1)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        Block hb = new(0, h), z = new(h, gh), candidate = new(2 * h, gh);
        B<BinaryOps.Subtract>(s.HPrev, new Block(0, s.HPrevStride), s.Gates, candidate, t1, hb, n, h);
        B<BinaryOps.Multiply>(s.Gates, z, t1, hb, t1, hb, n, h);
        B<BinaryOps.Add>(s.Gates, candidate, t1, hb, s.HOut, new Block(0, s.HOutStride), n, h);
    }

    /// <inheritdoc />
    public void ForwardCandidate(in ForwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        var (t1, _, _) = Temporaries(n * h);
        Block candidate = new(2 * h, gh), candidateBias = new(2 * h, 0);
        B<BinaryOps.Add>(s.InputProduct, candidate, s.BiasIH, candidateBias, s.Gates, candidate, n, h);
        B<BinaryOps.Add>(s.Gates, candidate, s.RecurrentProduct, candidate, s.Gates, candidate, n, h);
        B<BinaryOps.Add>(s.Gates, candidate, s.BiasHH, candidateBias, s.Gates, candidate, n, h);
        U<UnaryOps.Tanh>(s.Gates, candidate, s.Gates, candidate, n, h);
        GruOutput(s, t1);
    }

    /// <inheritdoc />
    public void Backward(CellKind cell, in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = cell.GateCount() * h;
        var (t1, t2, t3) = Temporaries(n * h);
        Block hb = new(0, h), dyb = new(0, s.DyStride);
        Block Gate(int g) => new(g * h, gh);
        var gates = s.Gates;
        B<BinaryOps.Add>(s.Dh, hb, s.Dy, dyb, t1, hb, n, h);  // the step's whole hidden gradient
        switch (cell)
        {
            case CellKind.Lstm:
                var dg = s.DInput;
                U<UnaryOps.Tanh>(s.CNew, hb, t2, hb, n, h);
                B<BinaryOps.Multiply>(t1, hb, t2, hb, dg, Gate(3), n, h);
                U<UnaryOps.SigmoidDerivative>(gates, Gate(3), t3, hb, n, h);
                B<BinaryOps.Multiply>(dg, Gate(3), t3, hb, dg, Gate(3), n, h);
                U<UnaryOps.TanhDerivative>(t2, hb, t2, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, gates, Gate(3), t2, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, t1, hb, t2, hb, n, h);
                B<BinaryOps.Add>(s.Dc, hb, t2, hb, s.Dc, hb, n, h);
                B<BinaryOps.Multiply>(s.Dc, hb, gates, Gate(2), dg, Gate(0), n, h);
                U<UnaryOps.SigmoidDerivative>(gates, Gate(0), t3, hb, n, h);
                B<BinaryOps.Multiply>(dg, Gate(0), t3, hb, dg, Gate(0), n, h);
                B<BinaryOps.Multiply>(s.Dc, hb, s.CPrev, hb, dg, Gate(1), n, h);
                U<UnaryOps.SigmoidDerivative>(gates, Gate(1), t3, hb, n, h);
                B<BinaryOps.Multiply>(dg, Gate(1), t3, hb, dg, Gate(1), n, h);
                B<BinaryOps.Multiply>(s.Dc, hb, gates, Gate(0), dg, Gate(2), n, h);
                U<UnaryOps.TanhDerivative>(gates, Gate(2), t3, hb, n, h);
                B<BinaryOps.Multiply>(dg, Gate(2), t3, hb, dg, Gate(2), n, h);
                B<BinaryOps.Multiply>(s.Dc, hb, gates, Gate(1), s.Dc, hb, n, h);
                break;
            case CellKind.RnnTanh:
            case CellKind.RnnRelu:
                if (cell == CellKind.RnnTanh) U<UnaryOps.TanhDerivative>(gates, hb, t2, hb, n, h);
                else U<UnaryOps.ReluDerivative>(gates, hb, t2, hb, n, h);
                B<BinaryOps.Multiply>(t1, hb, t2, hb, s.DInput, hb, n, h);
                break;
            case CellKind.GruResetAfter:
            case CellKind.GruResetBefore:
                // dn = dh (1 − z)(1 − n²)
                U<UnaryOps.OneMinus>(gates, Gate(1), t2, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, t1, hb, t2, hb, n, h);
                U<UnaryOps.TanhDerivative>(gates, Gate(2), t3, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, t3, hb, s.DInput, Gate(2), n, h);
                // dz = dh (h − n) z (1 − z)
                B<BinaryOps.Subtract>(s.HPrev, new Block(0, s.HPrevStride), gates, Gate(2), t2, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, t1, hb, t2, hb, n, h);
                U<UnaryOps.SigmoidDerivative>(gates, Gate(1), t3, hb, n, h);
                B<BinaryOps.Multiply>(t2, hb, t3, hb, s.DInput, Gate(1), n, h);
                U<UnaryOps.Copy>(s.DInput, Gate(1), s.DRecur, Gate(1), n, h);
                if (cell == CellKind.GruResetAfter)
                {
                    // dr = dn hn r (1 − r); the recurrent n block sees dn r
                    B<BinaryOps.Multiply>(s.DInput, Gate(2), s.Extra, hb, t2, hb, n, h);
                    U<UnaryOps.SigmoidDerivative>(gates, Gate(0), t3, hb, n, h);
                    B<BinaryOps.Multiply>(t2, hb, t3, hb, s.DInput, Gate(0), n, h);
                    U<UnaryOps.Copy>(s.DInput, Gate(0), s.DRecur, Gate(0), n, h);
                    B<BinaryOps.Multiply>(s.DInput, Gate(2), gates, Gate(0), s.DRecur, Gate(2), n, h);
                }
                else
                {
                    U<UnaryOps.Copy>(s.DInput, Gate(2), s.DRecur, Gate(2), n, h);
                }
                B<BinaryOps.Multiply>(t1, hb, gates, Gate(1), s.Dh, hb, n, h);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(cell), cell, "unknown cell kind");
        }
    }

    /// <inheritdoc />
    public void BackwardReset(in BackwardStep s)
    {
        int n = s.Batch, h = s.Hidden, gh = 3 * h;
        var (_, t2, t3) = Temporaries(n * h);
        Block hb = new(0, h), reset = new(0, gh);
        B<BinaryOps.Multiply>(s.Extra, hb, s.HPrev, new Block(0, s.HPrevStride), t2, hb, n, h);
        U<UnaryOps.SigmoidDerivative>(s.Gates, reset, t3, hb, n, h);
        B<BinaryOps.Multiply>(t2, hb, t3, hb, s.DInput, reset, n, h);
        U<UnaryOps.Copy>(s.DInput, reset, s.DRecur, reset, n, h);
        B<BinaryOps.Multiply>(s.Extra, hb, s.Gates, reset, t2, hb, n, h);
        B<BinaryOps.Add>(s.Dh, hb, t2, hb, s.Dh, hb, n, h);
    }

    /// <inheritdoc />
    public void Dispose() => _scratch?.Dispose();
}
