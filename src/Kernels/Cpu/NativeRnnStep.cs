using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>
/// One layer and one (forward) direction with its weights resident in the native library: W_ih and W_hh packed once,
/// the biases copied, so each <see cref="Forward"/> pays only its two products and the cell's pointwise kernel (the same
/// step the whole-sequence pass runs). Made by <see cref="Create"/>; native memory released by
/// <see cref="SafeHandle.Dispose()"/> (or the finalizer).
/// </summary>
/// <remarks>
/// The handle copies the parameters when it is created and never reads the spans again: a later change to them is not
/// seen (create a new handle). Thread-safe: the handle is read-only after creation and each step allocates its own
/// workspaces, so several threads may step one handle at once.
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
    /// <exception cref="ArgumentException">A size is below 1 or a span is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library failed (out of memory).</exception>
    public static unsafe NativeRnnStep Create(CellKind cell, bool fused, int inputSize, int hiddenSize,
        ReadOnlySpan<float> weightIH, ReadOnlySpan<float> weightHH, ReadOnlySpan<float> biasIH, ReadOnlySpan<float> biasHH)
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
                ParameterCount = 4,
            };
            pass.Parameters[0] = (nint)pwi;
            pass.Parameters[1] = (nint)pwh;
            pass.Parameters[2] = (nint)pbi;
            pass.Parameters[3] = (nint)pbh;
            status = rc_rnn_step_create(&pass, out step);
        }
        if (status != 0)
        {
            step.Dispose();
            NativeLibrary.Check(status, nameof(rc_rnn_step_create));
        }
        (step.Cell, step.Fused, step.InputSize, step.HiddenSize) = (cell, fused, inputSize, hiddenSize);
        return step;
    }

    /// <summary>One step of <paramref name="batch"/> rows.</summary>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="x">Input [N, I].</param>
    /// <param name="h">Hidden state [N, H].</param>
    /// <param name="c">Cell state [N, H] for LSTM; ignored (may be empty) otherwise.</param>
    /// <param name="hOut">The new hidden state [N, H], overwritten; must not overlap <paramref name="h"/> or <paramref name="x"/>.</param>
    /// <param name="cOut">The new cell state [N, H] for LSTM, overwritten (may be <paramref name="c"/> itself); ignored otherwise.</param>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="ArgumentException">N is below 1 or a span is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library refused an argument or failed (out of memory).</exception>
    public unsafe void Forward(int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> c, Span<float> hOut, Span<float> cOut)
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
        fixed (float* px = x, ph = h, pc = c, pho = hOut, pco = cOut)
            NativeLibrary.Check(rc_rnn_step_forward(this, batch, px, ph, hasCell ? pc : null, pho, hasCell ? pco : null), nameof(rc_rnn_step_forward));
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        rc_rnn_step_free(handle);
        return true;
    }

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_step_create(NativeRnnDirection* pass, out NativeRnnStep step);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_step_forward(NativeRnnStep step, long batch, float* x, float* h, float* c, float* hOut, float* cOut);

    [LibraryImport(NativeLibrary.Name)]
    private static partial long rc_rnn_step_bytes(NativeRnnStep step);

    [LibraryImport(NativeLibrary.Name)]
    private static partial void rc_rnn_step_free(nint step);
}
