using System.Buffers;

namespace Recurrent;

/// <summary>One layer and direction of a forward pass, as <see cref="DirectionwiseBackend"/> hands it to a backend.</summary>
public readonly ref struct DirectionForward
{
    /// <summary>The cell.</summary>
    public required CellKind Cell { get; init; }
    /// <summary>T, N, I (this layer's input features) and H.</summary>
    public required int Steps { get; init; }
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>I of this layer: the stack's input size for layer 0, D·H above.</summary>
    public required int InputSize { get; init; }
    /// <summary>H.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Whether this direction runs from t = T−1 down to 0.</summary>
    public required bool Reverse { get; init; }
    /// <summary>
    /// Empty for a dense batch (T·N rows, every sequence all T steps). Else the batch sizes b of a <see cref="PackedBatch"/> up
    /// to its <see cref="PackedBatch.RunningSteps"/>, which <see cref="Steps"/> then is (so every b_t ≥ 1): the rows of
    /// <see cref="X"/>, <see cref="Y"/> (and of a table's ids) are packed, Σ b of them, and the states are in sorted order;
    /// see <see cref="PackedBatch"/> for the contract.
    /// </summary>
    public ReadOnlySpan<int> BatchSizes { get; init; }
    /// <summary>[G·H, I].</summary>
    public required ReadOnlySpan<float> WeightIH { get; init; }
    /// <summary>[G·H, H].</summary>
    public required ReadOnlySpan<float> WeightHH { get; init; }
    /// <summary>[G·H].</summary>
    public required ReadOnlySpan<float> BiasIH { get; init; }
    /// <summary>[G·H].</summary>
    public required ReadOnlySpan<float> BiasHH { get; init; }
    /// <summary>Input [T, N, I]; empty when the input rows come from <see cref="InputTable"/>.</summary>
    public required ReadOnlySpan<float> X { get; init; }
    /// <summary>
    /// Layer 0 only, when the stack's input is rows of a table (an embedding lookup): the table [V, I]; row r of the input
    /// is row <see cref="InputIds"/>[r]. Empty for dense input. Only backends with <see cref="DirectionwiseBackend.SupportsTableInput"/> see it.
    /// </summary>
    public ReadOnlySpan<float> InputTable { get; init; }
    /// <summary>With <see cref="InputTable"/>: the table row of each input row [T·N], −1 for zeros.</summary>
    public ReadOnlySpan<int> InputIds { get; init; }
    /// <summary>Initial hidden state [N, H].</summary>
    public required ReadOnlySpan<float> H0 { get; init; }
    /// <summary>Initial cell state [N, H] (LSTM), else empty.</summary>
    public required ReadOnlySpan<float> C0 { get; init; }
    /// <summary>Output: T·N rows of H, row [t, n] starting at (t·N + n)·<see cref="YStride"/>; overwritten.</summary>
    public required Span<float> Y { get; init; }
    /// <summary>
    /// Elements between the starts of consecutive rows of <see cref="Y"/>; 0 means H (dense). A bidirectional stack gives 2H,
    /// <see cref="Y"/> starting at this direction's half of the [T, N, 2H] output, so each direction writes in place.
    /// </summary>
    public int YStride { get; init; }
    /// <summary>Final hidden state [N, H], overwritten.</summary>
    public required Span<float> HN { get; init; }
    /// <summary>Final cell state [N, H] (LSTM), else empty; overwritten.</summary>
    public required Span<float> CN { get; init; }
}

