using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// One cell on the device: what a step keeps for the backward pass, the step forward and back (the recurrent products
/// and the pointwise part, fused or unfused as <see cref="CellContext.Fused"/> says), and dW_hh after the backward loop.
/// The backend drives every cell through this alone; <see cref="DeviceCells"/> says which implementation a
/// <see cref="CellKind"/> has. Implementations are stateless (one instance serves every accelerator); per-accelerator
/// state lives in the <see cref="CellContext"/>.
/// </summary>
/// <remarks>Thread-safety: implementations hold no state (what a step runs on is the <see cref="CellContext"/>), so one instance serves every backend. Lifetime: nothing to free.</remarks>
public interface IDeviceCell
{
    /// <summary>Gate blocks G: W_ih and W_hh have G·H rows, the gate buffers G·H columns.</summary>
    int GateCount { get; }

    /// <summary>Whether a step keeps an [N, H] value for its backward step besides the gates (<see cref="ForwardStep.Extra"/>).</summary>
    bool KeepsStepValue { get; }

    /// <summary>
    /// Whether the gradient of the recurrent sum W_hh h + b_hh differs from that of W_ih x + b_ih, so
    /// <see cref="BackwardStep.DRecur"/> needs a buffer of its own; when false it may be <see cref="BackwardStep.DInput"/>.
    /// </summary>
    bool SeparateRecurrentGradient { get; }

    /// <summary>h_t (LSTM: and c_t) from h_{t−1}: the recurrent product into <see cref="ForwardStep.RecurrentProduct"/>, then the pointwise part.</summary>
    void Forward(CellContext context, in ForwardStep step);

    /// <summary>
    /// One step back: from dh_t + dy_t the gradients of both pre-activation sums (<see cref="BackwardStep.DInput"/>,
    /// <see cref="BackwardStep.DRecur"/>) and dh_{t−1} in place of dh_t (LSTM: dc_{t−1} in place of dc_t).
    /// </summary>
    void Backward(CellContext context, in BackwardStep step);

    /// <summary>dW_hh += the gradient over all steps, once the backward loop has filled <see cref="RecurrentWeightPass.DRecur"/>.</summary>
    void RecurrentWeightGradient(CellContext context, in RecurrentWeightPass pass);
}

/// <summary>
/// The usual shape of a cell: one recurrent product W_hh h_{t−1} over all G·H rows, then one pointwise part; back,
/// the pointwise part, then dh_{t−1} = dRecur · W_hh. A cell supplies its pointwise part fused and unfused; a cell that
/// splits its step (GRU reset-before) overrides the rest.
/// </summary>
/// <remarks>Thread-safety: holds only its gate count, so safe; the calls are as safe as the <see cref="CellContext"/> they are given. Lifetime: nothing to free.</remarks>
public abstract class DeviceCell(int gateCount) : IDeviceCell
{
    /// <inheritdoc />
    public int GateCount { get; } = gateCount;

    /// <inheritdoc />
    public virtual bool KeepsStepValue => false;

    /// <inheritdoc />
    public virtual bool SeparateRecurrentGradient => false;

    /// <summary>
    /// Whether the backward pointwise part leaves a direct part of dh_{t−1} in <see cref="BackwardStep.Dh"/>, which
    /// dRecur · W_hh is then added to (GRU: h_{t−1} enters h_t through z as well as through the products).
    /// </summary>
    protected virtual bool LeavesDirectHiddenGradient => false;

    /// <summary>The forward pointwise part as one kernel launch.</summary>
    protected abstract void ForwardFused(IlgpuKernels kernels, in ForwardStep step);

    /// <summary>The forward pointwise part as one launch per elementwise operation.</summary>
    protected abstract void ForwardUnfused(CellContext context, in ForwardStep step);

    /// <summary>The backward pointwise part as one kernel launch.</summary>
    protected abstract void BackwardFused(IlgpuKernels kernels, in BackwardStep step);

    /// <summary>The backward pointwise part as one launch per elementwise operation.</summary>
    protected abstract void BackwardUnfused(CellContext context, in BackwardStep step);

    /// <inheritdoc />
    public virtual void Forward(CellContext context, in ForwardStep step)
    {
        int h = step.Hidden, gh = GateCount * h;
        context.Gemm.Sgemm(false, true, step.Batch, gh, h, 1, step.HPrev, step.HPrevStride, step.WeightHH, h, 0, step.RecurrentProduct, gh);
        ForwardPointwise(context, step);
    }

    /// <inheritdoc />
    public virtual void Backward(CellContext context, in BackwardStep step)
    {
        BackwardPointwise(context, step);
        int h = step.Hidden, gh = GateCount * h;
        context.Gemm.Sgemm(false, false, step.Batch, h, gh, 1, step.DRecur, gh, step.WeightHH, h, LeavesDirectHiddenGradient ? 1 : 0, step.Dh, h);
    }

