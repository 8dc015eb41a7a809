using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>
/// One layer and one (forward) direction with its weights resident in the native library: W_ih and W_hh packed once,
/// the biases copied, so each <see cref="Forward"/> pays only its two products and the cell's pointwise kernel (the same
/// step the whole-sequence pass runs), and, for a handle made for training, each <see cref="Backward"/> only its products
/// and the cell's backward kernel (the whole-sequence backward's step). Made by <see cref="Create"/>; native memory
/// released by <see cref="SafeHandle.Dispose()"/> (or the finalizer).
/// </summary>
/// <remarks>
/// The handle copies the parameters when it is created and never reads the spans again: a later change to them is not
/// seen (create a new handle). Thread-safety: safe; the handle is read-only after creation and each step allocates its own
/// workspaces, so several threads may step one handle at once (backward steps into the same gradient spans must not
/// run at once: they add with plain +=).
/// <para>Lifetime: owned by its creator (in the library: a <c>RecurrentStepper</c>, which disposes it); it must not be used after disposal.</para>
/// </remarks>
public sealed partial class NativeRnnStep : SafeHandle
{
    /// <summary>An empty handle; the native library fills it (marshalling needs a public constructor).</summary>
    public NativeRnnStep() : base(IntPtr.Zero, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The cell.</summary>
    public CellKind Cell { get; private set; }
    /// <summary>I.</summary>
    public int InputSize { get; private set; }
    /// <summary>H.</summary>
    public int HiddenSize { get; private set; }
    /// <summary>Whether the pointwise work runs fused.</summary>
    public bool Fused { get; private set; }
    /// <summary>Whether the handle was made for training: it then holds the weights packed for <see cref="Backward"/> too.</summary>
    public bool Training { get; private set; }

    /// <summary>
    /// Floats a training <see cref="Forward"/> of <paramref name="batch"/> rows keeps in its tape, per N·H: LSTM 8, GRU
    /// reset-after 6, GRU reset-before 5, Elman 2. The first N·H are a copy of h, the next N·H a copy of h_out.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batch"/> is below 1.</exception>
    public int TapeLength(int batch)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        return checked((int)rc_rnn_step_tape_floats(this, batch));
    }