/// <summary>One layer and direction of a backward pass.</summary>
public readonly ref struct DirectionBackward
{
    /// <summary>The cell.</summary>
    public required CellKind Cell { get; init; }
    /// <summary>T.</summary>
    public required int Steps { get; init; }
    /// <summary>N.</summary>
    public required int Batch { get; init; }
    /// <summary>I of this layer.</summary>
    public required int InputSize { get; init; }
    /// <summary>H.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Whether this direction ran from t = T−1 down to 0.</summary>
    public required bool Reverse { get; init; }
    /// <summary>As the forward pass's <see cref="DirectionForward.BatchSizes"/>: then <see cref="X"/>, <see cref="DY"/>, <see cref="DX"/> and the ids are packed rows.</summary>
    public ReadOnlySpan<int> BatchSizes { get; init; }
    /// <summary>[G·H, I].</summary>
    public required ReadOnlySpan<float> WeightIH { get; init; }
    /// <summary>[G·H, H].</summary>
    public required ReadOnlySpan<float> WeightHH { get; init; }
    /// <summary>The forward pass's input [T, N, I]; empty when it came from <see cref="InputTable"/>.</summary>
    public required ReadOnlySpan<float> X { get; init; }
    /// <summary>The forward pass's input table [V, I] (layer 0 with table input), else empty.</summary>
    public ReadOnlySpan<float> InputTable { get; init; }
    /// <summary>With <see cref="InputTable"/>: the table row of each input row [T·N], −1 for zeros.</summary>
    public ReadOnlySpan<int> InputIds { get; init; }
    /// <summary>With <see cref="InputTable"/>: the table's gradient [V, I], accumulated into (then <see cref="DX"/> is empty).</summary>
    public Span<float> DInputTable { get; init; }
    /// <summary>Gradient of the output: T·N rows of H, <see cref="DYStride"/> apart, as <see cref="DirectionForward.Y"/>.</summary>
    public required ReadOnlySpan<float> DY { get; init; }
    /// <summary>Elements between the starts of consecutive rows of <see cref="DY"/>; 0 means H.</summary>
    public int DYStride { get; init; }
    /// <summary>Gradient of the final hidden state [N, H].</summary>
    public required ReadOnlySpan<float> DHN { get; init; }
    /// <summary>Gradient of the final cell state [N, H] (LSTM), else empty.</summary>
    public required ReadOnlySpan<float> DCN { get; init; }
    /// <summary>Gradient of the input [T, N, I], overwritten (added to with <see cref="AccumulateDX"/>); empty with <see cref="InputTable"/>.</summary>
    public required Span<float> DX { get; init; }
    /// <summary>Whether to add this direction's input gradient to <see cref="DX"/>: the layer's other direction wrote it first.</summary>
    public bool AccumulateDX { get; init; }
    /// <summary>Gradient of h0 [N, H], overwritten.</summary>
    public required Span<float> DH0 { get; init; }
    /// <summary>Gradient of c0 [N, H] (LSTM), else empty; overwritten.</summary>
    public required Span<float> DC0 { get; init; }
    /// <summary>[G·H, I], accumulated into.</summary>
    public required Span<float> DWeightIH { get; init; }
    /// <summary>[G·H, H], accumulated into.</summary>
    public required Span<float> DWeightHH { get; init; }
    /// <summary>[G·H], accumulated into.</summary>
    public required Span<float> DBiasIH { get; init; }
    /// <summary>[G·H], accumulated into.</summary>
    public required Span<float> DBiasHH { get; init; }
}

/// <summary>
/// A backend that computes one layer and direction at a time. This class stacks them: it feeds each
/// layer the previous layer's output, has each direction write its H features of the [T, N, D·H] output in
/// place (row stride D·H) and read its half of the output gradient likewise, and has the second direction add
/// its input gradient to the first's, so no buffer is copied between the directions. A variable-length batch is packed
/// once per pass (<see cref="PackedBatch"/>: x or the ids, and the sorted states), every layer and direction runs on the
/// packed rows, and the output is unpacked once; backward likewise packs dy once and unpacks dx once. The stacking of the native backend (and of tests' per-direction
/// backends); the ILGPU backend still stacks on the device itself, and the reference in ReferenceRnn (issue 11 makes them one).
/// Thread-safe when its <see cref="ForwardDirection"/> and <see cref="BackwardDirection"/> are: the stacking keeps its
/// state in the tape of each pass.
/// </summary>
public abstract class DirectionwiseBackend : IRnnBackend
{
    /// <inheritdoc />
    public abstract string Name { get; }

    /// <summary>Runs one layer and direction; returns what its backward needs when <paramref name="keepForBackward"/>.</summary>
    protected abstract IDisposable? ForwardDirection(in DirectionForward call, bool keepForBackward);

