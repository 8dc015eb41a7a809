using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: InternalsVisibleTo("Recurrent.Tests")]

namespace Recurrent.Kernels.Cpu;

/// <summary>The elementwise operations of the native pointwise kernels, numbered as rc_rnn_elementwise takes them.</summary>
internal enum NativeElementwise
{
    Add = 0, Sub = 1, Mul = 2, Sigmoid = 3, Tanh = 4, Relu = 5, OneMinus = 6, ReluMask = 7, Copy = 8,
}

/// <summary>
/// What a training forward pass of <see cref="NativeRnn.Forward"/> kept for its backward pass: native memory
/// released by <see cref="SafeHandle.Dispose()"/> (or the finalizer). A disposed tape cannot be used again;
/// a call in flight keeps it alive until it returns.
/// </summary>
/// <remarks>
/// Bytes per row (token: T·N of them, or Σ b of a packed batch) of one layer and direction: LSTM 24·H (gates i, f, g, o;
/// h; c), GRU reset-after 20·H (gates r, z, n; h; W_hn h + b_hn), GRU reset-before 16·H (gates; h), Elman 4·H (h); plus
/// h0 (and c0) once. The input x is not kept: <see cref="NativeRnn.Backward"/> takes it again.
/// <para>Thread-safety: one pass's record; pass it to one backward at a time, and dispose it from one thread. Lifetime: owned by whoever called the training forward (in the library: the layer's <c>RnnForwardResult</c>); it must not be used after disposal.</para>
/// </remarks>
public sealed class NativeRnnTape : SafeHandle
{
    /// <summary>An empty handle; the native library fills it (marshalling needs a public constructor).</summary>
    public NativeRnnTape() : base(IntPtr.Zero, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The cell of the forward pass.</summary>
    public CellKind Cell { get; internal set; }
    /// <summary>T of the forward pass.</summary>
    public int Steps { get; internal set; }
    /// <summary>N of the forward pass.</summary>
    public int Batch { get; internal set; }
    /// <summary>I of the forward pass.</summary>
    public int InputSize { get; internal set; }
    /// <summary>H of the forward pass.</summary>
    public int HiddenSize { get; internal set; }
    /// <summary>Whether the forward pass walked t from T−1 down to 0.</summary>
    public bool Reverse { get; internal set; }
    /// <summary>The forward pass's batch sizes b [T] of a packed batch (its own copy), or empty when it was dense.</summary>
    public ReadOnlySpan<int> BatchSizes => BatchSizeArray;
    internal int[]? BatchSizeArray { get; set; }

    /// <summary>Bytes of native memory the tape holds.</summary>
    /// <exception cref="ObjectDisposedException">The tape was disposed.</exception>
    public long Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            return NativeRnn.rc_rnn_tape_bytes(this);
        }
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeRnn.rc_rnn_tape_free(handle);
        return true;
    }
}