    /// <inheritdoc />
    public virtual void RecurrentWeightGradient(CellContext context, in RecurrentWeightPass pass) =>
        AddHiddenProducts(context, pass, GateCount * pass.Hidden);

    /// <summary><see cref="ForwardFused"/> or <see cref="ForwardUnfused"/>, as the context says.</summary>
    protected void ForwardPointwise(CellContext context, in ForwardStep step)
    {
        if (context.Fused) ForwardFused(context.Kernels, step);
        else ForwardUnfused(context, step);
    }

    /// <summary><see cref="BackwardFused"/> or <see cref="BackwardUnfused"/>, as the context says.</summary>
    protected void BackwardPointwise(CellContext context, in BackwardStep step)
    {
        if (context.Fused) BackwardFused(context.Kernels, step);
        else BackwardUnfused(context, step);
    }

    /// <summary>
    /// dW_hh[first <paramref name="rows"/> rows] += Σ_t dRecur_t[those columns]ᵀ · h_{t−1}. Packed rows come with every
    /// row's h_{t−1} gathered (<see cref="RecurrentWeightPass.PreviousHidden"/>): one product. A dense batch needs no
    /// gather: h_{t−1} is the layer output one step earlier in the direction's order, or h0 at its first step, so two
    /// products over all steps.
    /// </summary>
    protected void AddHiddenProducts(CellContext context, in RecurrentWeightPass pass, int rows)
    {
        int h = pass.Hidden, batch = pass.Batch, steps = pass.Steps, gh = GateCount * h;
        var gemm = context.Gemm;
        if (pass.PreviousHidden.IsValid)
        {
            gemm.Sgemm(true, false, rows, h, pass.Rows, 1, pass.DRecur, gh, pass.PreviousHidden, h, 1, pass.DWeightHH, h);
            return;
        }
        if (steps > 1)
        {
            long firstWithPrevious = pass.Reverse ? 0 : batch;       // the rows of steps whose h_{t−1} is an output
            long previousOutput = pass.Reverse ? batch : 0;
            gemm.Sgemm(true, false, rows, h, (steps - 1) * batch, 1, pass.DRecur.SubView(firstWithPrevious * gh), gh,
                pass.Outputs.SubView(previousOutput * pass.OutputStride), pass.OutputStride, 1, pass.DWeightHH, h);
        }
        long firstStep = pass.Reverse ? steps - 1 : 0;
        gemm.Sgemm(true, false, rows, h, batch, 1, pass.DRecur.SubView(firstStep * batch * gh), gh, pass.H0, h, 1, pass.DWeightHH, h);
    }
}

/// <summary>
/// The sizes a pointwise step kernel needs besides its buffers. Gate buffers are [N, G·H] rows; hidden-state views
/// start at their (row 0, first feature) and step rows by a stride, so a direction reads and writes its H features of
/// a [T, N, D·H] layer output in place.
/// </summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
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

/// <summary>
/// The device buffers of one forward step, each view starting at the step's first element.
/// Gate buffers are [N, G·H]; hidden-state views are [N, H] rows with a stride. N is the step's rows: the whole batch,
/// or in a variable-length batch the sequences still running, or a run of them that share where h_{t−1} comes from
/// (rows are independent, so a step may be run as several of these).
/// </summary>
/// <remarks>Thread-safety: an immutable value; the device views it names are the caller's. Lifetime: owns none of its views: they must stay allocated while the step runs.</remarks>
public readonly struct ForwardStep
{
    /// <summary>N, the rows of this step.</summary>
    public required int Batch { get; init; }
    /// <summary>H.</summary>
    public required int Hidden { get; init; }
    /// <summary>W_ih x_t for this step, no bias [N, G·H].</summary>
    public required ArrayView<float> InputProduct { get; init; }
    /// <summary>W_hh h_{t−1}, no bias [N, G·H], written by the step (GRU reset-before: the n block holds W_hn (r ⊙ h)).</summary>
    public required ArrayView<float> RecurrentProduct { get; init; }
    /// <summary>W_hh [G·H, H], row-major.</summary>
    public required ArrayView<float> WeightHH { get; init; }
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
    /// <summary>
    /// Where <see cref="IDeviceCell.KeepsStepValue"/>: the step's [N, H] value for the backward pass, written
    /// (GRU reset-after: W_hn h + b_hn; reset-before: r ⊙ h). Else unused.
    /// </summary>
    public ArrayView<float> Extra { get; init; }

    /// <summary>The kernels' <see cref="StepShape"/> of this step.</summary>
    internal StepShape Shape => new(Hidden, HPrevStride, HOutStride, 0);

    /// <summary>The kernels' launch extent: one thread per element of [N, H].</summary>
    internal Index1D Extent => new(Batch * Hidden);
}

