using ILGPU;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// The pointwise passes of the teacher-forced sequence models (Recurrent.Sequence's IlgpuMatrixOps) that the RNN
/// kernels do not already provide: row gathers and scatters by token id, the activation backward fused with the bias
/// gradient's first reduction pass, the fused losses and free running's argmax. Matrices are row-major [rows, columns]
/// and dense; token ids below zero stand for a zero row.
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class SequenceKernels
{
    /// <summary>
    /// destination[r, :] = row for every row of destination [rows, columns]: a bias broadcast before a product with
    /// beta = 1. Launched over the rows · columns elements (a flat index: a 2-D launch caps the rows at 65 535).
    /// </summary>
    public static void BroadcastRows(Index1D index, ArrayView<float> row, ArrayView<float> destination, int columns) =>
        destination[index] = row[index % columns];

    /// <summary>destination[r, c] += table[ids[r], c] where ids[r] ≥ 0. Launched over the rows · columns elements.</summary>
    public static void GatherRowsAdd(Index1D index, ArrayView<float> table, ArrayView<int> ids, ArrayView<float> destination, int columns)
    {
        int r = index / columns, c = index - r * columns;
        int id = ids[r];
        if (id >= 0) destination[index] += table[(long)id * columns + c];
    }

    /// <summary>
    /// table[ids[r], c] += source[r, c] where ids[r] ≥ 0. Launched over the rows · columns elements. Ids repeat (a
    /// vocabulary of a few hundred over thousands of rows), so the additions are atomic: a deterministic loop over the
    /// rows per column would run T·N dependent read-modify-writes in every thread, milliseconds on a GPU, where the
    /// atomics collide only on repeated ids. The price is an addition order that varies from run to run, so this
    /// gradient is reproducible to float rounding only, not bit for bit. <typeparamref name="TAdd"/> is the atomic add:
    /// <see cref="HardwareAtomicAdd"/> on CUDA, <see cref="BitCompareExchangeAdd"/> elsewhere (ILGPU's float add there
    /// spins forever once an element is NaN).
    /// </summary>
    public static void ScatterRowsAdd<TAdd>(Index1D index, ArrayView<float> source, ArrayView<int> ids, ArrayView<float> table, int columns)
        where TAdd : struct, IAtomicAdd
    {
        int r = index / columns, c = index - r * columns;
        int id = ids[r];
        if (id >= 0) default(TAdd).Add(table, (long)id * columns + c, source[index]);
    }

    /// <summary>
    /// The backward of h = act(z + b) fused with the first pass of db's column sum: gradient (dh in, dz out) *= act′ from
    /// <paramref name="output"/> h, and thread i adds dz over its chunk of rows of column i mod Cols into
    /// partial[i] as <see cref="ReductionKernels.ColumnPartialSums"/> does (so neighbouring threads read neighbouring
    /// columns); <see cref="ReductionKernels.ColumnSums"/> then adds the partial rows into db. Launched over chunks · Cols.
    /// </summary>
    public static void ActivationBackwardPartialSums<TActivation>(Index1D index, ArrayView<float> output, ArrayView<float> gradient,
        ArrayView<float> partial, ColumnSumShape s)
        where TActivation : struct, IActivation
    {
        int chunk = index / s.Cols, col = index - chunk * s.Cols;
        int first = chunk * s.RowsPerChunk, end = first + s.RowsPerChunk < s.Rows ? first + s.RowsPerChunk : s.Rows;
        float sum = 0;
        for (int r = first; r < end; r++)
        {
            long i = (long)r * s.Ld + col;
            float dz = gradient[i] * default(TActivation).DerivativeFromOutput(output[i]);
            gradient[i] = dz;
            sum += dz;
        }
        partial[index] = sum;
    }

    /// <summary>
    /// Softmax cross-entropy, one group per row (grid = rows, at most <see cref="DeviceMath.MaxGroupSize"/> threads): the
    /// group's threads stride over the columns and group reductions give the row's maximum and Σ exp(logit − max), so exp
    /// never overflows. The logits are overwritten with scale · (softmax − onehot(target)); rowLoss[row] = log Σ −
    /// (logit[target] − max). A NaN or +∞ logit makes the maximum NaN or +∞ and with it the whole row NaN, as in the
    /// reference. A negative target ignores the row (PyTorch's ignore_index): its logits are not read but zeroed, and its
    /// loss is 0; the whole group takes the same branch, so the reductions' barriers stay uniform.
    /// </summary>
    public static void SoftmaxCrossEntropyRows(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss, int columns, float gradientScale)
    {
        int row = Grid.IdxX;
        long start = (long)row * columns;
        int target = targets[row];
        if (target < 0)
        {
            for (int c = Group.IdxX; c < columns; c += Group.DimX)
                logits[start + c] = 0;
            if (Group.IsFirstThread) rowLoss[row] = 0;
            return;
        }
        float max = float.NegativeInfinity;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
            max = DeviceMath.Max(max, logits[start + c]);
        max = DeviceMath.GroupReduce<MaxOp>(max);
        float sum = 0;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
            sum += MathF.Exp(logits[start + c] - max);
        sum = DeviceMath.GroupReduce<SumOp>(sum);
        float shiftedTarget = logits[start + target] - max;
        // Every thread has read the target's logit before any thread overwrites it.
        Group.Barrier();
        float scale = gradientScale / sum;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
        {
            float gradient = MathF.Exp(logits[start + c] - max) * scale;
            logits[start + c] = c == target ? gradient - gradientScale : gradient;
        }
        if (Group.IsFirstThread) rowLoss[row] = MathF.Log(sum) - shiftedTarget;
    }

    /// <summary>
    /// Softmax cross-entropy against target counts, one group per row of <paramref name="logits"/> [R, C] and
    /// <paramref name="counts"/> [R, C]: the logits are overwritten with scale · (Σ counts · softmax − counts), and
    /// rowLoss[row] = Σ_c counts[c] · (log Σ exp − logit[c]), from group reductions of the maximum, Σ exp(logit − max),
    /// Σ counts and Σ counts · logit (at most <see cref="DeviceMath.MaxGroupSize"/> threads).
    /// </summary>
    public static void SoftmaxCrossEntropyCountsRows(ArrayView<float> logits, ArrayView<float> counts, ArrayView<float> rowLoss, int columns, float gradientScale)
    {
        int row = Grid.IdxX;
        long start = (long)row * columns;
        float max = float.NegativeInfinity, total = 0, dot = 0;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
        {
            float v = logits[start + c], n = counts[start + c];
            max = DeviceMath.Max(max, v);
            total += n;
            dot += n * v;
        }
        max = DeviceMath.GroupReduce<MaxOp>(max);
        total = DeviceMath.GroupReduce<SumOp>(total);
        dot = DeviceMath.GroupReduce<SumOp>(dot);
        float sum = 0;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
            sum += MathF.Exp(logits[start + c] - max);
        sum = DeviceMath.GroupReduce<SumOp>(sum);
        float scale = gradientScale * total / sum;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
            logits[start + c] = MathF.Exp(logits[start + c] - max) * scale - gradientScale * counts[start + c];
        if (Group.IsFirstThread) rowLoss[row] = total * (MathF.Log(sum) + max) - dot;
    }

    /// <summary>
    /// Squared error over <paramref name="length"/> elements: thread i visits elements i, i + stride, … (stride = the
    /// number of threads, so loads coalesce), overwrites the output with scale · (o − y) and writes Σ ½(o − y)² of its
    /// elements to partial[i], which a column sum then adds up.
    /// </summary>
    public static void SquaredErrorPartials(Index1D index, ArrayView<float> output, ArrayView<float> target, ArrayView<float> partial,
        int length, int stride, float gradientScale)
    {
        float sum = 0;
        for (int i = index; i < length; i += stride)
        {
            float difference = output[i] - target[i];
            sum += 0.5f * difference * difference;
            output[i] = gradientScale * difference;
        }
        partial[index] = sum;
    }

    /// <summary>
    /// <see cref="SquaredErrorPartials"/> over rows of <paramref name="columns"/> elements, skipping the rows r with
    /// rowMask[r] &lt; 0 (past a sequence's end): their output and target are not read, their gradient is zero and they add
    /// no loss.
    /// </summary>
    public static void SquaredErrorMaskedPartials(Index1D index, ArrayView<float> output, ArrayView<float> target, ArrayView<int> rowMask,
        ArrayView<float> partial, int length, int stride, int columns, float gradientScale)
    {
        float sum = 0;
        for (int i = index; i < length; i += stride)
        {
            if (rowMask[i / columns] < 0)
            {
                output[i] = 0;
                continue;
            }
            float difference = output[i] - target[i];
            sum += 0.5f * difference * difference;
            output[i] = gradientScale * difference;
        }
        partial[index] = sum;
    }

    /// <summary>
    /// destination[row] = the first index of the largest element of row <paramref name="index"/> of values [rows, columns];
    /// the first NaN, as torch.argmax, when the row holds one.
    /// </summary>
    public static void ArgMaxRows(Index1D index, ArrayView<float> values, ArrayView<int> destination, int columns)
    {
        long start = (long)(int)index * columns;
        int best = 0;
        float bestValue = values[start];
        for (int c = 1; c < columns && !float.IsNaN(bestValue); c++)
        {
            float v = values[start + c];
            if (v > bestValue || float.IsNaN(v))
            {
                best = c;
                bestValue = v;
            }
        }
        destination[index] = best;
    }
}
