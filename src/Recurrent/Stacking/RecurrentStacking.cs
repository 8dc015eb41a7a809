namespace Recurrent.Stacking;

/// <summary>
/// Rows of a buffer: row r starts at element <see cref="Offset"/> + r·<see cref="Stride"/>. A direction's half of a
/// bidirectional layer's output [rows, D·H] is (output, dir·H, D·H); a state slice [N, H] is (states, slice·N·H, H).
/// </summary>
/// <typeparam name="TBuffer">Where the elements live: host memory, a double array, a device buffer.</typeparam>
internal readonly record struct StridedRows<TBuffer>(TBuffer Buffer, long Offset, int Stride);

/// <summary>
/// Every argument of one layer and direction pass, forward and backward, as <see cref="RecurrentStacking{TBuffer}"/> hands
/// it to an <see cref="IDirectionCompute{TBuffer}"/> (the managed side of what the native <c>rc_rnn_direction</c> carries).
/// Rows are dense T·N, or with <see cref="Packed"/> its Σ b packed rows (the states then in its sorted order). The parameters
/// are the compute's own, found by <see cref="Layer"/>, <see cref="Direction"/> and spec position.
/// </summary>
/// <typeparam name="TBuffer">Where the rows live.</typeparam>
internal readonly struct DirectionPass<TBuffer>
{
    /// <summary>l.</summary>
    public required int Layer { get; init; }
    /// <summary>0 forward in time, 1 reverse.</summary>
    public required int Direction { get; init; }
    /// <summary>Whether this direction runs from its last step down to step 0.</summary>
    public bool Reverse => Direction == 1;
    /// <summary>T of the pass; with <see cref="Packed"/> its <see cref="PackedBatch.RunningSteps"/>, so every step has a running row.</summary>
    public required int Steps { get; init; }
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>I of this layer: the stack's input size for layer 0, D·H above.</summary>
    public required int InputSize { get; init; }
    /// <summary>H.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>The packed layout of a variable-length batch (its batch sizes b[0 … <see cref="Steps"/> − 1]), or null when dense.</summary>
    public PackedBatch? Packed { get; init; }
    /// <summary>Layer 0 whose input rows come from the compute's table (an embedding lookup): <see cref="X"/> and <see cref="DX"/> are then empty.</summary>
    public bool FromTable { get; init; }

    /// <summary>The layer's input rows of I (stride I).</summary>
    public StridedRows<TBuffer> X { get; init; }
    /// <summary>This direction's output rows of H inside the layer's [rows, D·H] output (stride D·H): written forward, read back (h_{t−1}) in backward.</summary>
    public StridedRows<TBuffer> Y { get; init; }
    /// <summary>Initial hidden state [N, H]; in backward the forward pass's.</summary>
    public StridedRows<TBuffer> H0 { get; init; }
    /// <summary>Initial cell state [N, H] (LSTM), else default.</summary>
    public StridedRows<TBuffer> C0 { get; init; }
    /// <summary>Forward: the final hidden state [N, H], overwritten.</summary>
    public StridedRows<TBuffer> HN { get; init; }
    /// <summary>Forward: the final cell state [N, H] (LSTM), overwritten.</summary>
    public StridedRows<TBuffer> CN { get; init; }

    /// <summary>Backward: this direction's rows of the output gradient (stride D·H, as <see cref="Y"/>).</summary>
    public StridedRows<TBuffer> DY { get; init; }
    /// <summary>Backward: the gradient of <see cref="HN"/> [N, H].</summary>
    public StridedRows<TBuffer> DHN { get; init; }
    /// <summary>Backward: the gradient of <see cref="CN"/> [N, H] (LSTM).</summary>
    public StridedRows<TBuffer> DCN { get; init; }
    /// <summary>Backward: the input gradient rows of I, overwritten, or added to with <see cref="AccumulateDX"/>.</summary>
    public StridedRows<TBuffer> DX { get; init; }
    /// <summary>Backward: whether the layer's other direction wrote <see cref="DX"/> first, so this one adds to it.</summary>
    public bool AccumulateDX { get; init; }
    /// <summary>Backward: the gradient of <see cref="H0"/> [N, H], overwritten.</summary>
    public StridedRows<TBuffer> DH0 { get; init; }
    /// <summary>Backward: the gradient of <see cref="C0"/> [N, H] (LSTM), overwritten.</summary>
    public StridedRows<TBuffer> DC0 { get; init; }
}