/// <summary>The device buffers of one backward step, with N rows as <see cref="ForwardStep"/>.</summary>
/// <remarks>Thread-safety: an immutable value; the device views it names are the caller's. Lifetime: owns none of its views: they must stay allocated while the step runs.</remarks>
public readonly struct BackwardStep
{
    /// <summary>N, the rows of this step.</summary>
    public required int Batch { get; init; }
    /// <summary>H.</summary>
    public required int Hidden { get; init; }
    /// <summary>dy_t, rows <see cref="DyStride"/> apart.</summary>
    public required ArrayView<float> Dy { get; init; }
    /// <summary>Row stride of <see cref="Dy"/>.</summary>
    public required int DyStride { get; init; }
    /// <summary>In: the gradient reaching h_t through the recurrence [N, H]. Out: dh_{t−1}.</summary>
    public required ArrayView<float> Dh { get; init; }
    /// <summary>LSTM: dc_t in, dc_{t−1} out [N, H].</summary>
    public ArrayView<float> Dc { get; init; }
    /// <summary>W_hh [G·H, H], row-major.</summary>
    public required ArrayView<float> WeightHH { get; init; }
    /// <summary>The forward step's activated gates [N, G·H].</summary>
    public required ArrayView<float> Gates { get; init; }
    /// <summary>LSTM: c_t [N, H].</summary>
    public ArrayView<float> CNew { get; init; }
    /// <summary>LSTM: c_{t−1} [N, H].</summary>
    public ArrayView<float> CPrev { get; init; }
    /// <summary>Where <see cref="IDeviceCell.KeepsStepValue"/>: the forward step's <see cref="ForwardStep.Extra"/> [N, H].</summary>
    public ArrayView<float> Extra { get; init; }
    /// <summary>[N, H] of device scratch the step may use between its launches (GRU reset-before: d(r ⊙ h)).</summary>
    public required ArrayView<float> Scratch { get; init; }
    /// <summary>h_{t−1}, rows <see cref="HPrevStride"/> apart.</summary>
    public required ArrayView<float> HPrev { get; init; }
    /// <summary>Row stride of <see cref="HPrev"/>.</summary>
    public required int HPrevStride { get; init; }
    /// <summary>Gradient of W_ih x + b_ih [N, G·H], written.</summary>
    public required ArrayView<float> DInput { get; init; }
    /// <summary>Gradient of W_hh h + b_hh [N, G·H], written; may be <see cref="DInput"/> unless <see cref="IDeviceCell.SeparateRecurrentGradient"/>.</summary>
    public required ArrayView<float> DRecur { get; init; }

    /// <summary>The kernels' <see cref="StepShape"/> of this step.</summary>
    internal StepShape Shape => new(Hidden, HPrevStride, 0, DyStride);

    /// <summary>The kernels' launch extent: one thread per element of [N, H].</summary>
    internal Index1D Extent => new(Batch * Hidden);
}

/// <summary>
/// What dW_hh needs of one layer direction after its backward loop. Every [rows, …] buffer holds the direction's
/// <see cref="Rows"/> rows: T·N of a dense batch, or the Σ b packed rows of a variable-length one (step t's b_t rows
/// after those of the steps before it; the real tokens only, so padding adds nothing to the gradient).
/// </summary>
/// <remarks>Thread-safety: an immutable value; the device views it names are the caller's. Lifetime: owns none of its views: they must stay allocated while the pass runs.</remarks>
public readonly struct RecurrentWeightPass
{
    /// <summary>T.</summary>
    public required int Steps { get; init; }
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>The rows of every step together: T·N, or Σ b packed.</summary>
    public required int Rows { get; init; }
    /// <summary>H.</summary>
    public required int Hidden { get; init; }
    /// <summary>Whether the direction runs from t = T − 1 down to 0.</summary>
    public required bool Reverse { get; init; }
    /// <summary>The gradient of the recurrent sum at every row [rows, G·H].</summary>
    public required ArrayView<float> DRecur { get; init; }
    /// <summary>h_t of every row: the layer output at (row 0, the direction's first feature), rows <see cref="OutputStride"/> apart.</summary>
    public required ArrayView<float> Outputs { get; init; }
    /// <summary>Row stride of <see cref="Outputs"/> (D·H).</summary>
    public required int OutputStride { get; init; }
    /// <summary>h0 of the direction [N, H].</summary>
    public required ArrayView<float> H0 { get; init; }
    /// <summary>
    /// Packed rows: h_{t−1} of every row [Σ b, H], gathered (a packed step's rows continue from a varying number of the
    /// previous step's rows, so no fixed shift of <see cref="Outputs"/> gives them). Unset for a dense batch.
    /// </summary>
    public ArrayView<float> PreviousHidden { get; init; }
    /// <summary>Where <see cref="IDeviceCell.KeepsStepValue"/>: every row's <see cref="ForwardStep.Extra"/> [rows, H].</summary>
    public ArrayView<float> Extra { get; init; }
    /// <summary>dW_hh [G·H, H], added into.</summary>
    public required ArrayView<float> DWeightHH { get; init; }
}