    /// <summary>Back-propagates one layer and direction through the pass that returned <paramref name="saved"/>.</summary>
    protected abstract void BackwardDirection(in DirectionBackward call, IDisposable saved);

    /// <summary>
    /// Whether <see cref="ForwardDirection"/> and <see cref="BackwardDirection"/> take layer 0's input as rows of a table
    /// (<see cref="DirectionForward.InputTable"/>): then a stack fed by an embedding lookup projects each table row once
    /// rather than each of the T·N rows. Backends without it are given the rows gathered into a dense x.
    /// </summary>
    protected internal virtual bool SupportsTableInput => false;

    /// <summary>Layer 0's input when it is rows of a table: table [V, I], ids [T·N] (−1: zeros).</summary>
    internal sealed record TableInput(ReadOnlyMemory<float> Table, int Vocab, int[] Ids);

    private sealed class StackTape(int layers, int dirs, TableInput? table, PackedBatch? packed) : IRnnTape
    {
        /// <summary>Layer 0's table input; with <see cref="Packed"/>, its ids are the packed rows'.</summary>
        public TableInput? Table { get; } = table;
        /// <summary>The layout of a variable-length pass, whose layer inputs are packed rows; null when dense.</summary>
        public PackedBatch? Packed { get; } = packed;
        /// <summary>Each layer's input rows (packed with <see cref="Packed"/>); empty for layer 0 with <see cref="Table"/>.</summary>
        public ReadOnlyMemory<float>[] LayerInputs { get; } = new ReadOnlyMemory<float>[layers];
        public IDisposable[,] Saved { get; } = new IDisposable[layers, dirs];
        public bool IsDisposed { get; private set; }

        /// <summary>Makes the tape the owner of layer 0's packed input, rented from the pool: it returns it when disposed.</summary>
        public void OwnPooledInput(float[] rows) => _pooledInput = rows;

        public void Dispose()
        {
            IsDisposed = true;
            foreach (var saved in Saved) saved?.Dispose();
            // Once: a second Dispose must not hand the same array to the pool twice.
            if (Interlocked.Exchange(ref _pooledInput, null) is { } pooled)
            {
                LayerInputs[0] = default;
                ArrayPool<float>.Shared.Return(pooled);
            }
        }

        private float[]? _pooledInput;
    }