/// <summary>
/// The input rows of a layer (T·N of them, [T, N, I], or the Σ b rows of a packed batch): dense (x itself) or rows of a
/// table, as an embedding lookup gives them:
/// row r is Table[Ids[r]] (zeros where Ids[r] = −1), Table [V, I]. From a table the native library projects each table
/// row once however often it is used, and backward returns the table's gradient instead of dx: with V &lt; T·N (a
/// vocabulary against a batch of tokens) the input projection, dW_ih and the input gradient cost V rows, not T·N.
/// </summary>
/// <remarks>Thread-safety: a stack-only view of the caller's spans, used by the thread that made it. Lifetime: lives no longer than the call it is passed to; owns nothing.</remarks>
public readonly ref struct RnnInputRows
{
    private RnnInputRows(ReadOnlySpan<float> x, int rowStride, ReadOnlySpan<float> table, ReadOnlySpan<int> ids, int vocab)
    {
        X = x;
        RowStride = rowStride;
        Table = table;
        Ids = ids;
        Vocab = vocab;
    }

    /// <summary>Dense input x [T, N, I] (or the packed rows); with <paramref name="rowStride"/> &gt; I, rows of I features each
    /// starting <paramref name="rowStride"/> elements after the one before (0: dense).</summary>
    public static RnnInputRows Dense(ReadOnlySpan<float> x, int rowStride = 0) => new(x, rowStride, default, default, 0);

    /// <summary>Rows of <paramref name="table"/> [V, I]: row r of the input is row ids[r] (zeros for −1); ids [T·N] (or one per packed row).</summary>
    public static RnnInputRows FromTable(ReadOnlySpan<float> table, int vocab, ReadOnlySpan<int> ids) => new(default, 0, table, ids, vocab);

    /// <summary>x [T, N, I] for dense input, else empty.</summary>
    public ReadOnlySpan<float> X { get; }
    /// <summary>Elements between the starts of consecutive rows of <see cref="X"/>; 0 means I (dense).</summary>
    public int RowStride { get; }
    /// <summary>The table [V, I] for table input, else empty.</summary>
    public ReadOnlySpan<float> Table { get; }
    /// <summary>Table rows, one per input row, each in [−1, V), for table input, else empty.</summary>
    public ReadOnlySpan<int> Ids { get; }
    /// <summary>V for table input, else 0.</summary>
    public int Vocab { get; }
    /// <summary>Whether the rows come from a table.</summary>
    public bool IsTable => Vocab > 0;

    /// <summary>Throws unless these rows fit <paramref name="rows"/> rows of I features (<paramref name="what"/>: T·N, or the packed rows).</summary>
    internal void Validate(long rows, int inputSize, string what)
    {
        if (!IsTable)
        {
            NativeRnn.RequireRows(X, "x", rows, inputSize, RowStride, what + " rows");
            return;
        }
        NativeRnn.Require(Table, "table", (long)Vocab * inputSize, $"[{Vocab}, {inputSize}]");
        if (Ids.Length < rows)
            throw new ArgumentException($"ids: expected [{rows}] ({what} ids), got {Ids.Length} ids.", "ids");
    }
}

