using ILGPU;
using ILGPU.Runtime;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Ilgpu;

/// <summary>
/// A <see cref="PackedBatch"/> on the device: the index buffers of <see cref="PackingKernels"/>, built on the host and
/// uploaded the first time a pass needs them, then kept until the pass's tape is disposed: the gathers that pack, unpack,
/// sort and unsort (the stacking's moves of the packed layout on the device), and the previous-hidden rows a backward
/// pass needs (dW_hh).
/// </summary>
/// <remarks>Thread-safety: not safe; the backend's lock serialises its users; <see cref="Dispose"/> may come from any thread.</remarks>
internal sealed class DevicePacking(PackedBatch batch, int stateSlices, DeviceBufferPool pool, Action<Action> transfer) : IDisposable
{
    private PooledBuffer? _previous, _gathers;

    /// <summary>The layout.</summary>
    public PackedBatch Batch { get; } = batch;

    /// <summary>
    /// [Σ b]: where each packed row's h_{t−1} is in the direction's order (for
    /// <see cref="PackingKernels.GatherPreviousHidden"/>): a packed row of the layer output one step earlier, or −1 − p
    /// for row p of h0, where the sequence starts (step 0 forward; its own last step in reverse).
    /// </summary>
    public ArrayView<int> PreviousRows(bool reverse)
    {
        int rows = Batch.Rows;
        _previous ??= Upload(PreviousRowsOf(Batch), "previous-hidden rows [2, Σb]");
        return Ints(_previous, reverse ? rows : 0, rows);
    }

    /// <summary>[Σ b]: each packed row's padded row t·N + n (x and dy into the packed layout).</summary>
    public ArrayView<int> Pack => Gathers(0, Batch.Rows);

    /// <summary>[T·N]: each padded row's packed row, −1 past its sequence's end (y and dx back, zeros there).</summary>
    public ArrayView<int> Unpack => Gathers(Batch.Rows, Batch.Steps * Batch.Batch);

    /// <summary>[S·N]: each sorted state row's batch-order row, slice by slice (h0, c0, dhN, dcN into sorted order).</summary>
    public ArrayView<int> Sort => Gathers(Batch.Rows + Batch.Steps * Batch.Batch, stateSlices * Batch.Batch);

    /// <summary>[S·N]: each batch-order state row's sorted row (hN, cN, dh0, dc0 back).</summary>
    public ArrayView<int> Unsort => Gathers(Batch.Rows + (Batch.Steps + stateSlices) * Batch.Batch, stateSlices * Batch.Batch);

    private ArrayView<int> Gathers(int offset, int length)
    {
        _gathers ??= Upload(GathersOf(Batch, stateSlices), "packing gathers");
        return Ints(_gathers, offset, length);
    }

    private static ArrayView<int> Ints(PooledBuffer buffer, int offset, int length) => buffer.View.SubView(offset, length).Cast<int>();

    private PooledBuffer Upload(int[] indices, string what)
    {
        // Ints in a pooled float buffer (the same 4 bytes): the pool keeps repeated calls free of device allocations.
        var buffer = pool.Rent(indices.Length, what);
        try
        {
            transfer(() => buffer.View.SubView(0, indices.Length).Cast<int>().CopyFromCPU(indices));
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>The forward direction's <see cref="PreviousRows"/>, then the reverse direction's.</summary>
    private static int[] PreviousRowsOf(PackedBatch b)
    {
        int rows = b.Rows;
        var result = new int[2 * rows];
        for (int t = 0; t < b.Steps; t++)
        {
            int running = b.BatchSizes[t], carriedReverse = t + 1 < b.Steps ? b.BatchSizes[t + 1] : 0;
            for (int p = 0; p < running; p++)
            {
                int row = b.Offsets[t] + p;
                result[row] = t > 0 ? b.Offsets[t - 1] + p : -1 - p;
                result[rows + row] = p < carriedReverse ? b.Offsets[t + 1] + p : -1 - p;
            }
        }
        return result;
    }

    /// <summary><see cref="Pack"/>, <see cref="Unpack"/>, <see cref="Sort"/>, <see cref="Unsort"/>, one after the other.</summary>
    private static int[] GathersOf(PackedBatch b, int slices)
    {
        int rows = b.Rows, padded = b.Steps * b.Batch, states = slices * b.Batch;
        var result = new int[rows + padded + 2 * states];
        var unpack = result.AsSpan(rows, padded);
        unpack.Fill(-1);
        for (int t = 0; t < b.Steps; t++)
            for (int p = 0; p < b.BatchSizes[t]; p++)
            {
                int paddedRow = t * b.Batch + b.Order[p], packedRow = b.Offsets[t] + p;
                result[packedRow] = paddedRow;
                unpack[paddedRow] = packedRow;
            }
        var sort = result.AsSpan(rows + padded, states);
        var unsort = result.AsSpan(rows + padded + states, states);
        for (int s = 0; s < slices; s++)
            for (int p = 0; p < b.Batch; p++)
            {
                int sorted = s * b.Batch + p, original = s * b.Batch + b.Order[p];
                sort[sorted] = original;
                unsort[original] = sorted;
            }
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _previous?.Dispose();
        _gathers?.Dispose();
    }
}