    /// <summary>Bytes of native memory the packed weights and biases hold, about.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public long Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            return rc_rnn_step_bytes(this);
        }
    }

    /// <summary>Packs the weights of one layer and direction for stepping. Letters as in <see cref="NativeRnn"/>.</summary>
    /// <param name="cell">The cell.</param>
    /// <param name="fused">True for the fused pointwise kernels; false for one pass per operation (the baseline).</param>
    /// <param name="inputSize">I ≥ 1.</param>
    /// <param name="hiddenSize">H ≥ 1.</param>
    /// <param name="weightIH">[G·H, I]; copied.</param>
    /// <param name="weightHH">[G·H, H]; copied.</param>
    /// <param name="biasIH">[G·H]; copied.</param>
    /// <param name="biasHH">[G·H]; copied.</param>
    /// <param name="training">Also pack W_ih and W_hh for <see cref="Backward"/> (twice the weights' memory).</param>
    /// <param name="own">The cell's parameters after the four above, in <c>CellDefinition.Parameters</c> order (none for today's
    /// cells); copied.</param>
    /// <exception cref="ArgumentException">A size is below 1 or a span is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    public static unsafe NativeRnnStep Create(CellKind cell, bool fused, int inputSize, int hiddenSize,
        ReadOnlySpan<float> weightIH, ReadOnlySpan<float> weightHH, ReadOnlySpan<float> biasIH, ReadOnlySpan<float> biasHH, bool training = false,
        ReadOnlySpan<Memory<float>> own = default)
    {
        if (inputSize < 1 || hiddenSize < 1)
            throw new ArgumentException($"inputSize, hiddenSize: expected ≥ 1, got {inputSize}, {hiddenSize}.");
        long gh = (long)cell.GateCount() * hiddenSize;
        NativeRnn.Require(weightIH, nameof(weightIH), gh * inputSize, $"[{gh}, {inputSize}]");
        NativeRnn.Require(weightHH, nameof(weightHH), gh * hiddenSize, $"[{gh}, {hiddenSize}]");
        NativeRnn.Require(biasIH, nameof(biasIH), gh, $"[{gh}]");
        NativeRnn.Require(biasHH, nameof(biasHH), gh, $"[{gh}]");
        NativeRnnStep step;
        int status;
        fixed (float* pwi = weightIH, pwh = weightHH, pbi = biasIH, pbh = biasHH)
        {
            var pass = new NativeRnnDirection
            {
                Cell = (int)cell, Fused = fused ? 1 : 0, Steps = 1, Batch = 1, InputSize = inputSize, HiddenSize = hiddenSize,
            };
            pass.Parameters[0] = (nint)pwi;
            pass.Parameters[1] = (nint)pwh;
            pass.Parameters[2] = (nint)pbi;
            pass.Parameters[3] = (nint)pbh;
            using var pinned = NativeRnn.PinOwn(cell, inputSize, hiddenSize, own, nameof(own), (nint*)&pass.Parameters, ref pass.ParameterCount);
            status = rc_rnn_step_create(&pass, training ? 1 : 0, out step);
        }
        if (status != 0)
        {
            step.Dispose();
            NativeLibrary.Check(status, nameof(rc_rnn_step_create));
        }
        (step.Cell, step.Fused, step.InputSize, step.HiddenSize, step.Training) = (cell, fused, inputSize, hiddenSize, training);
        return step;
    }

    /// <summary>One step of <paramref name="batch"/> rows.</summary>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="x">Input [N, I].</param>
    /// <param name="h">Hidden state [N, H].</param>
    /// <param name="c">Cell state [N, H] for LSTM; ignored (may be empty) otherwise.</param>
    /// <param name="hOut">The new hidden state [N, H], overwritten; must not overlap <paramref name="h"/> or <paramref name="x"/>.</param>
    /// <param name="cOut">The new cell state [N, H] for LSTM, overwritten (may be <paramref name="c"/> itself); ignored otherwise.</param>
    /// <param name="tape">Empty for inference; else [<see cref="TapeLength"/>(N)], overwritten with what <see cref="Backward"/> needs
    /// (copies of h and c among it, so they may change afterwards; not x). Overlaps no other argument.</param>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="ArgumentException">N is below 1 or a span is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library refused an argument or failed (out of memory).</exception>
    public unsafe void Forward(int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> c, Span<float> hOut, Span<float> cOut,
        Span<float> tape = default)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        if (batch < 1) throw new ArgumentException($"batch: expected ≥ 1, got {batch}.", nameof(batch));
        long nh = (long)batch * HiddenSize;
        NativeRnn.Require(x, nameof(x), (long)batch * InputSize, $"[{batch}, {InputSize}]");
        NativeRnn.Require(h, nameof(h), nh, $"[{batch}, {HiddenSize}]");
        NativeRnn.Require(hOut, nameof(hOut), nh, $"[{batch}, {HiddenSize}]");
        bool hasCell = Cell.HasCellState();
        if (hasCell)
        {
            NativeRnn.Require(c, nameof(c), nh, $"[{batch}, {HiddenSize}]");
            NativeRnn.Require(cOut, nameof(cOut), nh, $"[{batch}, {HiddenSize}]");
        }
        bool train = !tape.IsEmpty;
        if (train) NativeRnn.Require(tape, nameof(tape), TapeLength(batch), $"[{TapeLength(batch)}] (TapeLength({batch}))");
        fixed (float* px = x, ph = h, pc = c, pho = hOut, pco = cOut, ptape = tape)
            NativeLibrary.Check(rc_rnn_step_forward(this, batch, px, ph, hasCell ? pc : null, pho, hasCell ? pco : null, train ? ptape : null),
                nameof(rc_rnn_step_forward));
    }

    /// <summary>
    /// Back-propagates one step that <see cref="Forward"/> ran with <paramref name="tape"/>: the gradients of x, h and c from
    /// those of h_out (and c_out), and the parameter gradients added into the four spans. Steps are back-propagated from the
    /// last to the first, each passing its <paramref name="dh"/> (and <paramref name="dc"/>) to the step before as dhOut (dcOut).
    /// </summary>
    /// <param name="batch">N of the forward step.</param>
    /// <param name="x">The forward step's input [N, I] again (the tape does not keep it).</param>
    /// <param name="tape">The forward step's tape; only read, so backward may run again.</param>
    /// <param name="dy">Gradient of h_out through the step's output (the layer above, or the loss) [N, H].</param>
    /// <param name="dhOut">Gradient of h_out through the step after [N, H] (zeros for the last step).</param>
    /// <param name="dcOut">Gradient of c_out through the step after [N, H] for LSTM; ignored otherwise.</param>
    /// <param name="dx">Gradient of x [N, I], overwritten.</param>
    /// <param name="dh">Gradient of h [N, H], overwritten; may be <paramref name="dhOut"/> itself (the same span: updated in place),
    /// else must not overlap it. Must not overlap <paramref name="dy"/>.</param>
    /// <param name="dc">Gradient of c [N, H] for LSTM, overwritten; may be <paramref name="dcOut"/> itself, else must not overlap it;
    /// ignored otherwise.</param>
    /// <param name="dWeightIH">[G·H, I], accumulated into.</param>
    /// <param name="dWeightHH">[G·H, H], accumulated into.</param>
    /// <param name="dBiasIH">[G·H], accumulated into.</param>
    /// <param name="dBiasHH">[G·H], accumulated into.</param>
    /// <param name="dOwn">The gradients of the cell's own parameters (as <see cref="Create"/>'s own), accumulated into.</param>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle was made without training.</exception>
    /// <exception cref="ArgumentException">N is below 1 or a span is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library refused an argument or failed (out of memory).</exception>
    public unsafe void Backward(int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> tape, ReadOnlySpan<float> dy, ReadOnlySpan<float> dhOut,
        ReadOnlySpan<float> dcOut, Span<float> dx, Span<float> dh, Span<float> dc,
        Span<float> dWeightIH, Span<float> dWeightHH, Span<float> dBiasIH, Span<float> dBiasHH, ReadOnlySpan<Memory<float>> dOwn = default)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        if (!Training)
            throw new InvalidOperationException("Backward: this handle was made without training, so it holds no weights packed for backward; create it with training: true.");
        if (batch < 1) throw new ArgumentException($"batch: expected ≥ 1, got {batch}.", nameof(batch));
        long nh = (long)batch * HiddenSize, gh = (long)Cell.GateCount() * HiddenSize;
        string state = $"[{batch}, {HiddenSize}]";
        NativeRnn.Require(x, nameof(x), (long)batch * InputSize, $"[{batch}, {InputSize}]");
        NativeRnn.Require(tape, nameof(tape), TapeLength(batch), $"[{TapeLength(batch)}] (TapeLength({batch}))");
        NativeRnn.Require(dy, nameof(dy), nh, state);
        NativeRnn.Require(dhOut, nameof(dhOut), nh, state);
        NativeRnn.Require(dx, nameof(dx), (long)batch * InputSize, $"[{batch}, {InputSize}]");
        NativeRnn.Require(dh, nameof(dh), nh, state);
        NativeRnn.Require(dWeightIH, nameof(dWeightIH), gh * InputSize, $"[{gh}, {InputSize}]");
        NativeRnn.Require(dWeightHH, nameof(dWeightHH), gh * HiddenSize, $"[{gh}, {HiddenSize}]");
        NativeRnn.Require(dBiasIH, nameof(dBiasIH), gh, $"[{gh}]");
        NativeRnn.Require(dBiasHH, nameof(dBiasHH), gh, $"[{gh}]");
        bool hasCell = Cell.HasCellState();
        if (hasCell)
        {
            NativeRnn.Require(dcOut, nameof(dcOut), nh, state);
            NativeRnn.Require(dc, nameof(dc), nh, state);
        }
        fixed (float* px = x, ptape = tape, pdy = dy, pdho = dhOut, pdco = dcOut, pdx = dx, pdh = dh, pdc = dc,
               pdwi = dWeightIH, pdwh = dWeightHH, pdbi = dBiasIH, pdbh = dBiasHH)
        {
            var gradients = default(NativeRnnDirection.PointerTable);
            nint* table = (nint*)&gradients;
            (table[0], table[1], table[2], table[3]) = ((nint)pdwi, (nint)pdwh, (nint)pdbi, (nint)pdbh);
            long count = NativeRnn.Base;
            using var pinned = NativeRnn.PinOwn(Cell, InputSize, HiddenSize, dOwn, nameof(dOwn), table, ref count);
            NativeLibrary.Check(rc_rnn_step_backward(this, batch, px, ptape, pdy, pdho, hasCell ? pdco : null, pdx, pdh, hasCell ? pdc : null,
                    (float**)table, count),
                nameof(rc_rnn_step_backward));
        }
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        rc_rnn_step_free(handle);
        return true;
    }

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_step_create(NativeRnnDirection* pass, int training, out NativeRnnStep step);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_step_forward(NativeRnnStep step, long batch, float* x, float* h, float* c, float* hOut, float* cOut, float* tape);

    [LibraryImport(NativeLibrary.Name)]
    private static partial long rc_rnn_step_tape_floats(NativeRnnStep step, long batch);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_step_backward(NativeRnnStep step, long batch, float* x, float* tape, float* dy, float* dhOut, float* dcOut,
        float* dx, float* dh, float* dc, float** gradients, long gradientCount);

    [LibraryImport(NativeLibrary.Name)]
    private static partial long rc_rnn_step_bytes(NativeRnnStep step);

    [LibraryImport(NativeLibrary.Name)]
    private static partial void rc_rnn_step_free(nint step);
}