/// <summary>
/// One layer and one direction of a recurrent network over a whole sequence, computed by the native library:
/// the input projection of all T steps as one matrix product, per step the recurrent product and the
/// pointwise kernel, and in backward the weight gradients as single products over all T·N rows.
/// Letters: T steps, N batch, I input features, H hidden features, G gate blocks (<see cref="CellKindExtensions.GateCount"/>).
/// A variable-length batch runs in cuDNN's packed layout (batch sizes b [T], Σ b rows; see <c>rc_rnn_direction</c> in
/// rc_api.h): step t computes only its b_t running sequences, so a pass costs its real tokens.
/// </summary>
/// <remarks>
/// Each call fills one <see cref="NativeRnnDirection"/> (the mirror of <c>rc_rnn_direction</c>) after checking every span's
/// length here, so the native side gets one pointer whatever the cell needs and a too-short buffer fails with an
/// <see cref="ArgumentException"/> naming it rather than a read past its end.
/// <para>Thread-safety: safe; stateless entry points over the native library, which serves concurrent calls. Lifetime: the class holds nothing; a training forward's <see cref="NativeRnnTape"/> is the caller's to dispose.</para>
/// </remarks>
public static partial class NativeRnn
{
    /// <summary>Runs one direction over a sequence.</summary>
    /// <param name="cell">The cell; gate order as <see cref="CellKind"/> defines.</param>
    /// <param name="fused">True for the fused pointwise kernels; false runs each elementwise operation as its own pass (the baseline).</param>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="inputSize">I ≥ 1.</param>
    /// <param name="hiddenSize">H ≥ 1.</param>
    /// <param name="reverse">Whether to walk t from T−1 down to 0.</param>
    /// <param name="weightIH">[G·H, I].</param>
    /// <param name="weightHH">[G·H, H].</param>
    /// <param name="biasIH">[G·H].</param>
    /// <param name="biasHH">[G·H].</param>
    /// <param name="input">The input rows [T, N, I]: x, or rows of a table (see <see cref="RnnInputRows"/>).</param>
    /// <param name="h0">Initial hidden state [N, H].</param>
    /// <param name="c0">Initial cell state [N, H] for LSTM; ignored (may be empty) otherwise.</param>
    /// <param name="y">Output [T, N, H] (or T·N rows of H, <paramref name="yStride"/> apart), overwritten. Must not overlap the inputs.</param>
    /// <param name="hN">Final hidden state [N, H], overwritten.</param>
    /// <param name="cN">Final cell state [N, H] for LSTM, overwritten; ignored otherwise.</param>
    /// <param name="keepForBackward">Whether to return a tape for <see cref="Backward"/>.</param>
    /// <param name="yStride">Elements between the starts of consecutive rows [t, n] of <paramref name="y"/>; 0 means H. A
    /// bidirectional stack passes 2H, each direction's y starting at its half of the [T, N, 2H] output, so no copy interleaves them.</param>
    /// <param name="batchSizes">Empty for a dense batch. Else b [T] of a packed batch: the sequences sorted longest first, step t
    /// running the first b_t of them (non-increasing, b[0] = N, b[T−1] ≥ 1); <paramref name="input"/> and <paramref name="y"/>
    /// are then Σ b rows, step t's from row Σ_{s&lt;t} b_s, and the states are in the sorted order. The forward direction leaves
    /// each sequence's state at its own last step in <paramref name="hN"/>; the reverse direction starts it from <paramref name="h0"/> there.</param>
    /// <param name="own">The cell's parameters after the four above, in <c>CellDefinition.Parameters</c> order (none for today's cells).</param>
    /// <returns>The tape when <paramref name="keepForBackward"/>, else null.</returns>
    /// <exception cref="ArgumentException">A size is below 1, <paramref name="batchSizes"/> has not T entries, or a buffer is too
    /// short; the message names it.</exception>
    /// <exception cref="NativeException">The native library refused an argument it checks itself (a table id outside [−1, V), batch
    /// sizes that are not a packed batch's) or failed (out of memory); the message says which.</exception>
    public static unsafe NativeRnnTape? Forward(CellKind cell, bool fused, int steps, int batch, int inputSize, int hiddenSize, bool reverse,
        ReadOnlySpan<float> weightIH, ReadOnlySpan<float> weightHH, ReadOnlySpan<float> biasIH, ReadOnlySpan<float> biasHH,
        RnnInputRows input, ReadOnlySpan<float> h0, ReadOnlySpan<float> c0,
        Span<float> y, Span<float> hN, Span<float> cN, bool keepForBackward, int yStride = 0, ReadOnlySpan<int> batchSizes = default,
        ReadOnlySpan<Memory<float>> own = default)
    {
        CheckSizes(steps, batch, inputSize, hiddenSize);
        long gh = (long)cell.GateCount() * hiddenSize;
        long nh = (long)batch * hiddenSize;
        bool hasCell = cell.HasCellState();
        var (rows, what) = Rows(steps, batch, batchSizes);
        Require(weightIH, nameof(weightIH), (long)gh * inputSize, $"[{gh}, {inputSize}]");
        Require(weightHH, nameof(weightHH), (long)gh * hiddenSize, $"[{gh}, {hiddenSize}]");
        Require(biasIH, nameof(biasIH), gh, $"[{gh}]");
        Require(biasHH, nameof(biasHH), gh, $"[{gh}]");
        input.Validate(rows, inputSize, what);
        Require(h0, nameof(h0), nh, $"[{batch}, {hiddenSize}]");
        RequireRows(y, nameof(y), rows, hiddenSize, yStride, batchSizes.IsEmpty ? $"[{steps}, {batch}, {hiddenSize}]" : $"[{rows}, {hiddenSize}]");
        Require(hN, nameof(hN), nh, $"[{batch}, {hiddenSize}]");
        if (hasCell)
        {
            Require(c0, nameof(c0), nh, $"[{batch}, {hiddenSize}]");
            Require(cN, nameof(cN), nh, $"[{batch}, {hiddenSize}]");
        }
        NativeRnnTape tape;
        int status;
        fixed (float* pwi = weightIH, pwh = weightHH, pbi = biasIH, pbh = biasHH, px = input.X, ptable = input.Table, ph0 = h0, pc0 = c0,
               py = y, phn = hN, pcn = cN)
        fixed (int* pids = input.Ids, pb = batchSizes)
        {
            var pass = Pass(cell, steps, batch, inputSize, hiddenSize, reverse, pwi, pwh, pbi, pbh, input, px, ptable, pids, pb);
            using var pinned = PinOwn(cell, inputSize, hiddenSize, own, nameof(own), (nint*)&pass.Parameters, ref pass.ParameterCount);
            pass.Fused = fused ? 1 : 0;
            pass.H0 = ph0;
            pass.C0 = hasCell ? pc0 : null;
            pass.Y = py;
            pass.YStride = yStride;
            pass.HN = phn;
            pass.CN = hasCell ? pcn : null;
            status = rc_rnn_forward(&pass, keepForBackward ? 1 : 0, out tape);
        }
        if (status != 0)
        {
            tape.Dispose();
            NativeLibrary.Check(status, nameof(rc_rnn_forward));
        }
        if (keepForBackward)
        {
            (tape.Cell, tape.Steps, tape.Batch, tape.InputSize, tape.HiddenSize, tape.Reverse) = (cell, steps, batch, inputSize, hiddenSize, reverse);
            tape.BatchSizeArray = batchSizes.IsEmpty ? null : batchSizes.ToArray();
            return tape;
        }
        tape.Dispose();
        return null;
    }

