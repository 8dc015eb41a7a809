namespace Recurrent;

/// <summary>
/// A batch of sequences of different lengths in cuDNN's packed layout (PyTorch's <c>PackedSequence</c>): sequences sorted
/// by length, longest first (ties keep their batch order), and time-major packed rows: step t holds the first
/// <see cref="BatchSizes"/>[t] sorted sequences (those still running), its rows starting at row <see cref="Offsets"/>[t].
/// A stack packs its input once, runs every layer and direction on packed rows (at step t only b_t rows are computed,
/// so the work is proportional to the real tokens), and unpacks its output once.
/// </summary>
/// <remarks>
/// The contract of a direction pass on packed rows (<see cref="Stacking.DirectionPass{TBuffer}.Packed"/>, the native
/// <c>rc_rnn_direction.batch_sizes</c>): b = <see cref="BatchSizes"/> is non-increasing with b[0] = N (every length ≥ 1);
/// input, output and their gradients are Σ b rows in this layout; the states h0, c0, hN, cN and their gradients are N rows in
/// sorted order. The forward direction runs sorted sequence p over steps 0 … len−1 and leaves its state at step len−1 in
/// hN; the reverse direction starts sequence p from h0 at its own last step len−1 and runs down to step 0. Thread-safety: safe;
/// immutable once made.
/// </remarks>
internal sealed class PackedBatch
{
    private PackedBatch(int steps, int batch, int[] order, int[] batchSizes, int[] offsets)
    {
        (Steps, Batch, Order, BatchSizes, Offsets) = (steps, batch, order, batchSizes, offsets);
    }

    /// <summary>T.</summary>
    public int Steps { get; }
    /// <summary>N.</summary>
    public int Batch { get; }
    /// <summary>[N]: the batch index of the sequence at sorted position p.</summary>
    public int[] Order { get; }
    /// <summary>[T]: b_t, the sequences running at step t (non-increasing, b_0 = N).</summary>
    public int[] BatchSizes { get; }
    /// <summary>[T + 1]: the first packed row of step t; <c>Offsets[T]</c> = <see cref="Rows"/>.</summary>
    public int[] Offsets { get; }
    /// <summary>Σ b_t: the real tokens, the packed rows.</summary>
    public int Rows => Offsets[Steps];
    /// <summary>
    /// The longest length: b_t &gt; 0 below it, 0 from it to T. A direction pass on the packed rows runs these steps only,
    /// its batch sizes b[0 … RunningSteps − 1], so that every step of it has a running sequence.
    /// </summary>
    public int RunningSteps => Array.IndexOf(BatchSizes, 0) is int end and >= 0 ? end : Steps;

    /// <summary>
    /// The packed layout of <paramref name="lengths"/>, or null when there is nothing to pack (no lengths, or every
    /// sequence runs all T steps: then the dense layout is the packed one).
    /// </summary>
    /// <exception cref="ArgumentException">(ParamName "lengths") as <see cref="SequenceLengths.Validate"/>.</exception>
    public static PackedBatch? Create(int[]? lengths, int steps, int batch)
    {
        SequenceLengths.Validate(lengths, steps, batch);
        if (lengths is null || Array.TrueForAll(lengths, length => length == steps)) return null;
        var order = new int[batch];
        for (int n = 0; n < batch; n++) order[n] = n;
        // A stable sort (by length, then batch index), so equal lengths keep their order and the layout is deterministic.
        Array.Sort(order, (a, b) => lengths[a] != lengths[b] ? lengths[b].CompareTo(lengths[a]) : a.CompareTo(b));
        var batchSizes = new int[steps];
        var offsets = new int[steps + 1];
        int running = batch;
        for (int t = 0; t < steps; t++)
        {
            while (running > 0 && lengths[order[running - 1]] <= t) running--;
            batchSizes[t] = running;
            offsets[t + 1] = checked(offsets[t] + running);
        }
        return new PackedBatch(steps, batch, order, batchSizes, offsets);
    }

    /// <summary>Padded rows [T, N, F] → packed rows [Σ b, F]; rows past a sequence's end are not read.</summary>
    public void Pack<T>(ReadOnlySpan<T> padded, Span<T> packed, int features)
    {
        for (int t = 0; t < Steps; t++)
            for (int p = 0; p < BatchSizes[t]; p++)
                padded.Slice((t * Batch + Order[p]) * features, features).CopyTo(packed.Slice((Offsets[t] + p) * features, features));
    }

    /// <summary>Packed rows [Σ b, F] → padded rows [T, N, F]: every row is written, zeros past a sequence's end.</summary>
    public void Unpack<T>(ReadOnlySpan<T> packed, Span<T> padded, int features)
    {
        for (int t = 0; t < Steps; t++)
        {
            for (int p = 0; p < BatchSizes[t]; p++)
                packed.Slice((Offsets[t] + p) * features, features).CopyTo(padded.Slice((t * Batch + Order[p]) * features, features));
            for (int p = BatchSizes[t]; p < Batch; p++)
                padded.Slice((t * Batch + Order[p]) * features, features).Clear();
        }
    }

    /// <summary>Ids of padded rows [T·N] → ids of packed rows [Σ b] (a table input's rows, packed as x is).</summary>
    public void PackIds(ReadOnlySpan<int> padded, Span<int> packed)
    {
        for (int t = 0; t < Steps; t++)
            for (int p = 0; p < BatchSizes[t]; p++)
                packed[Offsets[t] + p] = padded[t * Batch + Order[p]];
    }

    /// <summary>States [S, N, H] in batch order → [S, N, H] in sorted order (each of the S slices permuted alike).</summary>
    public void SortStates<T>(ReadOnlySpan<T> states, Span<T> sorted, int hidden)
    {
        int slices = states.Length / (Batch * hidden);
        for (int s = 0; s < slices; s++)
            for (int p = 0; p < Batch; p++)
                states.Slice((s * Batch + Order[p]) * hidden, hidden).CopyTo(sorted.Slice((s * Batch + p) * hidden, hidden));
    }

    /// <summary>States [S, N, H] in sorted order → [S, N, H] in batch order.</summary>
    public void UnsortStates<T>(ReadOnlySpan<T> sorted, Span<T> states, int hidden)
    {
        int slices = sorted.Length / (Batch * hidden);
        for (int s = 0; s < slices; s++)
            for (int p = 0; p < Batch; p++)
                sorted.Slice((s * Batch + p) * hidden, hidden).CopyTo(states.Slice((s * Batch + Order[p]) * hidden, hidden));
    }
}
