using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T}"/> as plain loops in any floating-point type. In double it is the reference of the
/// teacher-forced models (finite differences check it; the float path is checked against it); <see cref="CpuMatrixOps"/>
/// reuses its scalar passes as the fallback of its vector ones.
/// </summary>
internal class ManagedMatrixOps<T> : IMatrixOps<T> where T : unmanaged, IFloatingPointIeee754<T>
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
            // Both derivatives from the output alone, so the pre-activation need not be kept.
            T derivative = activation == RnnActivation.Tanh ? T.One - h * h : h > T.Zero ? T.One : T.Zero;
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
            loss += SoftmaxCrossEntropyRow(logits.Slice(r * columns, columns), targets[r], gradientScale);
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
}