    /// <inheritdoc />
    public IRnnTape? Forward(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward, int[]? lengths = null) =>
        Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, copyInput: true, lengths);

    /// <summary>
    /// <see cref="Forward(RnnParameters, Tensor, Tensor, Tensor?, Tensor, Tensor, Tensor?, bool, int[])"/>; without
    /// <paramref name="copyInput"/> a training pass keeps x itself for backward rather than a copy, for callers whose x
    /// nobody changes before backward.
    /// </summary>
    internal IRnnTape? Forward(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward, bool copyInput,
        int[]? lengths = null)
    {
        var packed = PackedBatch.Create(lengths, x.Shape[0], x.Shape[1]);
        if (packed is not null)
        {
            // The packed rows are a copy already: the pass's own for backward whatever copyInput says. A training pass's tape
            // keeps them and returns them to the pool when it is disposed.
            var xPacked = Rent(packed, x.Shape[2]);
            StackTape? tape = null;
            try
            {
                packed.Pack(x.Span, xPacked, x.Shape[2]);
                tape = RunPacked(parameters, packed, xPacked, null, h0, c0, y, hN, cN, keepForBackward);
                tape?.OwnPooledInput(xPacked);
                return tape;
            }
            finally
            {
                if (tape is null) ArrayPool<float>.Shared.Return(xPacked);
            }
        }
        // Backward reads layer 0's input again (the per-direction tapes do not keep it): a copy keeps it the pass's own.
        return Run(parameters, x.Shape[0], x.Shape[1], null, keepForBackward && copyInput ? x.ToArray() : x.Memory, null, h0, c0, y.Memory, hN, cN,
            keepForBackward);
    }

    /// <summary>
    /// <see cref="Forward(RnnParameters, Tensor, Tensor, Tensor?, Tensor, Tensor, Tensor?, bool, int[])"/> with layer 0's input rows taken from a table (an embedding lookup); only when
    /// <see cref="SupportsTableInput"/>. y [T, N, D·H] gives T and N.
    /// </summary>
    internal IRnnTape? ForwardFromTable(RnnParameters parameters, TableInput input, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward,
        int[]? lengths = null)
    {
        if (!SupportsTableInput) throw new NotSupportedException($"{Name}: this backend takes dense input only.");
        var packed = PackedBatch.Create(lengths, y.Shape[0], y.Shape[1]);
        if (packed is not null)
        {
            var ids = new int[packed.Rows];
            packed.PackIds(input.Ids, ids);
            return RunPacked(parameters, packed, null, input with { Ids = ids }, h0, c0, y, hN, cN, keepForBackward);
        }
        return Run(parameters, y.Shape[0], y.Shape[1], null, default, input, h0, c0, y.Memory, hN, cN, keepForBackward);
    }

    /// <summary>
    /// <see cref="Run"/> on the packed rows of x (or of the table's ids): the states sorted in, the output and final states
    /// unpacked and unsorted out (y zero past each sequence's end).
    /// </summary>
    private StackTape? RunPacked(RnnParameters parameters, PackedBatch packed, float[]? x, TableInput? table, Tensor h0, Tensor? c0, Tensor y, Tensor hN,
        Tensor? cN, bool keepForBackward)
    {
        int hidden = parameters.Config.HiddenSize, features = parameters.Config.OutputSize;
        var yPacked = Rent(packed, features);
        try
        {
            var hNSorted = new Tensor(hN.Shape.ToArray());
            Tensor? cNSorted = cN is null ? null : new(cN.Shape.ToArray());
            var tape = Run(parameters, packed.RunningSteps, packed.Batch, packed, x, table, Sorted(packed, h0, hidden), c0 is null ? null : Sorted(packed, c0, hidden),
                yPacked, hNSorted, cNSorted, keepForBackward);
            packed.Unpack(yPacked, y.Span, features);
            packed.UnsortStates(hNSorted.Span, hN.Span, hidden);
            if (cN is not null) packed.UnsortStates(cNSorted!.Span, cN.Span, hidden);
            return tape;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(yPacked);
        }
    }

    /// <summary>
    /// A buffer for the packed rows of <paramref name="features"/> each, from the pool (it may be longer), not cleared:
    /// whoever gets it writes every row. Fresh arrays of this size cost the kernel a page fault per page on first touch,
    /// as much as the copies that fill them; a pass's own buffers go back to the pool when it is done with them.
    /// </summary>
    private static float[] Rent(PackedBatch packed, int features) => ArrayPool<float>.Shared.Rent(checked(packed.Rows * features));

    /// <summary>States [L·D, N, H] in batch order, copied into <paramref name="packed"/>'s sorted order.</summary>
    private static Tensor Sorted(PackedBatch packed, Tensor states, int hidden)
    {
        var sorted = new Tensor(states.Shape.ToArray());
        packed.SortStates(states.Span, sorted.Span, hidden);
        return sorted;
    }

    /// <summary>
    /// Runs every layer and direction over <paramref name="steps"/> steps of <paramref name="batch"/> sequences. With
    /// <paramref name="packed"/>, x (or the table's ids), y and every layer's output are its packed rows, the states are in its
    /// sorted order, and <paramref name="steps"/> is its <see cref="PackedBatch.RunningSteps"/> (steps where no sequence runs
    /// are not steps of a pass).
    /// </summary>
    private StackTape? Run(RnnParameters parameters, int steps, int batch, PackedBatch? packed, ReadOnlyMemory<float> x, TableInput? table, Tensor h0, Tensor? c0,
        Memory<float> y, Tensor hN, Tensor? cN, bool keepForBackward)
    {
        var config = parameters.Config;
        int hidden = config.HiddenSize, dirs = config.Directions, nh = batch * hidden;
        long rows = packed?.Rows ?? (long)steps * batch;
        var tape = keepForBackward ? new StackTape(config.NumLayers, dirs, table, packed) : null;
        try
        {
            ReadOnlyMemory<float> layerInput = x;
            for (int layer = 0; layer < config.NumLayers; layer++)
            {
                bool last = layer == config.NumLayers - 1;
                // The last layer writes straight into y; the layers below need a buffer of their own
                // (kept by the tape when training, as the next layer's weight gradient needs it).
                Memory<float> layerOutput = last ? y : new float[rows * config.OutputSize];
                if (tape is not null) tape.LayerInputs[layer] = layerInput;
                for (int dir = 0; dir < dirs; dir++)
                {
                    int state = (layer * dirs + dir) * nh;
                    var call = new DirectionForward
                    {
                        Cell = config.Cell, Steps = steps, Batch = batch, InputSize = config.LayerInputSize(layer), HiddenSize = hidden,
                        Reverse = dir == 1,
                        BatchSizes = packed is null ? default : packed.BatchSizes.AsSpan(0, steps),
                        WeightIH = parameters[layer, dir, ParameterSpec.WeightIH].Value.Span,
                        WeightHH = parameters[layer, dir, ParameterSpec.WeightHH].Value.Span,
                        BiasIH = parameters[layer, dir, ParameterSpec.BiasIH].Value.Span,
                        BiasHH = parameters[layer, dir, ParameterSpec.BiasHH].Value.Span,
                        X = layerInput.Span,
                        InputTable = layer == 0 && table is not null ? table.Table.Span : default,
                        InputIds = layer == 0 ? table?.Ids : default,
                        H0 = h0.Span.Slice(state, nh),
                        C0 = c0 is null ? default : c0.Span.Slice(state, nh),
                        Y = layerOutput.Span[(dir * hidden)..],
                        YStride = dirs * hidden,
                        HN = hN.Span.Slice(state, nh),
                        CN = cN is null ? default : cN.Span.Slice(state, nh),
                    };
                    var saved = ForwardDirection(call, keepForBackward);
                    if (tape is not null) tape.Saved[layer, dir] = saved ?? throw new InvalidOperationException($"{Name}: forward kept nothing for backward.");
                }
                layerInput = layerOutput;
            }
            return tape;
        }
        catch
        {
            tape?.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Backward(RnnParameters parameters, IRnnTape tape, Tensor dy, Tensor dhN, Tensor? dcN, Tensor dx, Tensor dh0, Tensor? dc0) =>
        BackwardCore(parameters, tape, dy, dhN, dcN, dx, default, dh0, dc0);

    /// <summary>
    /// <see cref="Backward"/> through a pass of <see cref="ForwardFromTable"/>: the table's gradient [V, I] is accumulated
    /// into <paramref name="dTable"/> instead of dx being written.
    /// </summary>
    internal void BackwardFromTable(RnnParameters parameters, IRnnTape tape, Tensor dy, Tensor dhN, Tensor? dcN, Span<float> dTable, Tensor dh0, Tensor? dc0) =>
        BackwardCore(parameters, tape, dy, dhN, dcN, null, dTable, dh0, dc0);

    private void BackwardCore(RnnParameters parameters, IRnnTape tape, Tensor dy, Tensor dhN, Tensor? dcN, Tensor? dx, Span<float> dTable, Tensor dh0, Tensor? dc0)
    {
        if (tape is not StackTape stack)
            throw new ArgumentException($"tape: expected a tape made by the {Name} backend.", nameof(tape));
        ObjectDisposedException.ThrowIf(stack.IsDisposed, stack);
        if ((stack.Table is null) != (dx is not null))
            throw new ArgumentException(stack.Table is null
                ? "tape: this pass had dense input; back-propagate it with Backward."
                : "tape: this pass read its input from a table; back-propagate it with BackwardFromTable.", nameof(tape));
        var config = parameters.Config;
        if (stack.Packed is { } packed)
        {
            // dy, dhN and dcN packed and sorted in; dx unpacked (zeros past the ends), dh0 and dc0 unsorted out.
            int hidden = config.HiddenSize;
            var dyPacked = Rent(packed, config.OutputSize);
            var dxPacked = dx is null ? null : Rent(packed, config.InputSize);
            try
            {
                packed.Pack(dy.Span, dyPacked, config.OutputSize);
                var dh0Sorted = new Tensor(dh0.Shape.ToArray());
                Tensor? dc0Sorted = dc0 is null ? null : new(dc0.Shape.ToArray());
                BackwardLayers(parameters, stack, packed.RunningSteps, packed.Batch, dyPacked, Sorted(packed, dhN, hidden), dcN is null ? null : Sorted(packed, dcN, hidden),
                    dxPacked, dTable, dh0Sorted, dc0Sorted);
                if (dx is not null) packed.Unpack(dxPacked, dx.Span, config.InputSize);
                packed.UnsortStates(dh0Sorted.Span, dh0.Span, hidden);
                if (dc0 is not null) packed.UnsortStates(dc0Sorted!.Span, dc0.Span, hidden);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(dyPacked);
                if (dxPacked is not null) ArrayPool<float>.Shared.Return(dxPacked);
            }
            return;
        }
        BackwardLayers(parameters, stack, dy.Shape[0], dy.Shape[1], dy.Memory, dhN, dcN, dx is null ? default : dx.Memory, dTable, dh0, dc0);
    }

    /// <summary>Every layer and direction, dense or on the packed rows of the tape's layout (then the states in its sorted order).</summary>
    /// <remarks><paramref name="dx"/> is empty when layer 0's input came from a table.</remarks>
    private void BackwardLayers(RnnParameters parameters, StackTape stack, int steps, int batch, ReadOnlyMemory<float> dy, Tensor dhN, Tensor? dcN, Memory<float> dx,
        Span<float> dTable, Tensor dh0, Tensor? dc0)
    {
        var config = parameters.Config;
        var packed = stack.Packed;
        int hidden = config.HiddenSize, dirs = config.Directions, nh = batch * hidden;
        long rows = packed?.Rows ?? (long)steps * batch;
        ReadOnlyMemory<float> dLayerOutput = dy;
        for (int layer = config.NumLayers - 1; layer >= 0; layer--)
        {
            int inputSize = config.LayerInputSize(layer);
            var table = layer == 0 ? stack.Table : null;
            // Table input: both directions accumulate into the table's gradient, so no dx is written.
            Memory<float> dLayerInput = layer == 0 ? dx : new float[rows * inputSize];
            for (int dir = 0; dir < dirs; dir++)
            {
                int state = (layer * dirs + dir) * nh;
                var call = new DirectionBackward
                {
                    Cell = config.Cell, Steps = steps, Batch = batch, InputSize = inputSize, HiddenSize = hidden, Reverse = dir == 1,
                    BatchSizes = packed is null ? default : packed.BatchSizes.AsSpan(0, steps),
                    WeightIH = parameters[layer, dir, ParameterSpec.WeightIH].Value.Span,
                    WeightHH = parameters[layer, dir, ParameterSpec.WeightHH].Value.Span,
                    X = stack.LayerInputs[layer].Span,
                    InputTable = table is null ? default : table.Table.Span,
                    InputIds = table?.Ids,
                    DInputTable = table is null ? default : dTable,
                    DY = dLayerOutput.Span[(dir * hidden)..],
                    DYStride = dirs * hidden,
                    DHN = dhN.Span.Slice(state, nh),
                    DCN = dcN is null ? default : dcN.Span.Slice(state, nh),
                    DX = dLayerInput.Span,
                    AccumulateDX = dir > 0,
                    DH0 = dh0.Span.Slice(state, nh),
                    DC0 = dc0 is null ? default : dc0.Span.Slice(state, nh),
                    DWeightIH = parameters[layer, dir, ParameterSpec.WeightIH].Grad.Span,
                    DWeightHH = parameters[layer, dir, ParameterSpec.WeightHH].Grad.Span,
                    DBiasIH = parameters[layer, dir, ParameterSpec.BiasIH].Grad.Span,
                    DBiasHH = parameters[layer, dir, ParameterSpec.BiasHH].Grad.Span,
                };
                BackwardDirection(call, stack.Saved[layer, dir]);
            }
            dLayerOutput = dLayerInput;
        }
    }
}