/// <summary>A buffer from <see cref="IDirectionCompute{TBuffer}.Allocate"/>; disposing <see cref="Owner"/> frees it (null: the GC does).</summary>
internal readonly record struct BufferLease<TBuffer>(TBuffer Buffer, IDisposable? Owner);

/// <summary>
/// What a backend implements for <see cref="RecurrentStacking{TBuffer}"/>: one layer and direction forward and backward, its
/// buffers, and the four moves of the packed layout. The parameters (values, and gradients that backward adds into) are
/// the compute's own; one instance serves one stack pass and is used from one thread.
/// </summary>
/// <typeparam name="TBuffer">Where the rows live.</typeparam>
internal interface IDirectionCompute<TBuffer>
{
    /// <summary>A buffer of at least <paramref name="elements"/>, not cleared: whoever gets it writes what it reads.</summary>
    BufferLease<TBuffer> Allocate(long elements, string what);

    /// <summary>Runs one layer and direction; returns what its backward needs when <paramref name="keepForBackward"/>.</summary>
    IDisposable? Forward(in DirectionPass<TBuffer> pass, bool keepForBackward);

    /// <summary>Back-propagates one layer and direction through the pass that returned <paramref name="saved"/>.</summary>
    void Backward(in DirectionPass<TBuffer> pass, IDisposable saved);

    /// <summary>Padded rows [T, N, F] → packed rows [Σ b, F] (<see cref="PackedBatch.Pack{T}"/>).</summary>
    void Pack(PackedBatch layout, TBuffer padded, TBuffer packed, int features);

    /// <summary>Packed rows → padded rows [T, N, F], zeros past each sequence's end (<see cref="PackedBatch.Unpack{T}"/>).</summary>
    void Unpack(PackedBatch layout, TBuffer packed, TBuffer padded, int features);

    /// <summary>States [S, N, H] in batch order → sorted order (<see cref="PackedBatch.SortStates{T}"/>).</summary>
    void SortStates(PackedBatch layout, TBuffer states, TBuffer sorted, long elements, int hidden);

    /// <summary>States [S, N, H] in sorted order → batch order (<see cref="PackedBatch.UnsortStates{T}"/>).</summary>
    void UnsortStates(PackedBatch layout, TBuffer sorted, TBuffer states, long elements, int hidden);
}

/// <summary>
/// What a forward pass of <see cref="RecurrentStacking{TBuffer}"/> keeps for its backward pass: each layer's input and the
/// top output (packed rows with <see cref="Packed"/>), the initial states as the directions read them, each direction's
/// saved state, and the buffers it allocated, which <see cref="Dispose"/> frees. Thread-safety: not safe; Dispose is idempotent.
/// </summary>
internal sealed class StackingTape<TBuffer> : IDisposable
{
    internal StackingTape(int layers, int directions, PackedBatch? packed, bool fromTable)
    {
        Packed = packed;
        FromTable = fromTable;
        Layers = new TBuffer[layers + 1];
        Saved = new IDisposable?[layers, directions];
    }

    /// <summary>The layout of a variable-length pass, or null when dense.</summary>
    public PackedBatch? Packed { get; }
    /// <summary>Whether layer 0's input came from the compute's table.</summary>
    public bool FromTable { get; }
    /// <summary>[L + 1]: layer l's input for l &lt; L (default for a table's layer 0), the top output at L.</summary>
    internal TBuffer[] Layers { get; }
    internal TBuffer H0 { get; set; } = default!;
    internal TBuffer C0 { get; set; } = default!;
    internal IDisposable?[,] Saved { get; }
    internal List<IDisposable> Owned { get; } = [];
    /// <summary>Whether <see cref="Dispose"/> ran.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Frees the saved states and the buffers the pass allocated.</summary>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        foreach (var saved in Saved) saved?.Dispose();
        foreach (var owned in Owned) owned.Dispose();
        Owned.Clear();
    }
}

