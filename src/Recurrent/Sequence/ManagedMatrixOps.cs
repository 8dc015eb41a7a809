using System.Numerics;
using System.Runtime.InteropServices;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T, TData, TIds}"/> on the host as plain loops in any floating-point type. In double it is the
/// reference of the teacher-forced models (finite differences check it; the float paths are checked against it);
/// <see cref="CpuMatrixOps"/> reuses its scalar passes as the fallback of its vector ones.
/// The operations are span methods (what host callers use); the interface, over <see cref="Memory{T}"/>, forwards to
/// them and its buffer operations are the identity: the host path copies nothing.
/// </summary>
internal class ManagedMatrixOps<T> : IMatrixOps<T, Memory<T>, Memory<int>> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The shared instance (the class holds no state).</summary>
    public static ManagedMatrixOps<T> Instance { get; } = new();

    public virtual string Name => $"managed-{typeof(T).Name.ToLowerInvariant()}";

    public virtual void Gemm(bool transA, bool transB, int m, int n, int k, T alpha, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T sum = T.Zero;
                for (int p = 0; p < k; p++)
                    sum += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                ref T destination = ref c[i * ldc + j];
                destination = T.IsZero(beta) ? alpha * sum : alpha * sum + beta * destination;
            }
    }

    public virtual void BroadcastRows(ReadOnlySpan<T> row, Span<T> destination)
    {
        for (int offset = 0; offset < destination.Length; offset += row.Length)
            row.CopyTo(destination.Slice(offset, row.Length));
    }

    public virtual void GatherRowsAdd(ReadOnlySpan<T> table, int columns, ReadOnlySpan<int> ids, Span<T> destination)
    {
        for (int r = 0; r < ids.Length; r++)
        {
            if (ids[r] < 0) continue;
            var source = table.Slice(ids[r] * columns, columns);
            var target = destination.Slice(r * columns, columns);
            for (int c = 0; c < columns; c++) target[c] += source[c];
        }
    }

    public virtual void ScatterRowsAdd(ReadOnlySpan<T> source, int columns, ReadOnlySpan<int> ids, Span<T> table)
    {
        for (int r = 0; r < ids.Length; r++)
        {
            if (ids[r] < 0) continue;
            var row = source.Slice(r * columns, columns);
            var target = table.Slice(ids[r] * columns, columns);
            for (int c = 0; c < columns; c++) target[c] += row[c];
        }
    }

    public virtual void Activate(RnnActivation activation, Span<T> values)
    {
        for (int i = 0; i < values.Length; i++)
            values[i] = activation == RnnActivation.Tanh ? T.Tanh(values[i]) : T.Max(values[i], T.Zero);
    }

    public virtual void ActivationBackward(RnnActivation activation, ReadOnlySpan<T> output, Span<T> gradient, int columns, Span<T> biasGradient)
    {
        for (int i = 0; i < gradient.Length; i++)
        {
            T h = output[i];
            // Both derivatives from the output alone, so the pre-activation need not be kept. relu's is 1 where h is
            // NaN, as PyTorch's threshold_backward passes the gradient there; a factor, so a NaN gradient stays NaN.
            T derivative = activation == RnnActivation.Tanh ? T.One - h * h : h <= T.Zero ? T.Zero : T.One;
            gradient[i] *= derivative;
            biasGradient[i % columns] += gradient[i];
        }
    }

    public virtual void AddColumnSums(ReadOnlySpan<T> source, int columns, Span<T> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i % columns] += source[i];
    }

    public virtual T SoftmaxCrossEntropy(Span<T> logits, int columns, ReadOnlySpan<int> targets, T gradientScale)
    {
        T loss = T.Zero;
        for (int r = 0; r < targets.Length; r++)
        {
            var row = logits.Slice(r * columns, columns);
            if (targets[r] < 0) row.Clear();
            else loss += SoftmaxCrossEntropyRow(row, targets[r], gradientScale);
        }
        return loss;
    }

    /// <summary>One row of <see cref="SoftmaxCrossEntropy"/>; shifted by the row maximum so exp never overflows.</summary>
    protected static T SoftmaxCrossEntropyRow(Span<T> row, int target, T gradientScale)
    {
        T max = T.NegativeInfinity;
        foreach (T v in row) max = T.Max(max, v);
        T shiftedTarget = row[target] - max;
        T sum = T.Zero;
        for (int c = 0; c < row.Length; c++)
        {
            row[c] = T.Exp(row[c] - max);
            sum += row[c];
        }
        T loss = T.Log(sum) - shiftedTarget;
        T scale = gradientScale / sum;
        for (int c = 0; c < row.Length; c++) row[c] *= scale;
        row[target] -= gradientScale;
        return loss;
    }

    /// <summary>See <see cref="IMatrixOps{T, TData, TIds}.SoftmaxCrossEntropyCounts"/>; returns the loss.</summary>
    public virtual T SoftmaxCrossEntropyCounts(Span<T> logits, int columns, ReadOnlySpan<T> counts, T gradientScale)
    {
        T loss = T.Zero;
        for (int offset = 0; offset < logits.Length; offset += columns)
        {
            var row = logits.Slice(offset, columns);
            var count = counts.Slice(offset, columns);
            T max = T.NegativeInfinity, total = T.Zero, dot = T.Zero;
            for (int c = 0; c < columns; c++)
            {
                max = T.Max(max, row[c]);
                total += count[c];
                dot += count[c] * row[c];
            }
            T sum = T.Zero;
            for (int c = 0; c < columns; c++)
            {
                row[c] = T.Exp(row[c] - max);
                sum += row[c];
            }
            // Σ_c count_c · (log Σ exp − logit_c), with the logits shifted by their maximum.
            loss += total * (T.Log(sum) + max) - dot;
            T scale = gradientScale * total / sum;
            for (int c = 0; c < columns; c++) row[c] = scale * row[c] - gradientScale * count[c];
        }
        return loss;
    }

    /// <summary>See <see cref="IMatrixOps{T, TData, TIds}.SquaredError"/>; returns the loss. Rows are the mask's unit, the unmasked pass the work.</summary>
    public T SquaredError(Span<T> output, ReadOnlySpan<T> target, int columns, ReadOnlySpan<int> rowMask, T gradientScale)
    {
        if (rowMask.IsEmpty) return SquaredError(output, target, gradientScale);
        // Summed in double whatever T is, as the float pass sums its own rows.
        double loss = 0;
        for (int r = 0; r < rowMask.Length; r++)
        {
            var row = output.Slice(r * columns, columns);
            if (rowMask[r] < 0) row.Clear();
            else loss += double.CreateChecked(SquaredError(row, target.Slice(r * columns, columns), gradientScale));
        }
        return T.CreateChecked(loss);
    }

    /// <summary>Squared error over every element of <paramref name="output"/> and <paramref name="target"/> (same length); returns the loss.</summary>
    public virtual T SquaredError(Span<T> output, ReadOnlySpan<T> target, T gradientScale)
    {
        T loss = T.Zero, half = T.CreateChecked(0.5);
        for (int i = 0; i < output.Length; i++)
        {
            T difference = output[i] - target[i];
            loss += half * difference * difference;
            output[i] = gradientScale * difference;
        }
        return loss;
    }

    /// <summary>destination[r] = the first index of the largest element of row r of values [R, C].</summary>
    public virtual void ArgMaxRows(ReadOnlySpan<T> values, int columns, Span<int> destination)
    {
        for (int r = 0; r < destination.Length; r++) destination[r] = TeacherForcing.ArgMax(values.Slice(r * columns, columns));
    }

    // The interface over Memory<T>: buffers are host memory, so staging is the identity.

    Memory<T> IMatrixOps<T, Memory<T>, Memory<int>>.Slice(Memory<T> data, int offset, int length) => data.Slice(offset, length);

    Memory<int> IMatrixOps<T, Memory<T>, Memory<int>>.SliceIds(Memory<int> ids, int offset, int length) => ids.Slice(offset, length);

    Memory<T> IMatrixOps<T, Memory<T>, Memory<int>>.Workspace(ref Memory<T> buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer[..length];
    }

    void IMatrixOps<T, Memory<T>, Memory<int>>.Clear(Memory<T> data) => data.Span.Clear();

    // The operations never write into an uploaded input, so handing out the caller's memory as writable is safe.
    Memory<T> IMatrixOps<T, Memory<T>, Memory<int>>.Upload(ReadOnlyMemory<T> source, ref Memory<T> stage) => MemoryMarshal.AsMemory(source);

    Memory<int> IMatrixOps<T, Memory<T>, Memory<int>>.UploadIds(ReadOnlyMemory<int> source, ref Memory<int> stage) => MemoryMarshal.AsMemory(source);

    Memory<T> IMatrixOps<T, Memory<T>, Memory<int>>.Destination(Memory<T> destination, ref Memory<T> stage) => destination;

    void IMatrixOps<T, Memory<T>, Memory<int>>.Download(Memory<T> source, Memory<T> destination)
    {
        if (!source.Equals(destination)) source.Span.CopyTo(destination.Span);
    }

    void IMatrixOps<T, Memory<T>, Memory<int>>.DownloadIds(Memory<int> source, Memory<int> destination)
    {
        if (!source.Equals(destination)) source.Span.CopyTo(destination.Span);
    }

    Memory<T> IMatrixOps<T, Memory<T>, Memory<int>>.GradientAccumulator(Memory<T> hostGradient, ref Memory<T> stage) => hostGradient;

    void IMatrixOps<T, Memory<T>, Memory<int>>.AddToHost(Memory<T> gradient, Memory<T> hostGradient)
    {
        if (gradient.Equals(hostGradient)) return;
        var source = gradient.Span;
        var destination = hostGradient.Span;
        for (int i = 0; i < destination.Length; i++) destination[i] += source[i];
    }

    void IMatrixOps<T, Memory<T>, Memory<int>>.Gemm(bool transA, bool transB, int m, int n, int k, T alpha, Memory<T> a, int lda, Memory<T> b, int ldb, T beta, Memory<T> c, int ldc) =>
        Gemm(transA, transB, m, n, k, alpha, a.Span, lda, b.Span, ldb, beta, c.Span, ldc);

    void IMatrixOps<T, Memory<T>, Memory<int>>.BroadcastRows(Memory<T> row, Memory<T> destination) => BroadcastRows(row.Span, destination.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.GatherRowsAdd(Memory<T> table, int columns, Memory<int> ids, Memory<T> destination) =>
        GatherRowsAdd(table.Span, columns, ids.Span, destination.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.ScatterRowsAdd(Memory<T> source, int columns, Memory<int> ids, Memory<T> table) =>
        ScatterRowsAdd(source.Span, columns, ids.Span, table.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.Activate(RnnActivation activation, Memory<T> values) => Activate(activation, values.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.ActivationBackward(RnnActivation activation, Memory<T> output, Memory<T> gradient, int columns, Memory<T> biasGradient) =>
        ActivationBackward(activation, output.Span, gradient.Span, columns, biasGradient.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.AddColumnSums(Memory<T> source, int columns, Memory<T> destination) =>
        AddColumnSums(source.Span, columns, destination.Span);

    void IMatrixOps<T, Memory<T>, Memory<int>>.SoftmaxCrossEntropy(Memory<T> logits, int columns, Memory<int> targets, T gradientScale, Memory<T> lossSum) =>
        lossSum.Span[0] += SoftmaxCrossEntropy(logits.Span, columns, targets.Span, gradientScale);

    void IMatrixOps<T, Memory<T>, Memory<int>>.SoftmaxCrossEntropyCounts(Memory<T> logits, int columns, Memory<T> counts, T gradientScale, Memory<T> lossSum) =>
        lossSum.Span[0] += SoftmaxCrossEntropyCounts(logits.Span, columns, counts.Span, gradientScale);

    void IMatrixOps<T, Memory<T>, Memory<int>>.SquaredError(Memory<T> output, Memory<T> target, int columns, Memory<int> rowMask, T gradientScale, Memory<T> lossSum) =>
        lossSum.Span[0] += SquaredError(output.Span, target.Span, columns, rowMask.Span, gradientScale);

    T IMatrixOps<T, Memory<T>, Memory<int>>.ReadScalar(Memory<T> data) => data.Span[0];

    void IMatrixOps<T, Memory<T>, Memory<int>>.ArgMaxRows(Memory<T> values, int columns, Memory<int> destination) =>
        ArgMaxRows(values.Span, columns, destination.Span);
}