    /// <summary>
    /// Back-propagates through the forward pass that made <paramref name="tape"/>; the tape stays valid, so
    /// backward may run again (its parameter gradients then add up again).
    /// </summary>
    /// <param name="tape">From <see cref="Forward"/> with keepForBackward; not disposed. Its sizes (T, N, I, H, and a packed batch's
    /// batch sizes, whose Σ b rows the per-row buffers then hold) shape every buffer below.</param>
    /// <param name="weightIH">[G·H, I], as in the forward pass.</param>
    /// <param name="weightHH">[G·H, H], as in the forward pass.</param>
    /// <param name="input">The forward pass's input rows.</param>
    /// <param name="dy">Gradient of the output [T, N, H] (or T·N rows of H, <paramref name="dyStride"/> apart).</param>
    /// <param name="dhN">Gradient of the final hidden state [N, H].</param>
    /// <param name="dcN">Gradient of the final cell state [N, H] for LSTM; ignored otherwise.</param>
    /// <param name="dx">Dense input: gradient of x [T, N, I] (or T·N rows of I, <paramref name="dxStride"/> apart), overwritten, or added to
    /// with <paramref name="accumulateDX"/>. Table input: ignored (may be empty).</param>
    /// <param name="dTable">Table input: gradient of the table [V, I], accumulated into. Dense input: ignored (may be empty).</param>
    /// <param name="dh0">Gradient of h0 [N, H], overwritten.</param>
    /// <param name="dc0">Gradient of c0 [N, H] for LSTM, overwritten; ignored otherwise.</param>
    /// <param name="dWeightIH">[G·H, I], accumulated into.</param>
    /// <param name="dWeightHH">[G·H, H], accumulated into.</param>
    /// <param name="dBiasIH">[G·H], accumulated into.</param>
    /// <param name="dBiasHH">[G·H], accumulated into.</param>
    /// <param name="dyStride">Row stride of <paramref name="dy"/>; 0 means H.</param>
    /// <param name="dxStride">Row stride of <paramref name="dx"/>; 0 means I.</param>
    /// <param name="accumulateDX">Whether to add the input gradient to <paramref name="dx"/> rather than overwrite it: the second
    /// direction of a layer adds to the first's in its own matrix product, with no managed sum.</param>
    /// <param name="own">The cell's own parameters, as in the forward pass.</param>
    /// <param name="dOwn">Their gradients, same order and shapes, accumulated into.</param>
    /// <exception cref="ObjectDisposedException">The tape was disposed.</exception>
    /// <exception cref="ArgumentException">The tape is invalid or a buffer is too short; the message names it.</exception>
    /// <exception cref="NativeException">The native library refused an argument it checks itself (a table id outside [−1, V)) or
    /// failed (out of memory); the message says which.</exception>
    public static unsafe void Backward(NativeRnnTape tape, ReadOnlySpan<float> weightIH, ReadOnlySpan<float> weightHH, RnnInputRows input,
        ReadOnlySpan<float> dy, ReadOnlySpan<float> dhN, ReadOnlySpan<float> dcN,
        Span<float> dx, Span<float> dTable, Span<float> dh0, Span<float> dc0,
        Span<float> dWeightIH, Span<float> dWeightHH, Span<float> dBiasIH, Span<float> dBiasHH,
        int dyStride = 0, int dxStride = 0, bool accumulateDX = false, ReadOnlySpan<Memory<float>> own = default, ReadOnlySpan<Memory<float>> dOwn = default)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ObjectDisposedException.ThrowIf(tape.IsClosed, tape);
        if (tape.IsInvalid) throw new ArgumentException("tape: expected a tape from a forward pass run with keepForBackward.", nameof(tape));
        var (cell, steps, batch, inputSize, hiddenSize) = (tape.Cell, tape.Steps, tape.Batch, tape.InputSize, tape.HiddenSize);
        long gh = (long)cell.GateCount() * hiddenSize;
        long nh = (long)batch * hiddenSize;
        bool hasCell = cell.HasCellState();
        ReadOnlySpan<int> batchSizes = tape.BatchSizes;
        var (rows, what) = Rows(steps, batch, batchSizes);
        bool dense = batchSizes.IsEmpty;
        string Shape(int features) => dense ? $"[{steps}, {batch}, {features}]" : $"[{rows}, {features}]";
        Require(weightIH, nameof(weightIH), (long)gh * inputSize, $"[{gh}, {inputSize}]");
        Require(weightHH, nameof(weightHH), (long)gh * hiddenSize, $"[{gh}, {hiddenSize}]");
        input.Validate(rows, inputSize, what);
        RequireRows(dy, nameof(dy), rows, hiddenSize, dyStride, Shape(hiddenSize));
        Require(dhN, nameof(dhN), nh, $"[{batch}, {hiddenSize}]");
        if (input.IsTable) Require(dTable, nameof(dTable), (long)input.Vocab * inputSize, $"[{input.Vocab}, {inputSize}]");
        else RequireRows(dx, nameof(dx), rows, inputSize, dxStride, Shape(inputSize));
        Require(dh0, nameof(dh0), nh, $"[{batch}, {hiddenSize}]");
        Require(dWeightIH, nameof(dWeightIH), (long)gh * inputSize, $"[{gh}, {inputSize}]");
        Require(dWeightHH, nameof(dWeightHH), (long)gh * hiddenSize, $"[{gh}, {hiddenSize}]");
        Require(dBiasIH, nameof(dBiasIH), gh, $"[{gh}]");
        Require(dBiasHH, nameof(dBiasHH), gh, $"[{gh}]");
        if (hasCell)
        {
            Require(dcN, nameof(dcN), nh, $"[{batch}, {hiddenSize}]");
            Require(dc0, nameof(dc0), nh, $"[{batch}, {hiddenSize}]");
        }
        fixed (float* pwi = weightIH, pwh = weightHH, px = input.X, ptable = input.Table, pdy = dy, pdhn = dhN, pdcn = dcN, pdx = dx,
               pdtable = dTable, pdh0 = dh0, pdc0 = dc0, pdwi = dWeightIH, pdwh = dWeightHH, pdbi = dBiasIH, pdbh = dBiasHH)
        fixed (int* pids = input.Ids, pb = batchSizes)
        {
            // Backward reads only the weights; the bias slots stay null.
            var pass = Pass(cell, steps, batch, inputSize, hiddenSize, tape.Reverse, pwi, pwh, null, null, input, px, ptable, pids, pb);
            using var pinned = PinOwn(cell, inputSize, hiddenSize, own, nameof(own), (nint*)&pass.Parameters, ref pass.ParameterCount);
            long count = Base;
            using var pinnedGradients = PinOwn(cell, inputSize, hiddenSize, dOwn, nameof(dOwn), (nint*)&pass.Gradients, ref count);
            pass.Gradients[0] = (nint)pdwi;
            pass.Gradients[1] = (nint)pdwh;
            pass.Gradients[2] = (nint)pdbi;
            pass.Gradients[3] = (nint)pdbh;
            pass.DY = pdy;
            pass.DYStride = dyStride;
            pass.DHN = pdhn;
            pass.DCN = hasCell ? pdcn : null;
            pass.DX = input.IsTable ? null : pdx;
            pass.DXStride = dxStride;
            pass.AccumulateDX = accumulateDX ? 1 : 0;
            pass.DInputTable = input.IsTable ? pdtable : null;
            pass.DH0 = pdh0;
            pass.DC0 = hasCell ? pdc0 : null;
            NativeLibrary.Check(rc_rnn_backward(tape, &pass), nameof(rc_rnn_backward));
        }
    }

    // What both passes share: the shape, the parameter table and the input rows.
    private static unsafe NativeRnnDirection Pass(CellKind cell, int steps, int batch, int inputSize, int hiddenSize, bool reverse,
        float* weightIH, float* weightHH, float* biasIH, float* biasHH, in RnnInputRows input, float* x, float* table, int* ids, int* batchSizes)
    {
        var pass = new NativeRnnDirection
        {
            Cell = (int)cell, Steps = steps, Batch = batch, InputSize = inputSize, HiddenSize = hiddenSize, Reverse = reverse ? 1 : 0,
            BatchSizes = batchSizes,
            ParameterCount = Base,
            X = input.IsTable ? null : x,
            XStride = input.RowStride,
            InputTable = input.IsTable ? table : null,
            InputIds = input.IsTable ? ids : null,
            Vocab = input.Vocab,
        };
        pass.Parameters[0] = (nint)weightIH;
        pass.Parameters[1] = (nint)weightHH;
        pass.Parameters[2] = (nint)biasIH;
        pass.Parameters[3] = (nint)biasHH;
        return pass;
    }

    // weight_ih, weight_hh, bias_ih, bias_hh: the four every cell lists first (ParameterSpec.RnnBase).
    internal const int Base = 4;

    /// <summary>
    /// Pins a cell's own parameters (those after the four every cell has, in <c>CellDefinition.Parameters</c> order) or their
    /// gradients into table[4 ..] and sets count to the cell's parameter count. Per pass, not per step.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="own"/> has not the cell's own count, or one is too short.</exception>
    internal static unsafe PinnedParameters PinOwn(CellKind cell, int inputSize, int hiddenSize, ReadOnlySpan<Memory<float>> own, string name,
        nint* table, ref long count)
    {
        var specs = cell.Definition().Parameters;
        if (specs.Count > NativeRnnDirection.MaxParameters)
            throw new InvalidOperationException($"{cell} has {specs.Count} parameters, more than RC_RNN_MAX_PARAMETERS ({NativeRnnDirection.MaxParameters}); raise it on both sides.");
        if (own.Length != specs.Count - Base)
            throw new ArgumentException($"{name}: {cell} has {specs.Count - Base} parameters besides weight_ih, weight_hh, bias_ih and bias_hh" +
                $"{(specs.Count > Base ? $" ({string.Join(", ", specs.Skip(Base))})" : "")}; got {own.Length}.", name);
        count = specs.Count;
        if (own.IsEmpty) return default;
        var shape = new LayerShape(cell.GateCount(), hiddenSize, inputSize);
        var handles = new System.Buffers.MemoryHandle[own.Length];
        var pinned = new PinnedParameters(handles);
        try
        {
            for (int k = 0; k < own.Length; k++)
            {
                int[] dims = specs[Base + k].Shape(shape);
                Require(own[k].Span, $"{name}[{k}] ({specs[Base + k].Stem})", dims.Aggregate(1L, (a, d) => a * d), $"[{string.Join(", ", dims)}]");
                handles[k] = own[k].Pin();
                table[Base + k] = (nint)handles[k].Pointer;
            }
        }
        catch
        {
            pinned.Dispose();
            throw;
        }
        return pinned;
    }

    /// <summary>What <see cref="PinOwn"/> pinned; disposing unpins it.</summary>
    internal readonly struct PinnedParameters(System.Buffers.MemoryHandle[]? handles) : IDisposable
    {
        public void Dispose()
        {
            if (handles is null) return;
            foreach (var handle in handles) handle.Dispose();
        }
    }

    /// <summary>
    /// Runs one elementwise operation of the pointwise kernels on the instruction set in use: destination = a op b for
    /// Add, Sub, Mul, else f(a). For tests of the vector approximations of exp, sigmoid and tanh.
    /// </summary>
    internal static unsafe void Elementwise(NativeElementwise op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> destination)
    {
        bool binary = op <= NativeElementwise.Mul;
        if (destination.Length != a.Length || (binary && b.Length != a.Length))
            throw new ArgumentException($"destination, b: expected {a.Length} elements (the length of a), got {destination.Length} and {b.Length}.");
        fixed (float* pa = a, pb = b, pd = destination)
            NativeLibrary.Check(rc_rnn_elementwise((int)op, a.Length, pa, binary ? pb : null, pd), nameof(rc_rnn_elementwise));
    }

    /// <summary>The number of cells the native library registers; numbers 0 .. count − 1 are valid <see cref="CellKind"/> values there.</summary>
    internal static int NativeCellCount => rc_cell_count();

    /// <summary>
    /// What the native library registers as cell number <paramref name="cell"/>: its <see cref="CellKind"/> name, gate blocks,
    /// whether it carries a cell state and its parameter count. For the test that both sides number and describe the cells alike.
    /// </summary>
    /// <exception cref="NativeException">No cell has that number.</exception>
    internal static unsafe (string Name, int GateCount, bool HasCellState, int ParameterCount) NativeCellInfo(int cell)
    {
        byte* name;
        long gates, parameters;
        int hasCellState;
        NativeLibrary.Check(rc_cell_info(cell, &name, &gates, &hasCellState, &parameters), nameof(rc_cell_info));
        return (Marshal.PtrToStringUTF8((nint)name)!, checked((int)gates), hasCellState != 0, checked((int)parameters));
    }

    /// <summary>
    /// Frees the large workspaces and tapes the native library keeps for reuse after they are released (at most
    /// 16 blocks, 512 MiB in all): reusing them spares the kernel zeroing fresh pages on every call.
    /// </summary>
    public static void ReleaseCachedMemory() => rc_rnn_release_cached_memory();

    private static void CheckSizes(int steps, int batch, int inputSize, int hiddenSize)
    {
        if (steps < 1 || batch < 1 || inputSize < 1 || hiddenSize < 1)
            throw new ArgumentException($"steps, batch, inputSize, hiddenSize: expected ≥ 1, got {steps}, {batch}, {inputSize}, {hiddenSize}.");
    }

    // The rows of the per-row buffers: T·N, or Σ b of a packed batch (whose values the native library checks before it reads
    // a row: sizes that are not a packed batch's are refused there, whatever sum they give here).
    private static (long Rows, string What) Rows(int steps, int batch, ReadOnlySpan<int> batchSizes)
    {
        if (batchSizes.IsEmpty) return ((long)steps * batch, "T·N");
        if (batchSizes.Length != steps)
            throw new ArgumentException($"batchSizes: expected [{steps}] (one batch size per step) or empty (dense), got {batchSizes.Length} entries.", nameof(batchSizes));
        long rows = 0;
        foreach (int b in batchSizes) rows += b;
        return (rows, "Σ batchSizes");
    }

    // rows rows of width elements, stride apart (0: width); the last row needs only its width.
    internal static void RequireRows(ReadOnlySpan<float> buffer, string name, long rows, int width, int stride, string shape)
    {
        if (stride != 0 && stride < width)
            throw new ArgumentException($"{name}: row stride expected 0 (dense) or ≥ {width}, got {stride}.", name);
        long step = stride == 0 ? width : stride;
        Require(buffer, name, (rows - 1) * step + width, stride == 0 || stride == width ? shape : $"{shape} with row stride {stride}");
    }

    internal static void Require(ReadOnlySpan<float> buffer, string name, long needed, string shape)
    {
        if (buffer.Length < needed)
            throw new ArgumentException($"{name}: expected {shape} ({needed} elements), got {buffer.Length} elements.", name);
    }

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_forward(NativeRnnDirection* pass, int keepForBackward, out NativeRnnTape tape);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_backward(NativeRnnTape tape, NativeRnnDirection* pass);

    [LibraryImport(NativeLibrary.Name)]
    internal static unsafe partial int rc_rnn_direction_layout(long* size, long* offsets, int capacity);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_rnn_elementwise(int op, long count, float* a, float* b, float* destination);

    [LibraryImport(NativeLibrary.Name)]
    private static partial void rc_rnn_release_cached_memory();

    [LibraryImport(NativeLibrary.Name)]
    private static partial int rc_cell_count();

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_cell_info(int cell, byte** name, long* gates, int* hasCellState, long* parameters);

    [LibraryImport(NativeLibrary.Name)]
    internal static partial long rc_rnn_tape_bytes(NativeRnnTape tape);

    [LibraryImport(NativeLibrary.Name)]
    internal static partial void rc_rnn_tape_free(nint tape);
}