/// <summary>
/// The stacking of every backend, written once: L layers × D directions of one-direction passes over an
/// <see cref="IDirectionCompute{TBuffer}"/>. It feeds each layer the previous layer's output; each direction writes its H
/// features of the [rows, D·H] output in place (offset dir·H, row stride D·H) and reads its half of the output gradient
/// likewise; the second direction adds its input gradient to the first's; state slice l·D + d goes to layer l, direction d.
/// A variable-length batch is packed once at the bottom (x, dy; the states sorted), runs every layer and direction on its
/// Σ b packed rows, and is unpacked once at the top (y, dx; the states unsorted).
/// </summary>
/// <remarks>
/// Buffers: the caller's x, h0, c0, y, hN, cN (and dy, dhN, dcN, dx, dh0, dc0) are read and written as given; the stacking
/// allocates the layer outputs below the top and the packed copies, and the tape owns them. A dense pass keeps the
/// caller's x, h0, c0 and y in the tape as they are: a caller whose backward reads them gives buffers nobody changes before
/// backward. Thread-safety: safe as far as the compute is: the stacking keeps its state in the tape of each pass.
/// </remarks>
/// <typeparam name="TBuffer">Where the rows live.</typeparam>
internal static class RecurrentStacking<TBuffer>
{
    /// <summary>
    /// Runs the stack over x [T, N, I] (empty with <paramref name="fromTable"/>) from h0, c0 [L·D, N, H]; writes y [T, N, D·H],
    /// hN, cN. With <paramref name="packed"/> the rows are cuDNN's packed layout inside, padded outside (y zero past each end).
    /// </summary>
    /// <returns>The tape for <see cref="Backward"/> when <paramref name="keepForBackward"/>, else null (everything freed).</returns>
    public static StackingTape<TBuffer>? Forward(IDirectionCompute<TBuffer> compute, RnnConfig config, int steps, int batch, PackedBatch? packed,
        TBuffer x, bool fromTable, TBuffer h0, TBuffer c0, TBuffer y, TBuffer hN, TBuffer cN, bool keepForBackward)
    {
        int hidden = config.HiddenSize, dirs = config.Directions, features = config.OutputSize;
        bool lstm = config.Cell.HasCellState();
        long states = (long)config.NumLayers * dirs * batch * hidden;
        var tape = new StackingTape<TBuffer>(config.NumLayers, dirs, packed, fromTable);
        try
        {
            int passSteps = steps;
            long rows = (long)steps * batch;
            TBuffer output = y, finalH = hN, finalC = cN;
            if (packed is not null)
            {
                passSteps = packed.RunningSteps;
                rows = packed.Rows;
                if (!fromTable) x = Packed(compute, tape, packed, x, config.InputSize, "x, packed [Σb, I]");
                h0 = Sorted(compute, tape, packed, h0, states, hidden, "h0, sorted");
                if (lstm) c0 = Sorted(compute, tape, packed, c0, states, hidden, "c0, sorted");
                output = Own(compute, tape, rows * features, "y, packed [Σb, D·H]");
                finalH = Own(compute, tape, states, "hN, sorted");
                if (lstm) finalC = Own(compute, tape, states, "cN, sorted");
            }
            tape.H0 = h0;
            tape.C0 = c0;
            tape.Layers[0] = fromTable ? default! : x;
            int nh = batch * hidden;
            for (int layer = 0; layer < config.NumLayers; layer++)
            {
                bool last = layer == config.NumLayers - 1;
                // The last layer writes straight into the output; the layers below into a buffer of their own, which the tape keeps
                // (the next layer's weight gradient reads it).
                var layerOutput = tape.Layers[layer + 1] = last ? output : Own(compute, tape, rows * features, $"layer {layer} output [T, N, D·H]");
                for (int dir = 0; dir < dirs; dir++)
                {
                    long state = (long)(layer * dirs + dir) * nh;
                    var pass = new DirectionPass<TBuffer>
                    {
                        Layer = layer, Direction = dir, Steps = passSteps, Batch = batch, InputSize = config.LayerInputSize(layer), HiddenSize = hidden,
                        Packed = packed, FromTable = layer == 0 && fromTable,
                        X = new(tape.Layers[layer], 0, config.LayerInputSize(layer)),
                        Y = new(layerOutput, dir * hidden, features),
                        H0 = new(h0, state, hidden), C0 = lstm ? new(c0, state, hidden) : default,
                        HN = new(finalH, state, hidden), CN = lstm ? new(finalC, state, hidden) : default,
                    };
                    var saved = compute.Forward(pass, keepForBackward);
                    if (keepForBackward) tape.Saved[layer, dir] = saved ?? throw new InvalidOperationException("The direction's forward kept nothing for backward.");
                }
            }
            if (packed is not null)
            {
                compute.Unpack(packed, output, y, features);
                compute.UnsortStates(packed, finalH, hN, states, hidden);
                if (lstm) compute.UnsortStates(packed, finalC, cN, states, hidden);
            }
            if (keepForBackward) return tape;
            tape.Dispose();
            return null;
        }
        catch
        {
            tape.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Back-propagates from dy [T, N, D·H], dhN, dcN through the pass of <paramref name="tape"/>: writes dx [T, N, I] (zeros past
    /// each end; nothing with a table input, whose gradient the compute adds into), dh0 and dc0; the compute adds the parameter gradients.
    /// </summary>
    public static void Backward(IDirectionCompute<TBuffer> compute, RnnConfig config, StackingTape<TBuffer> tape, int steps, int batch,
        TBuffer dy, TBuffer dhN, TBuffer dcN, TBuffer dx, TBuffer dh0, TBuffer dc0)
    {
        ObjectDisposedException.ThrowIf(tape.IsDisposed, tape);
        int hidden = config.HiddenSize, dirs = config.Directions, features = config.OutputSize;
        bool lstm = config.Cell.HasCellState();
        long states = (long)config.NumLayers * dirs * batch * hidden;
        var packed = tape.Packed;
        // The backward pass's own buffers; the tape keeps only the forward pass's.
        var owned = new StackingTape<TBuffer>(0, 0, null, false);
        try
        {
            int passSteps = steps;
            long rows = (long)steps * batch;
            TBuffer dOutput = dy, dInput = dx, dInitialH = dh0, dInitialC = dc0;
            if (packed is not null)
            {
                passSteps = packed.RunningSteps;
                rows = packed.Rows;
                dOutput = Packed(compute, owned, packed, dy, features, "dy, packed [Σb, D·H]");
                dhN = Sorted(compute, owned, packed, dhN, states, hidden, "dhN, sorted");
                if (lstm) dcN = Sorted(compute, owned, packed, dcN, states, hidden, "dcN, sorted");
                if (!tape.FromTable) dInput = Own(compute, owned, rows * config.InputSize, "dx, packed [Σb, I]");
                dInitialH = Own(compute, owned, states, "dh0, sorted");
                if (lstm) dInitialC = Own(compute, owned, states, "dc0, sorted");
            }
            int nh = batch * hidden;
            for (int layer = config.NumLayers - 1; layer >= 0; layer--)
            {
                int inputSize = config.LayerInputSize(layer);
                bool fromTable = layer == 0 && tape.FromTable;
                var dLayerInput = layer == 0 ? dInput : Own(compute, owned, rows * inputSize, $"layer {layer} input gradient [T, N, I]");
                for (int dir = 0; dir < dirs; dir++)
                {
                    long state = (long)(layer * dirs + dir) * nh;
                    var pass = new DirectionPass<TBuffer>
                    {
                        Layer = layer, Direction = dir, Steps = passSteps, Batch = batch, InputSize = inputSize, HiddenSize = hidden,
                        Packed = packed, FromTable = fromTable,
                        X = new(tape.Layers[layer], 0, inputSize),
                        Y = new(tape.Layers[layer + 1], dir * hidden, features),
                        H0 = new(tape.H0, state, hidden), C0 = lstm ? new(tape.C0, state, hidden) : default,
                        DY = new(dOutput, dir * hidden, features),
                        DHN = new(dhN, state, hidden), DCN = lstm ? new(dcN, state, hidden) : default,
                        DX = fromTable ? default : new(dLayerInput, 0, inputSize), AccumulateDX = dir > 0,
                        DH0 = new(dInitialH, state, hidden), DC0 = lstm ? new(dInitialC, state, hidden) : default,
                    };
                    compute.Backward(pass, tape.Saved[layer, dir]!);
                }
                dOutput = dLayerInput;
            }
            if (packed is not null)
            {
                if (!tape.FromTable) compute.Unpack(packed, dInput, dx, config.InputSize);
                compute.UnsortStates(packed, dInitialH, dh0, states, hidden);
                if (lstm) compute.UnsortStates(packed, dInitialC, dc0, states, hidden);
            }
        }
        finally
        {
            owned.Dispose();
        }
    }

    private static TBuffer Own(IDirectionCompute<TBuffer> compute, StackingTape<TBuffer> tape, long elements, string what)
    {
        var lease = compute.Allocate(elements, what);
        if (lease.Owner is not null) tape.Owned.Add(lease.Owner);
        return lease.Buffer;
    }

    private static TBuffer Packed(IDirectionCompute<TBuffer> compute, StackingTape<TBuffer> tape, PackedBatch packed, TBuffer padded, int features, string what)
    {
        var rows = Own(compute, tape, (long)packed.Rows * features, what);
        compute.Pack(packed, padded, rows, features);
        return rows;
    }

    private static TBuffer Sorted(IDirectionCompute<TBuffer> compute, StackingTape<TBuffer> tape, PackedBatch packed, TBuffer states, long elements, int hidden,
        string what)
    {
        var sorted = Own(compute, tape, elements, what);
        compute.SortStates(packed, states, sorted, elements, hidden);
        return sorted;
    }
}
