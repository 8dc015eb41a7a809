using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T}"/> in float32 on the CPU: every product is the native library's GEMM
/// (<see cref="NativeGemm.Sgemm"/>); the pointwise passes are managed, vectorised with <see cref="Vector512{T}"/> and
/// split over row blocks across cores when large. Where AVX-512 is not accelerated the passes fall back to
/// <see cref="ManagedMatrixOps{T}"/>'s scalar loops.
/// </summary>
internal sealed unsafe class CpuMatrixOps : ManagedMatrixOps<float>
{
    /// <summary>Below this many elements a pass runs on the calling thread: splitting costs more than it saves.</summary>
    private const int ParallelElements = 1 << 16;

    private static readonly bool Vectorised = Vector512.IsHardwareAccelerated;

    /// <summary>The shared instance (the class holds no state).</summary>
    public static new CpuMatrixOps Instance { get; } = new();

    public override string Name => "native-cpu";

    public override void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        NativeGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    public override void BroadcastRows(ReadOnlySpan<float> row, Span<float> destination)
    {
        if (!Vectorised || row.Length == 0) { base.BroadcastRows(row, destination); return; }
        int columns = row.Length;
        fixed (float* pr = row, pd = destination)
        {
            nint r = (nint)pr, d = (nint)pd;
            ForRowBlocks(destination.Length / columns, columns, (first, count) =>
            {
                var source = new ReadOnlySpan<float>((float*)r, columns);
                for (int i = first; i < first + count; i++) source.CopyTo(new Span<float>((float*)d + (long)i * columns, columns));
            });
        }
    }

    public override void GatherRowsAdd(ReadOnlySpan<float> table, int columns, ReadOnlySpan<int> ids, Span<float> destination)
    {
        if (!Vectorised) { base.GatherRowsAdd(table, columns, ids, destination); return; }
        fixed (float* pt = table, pd = destination)
        fixed (int* pi = ids)
        {
            nint t = (nint)pt, d = (nint)pd, index = (nint)pi;
            ForRowBlocks(ids.Length, columns, (first, count) =>
            {
                for (int i = first; i < first + count; i++)
                {
                    int id = ((int*)index)[i];
                    if (id >= 0) AddInto((float*)d + (long)i * columns, (float*)t + (long)id * columns, columns);
                }
            });
        }
    }

    public override void ScatterRowsAdd(ReadOnlySpan<float> source, int columns, ReadOnlySpan<int> ids, Span<float> table)
    {
        if (!Vectorised) { base.ScatterRowsAdd(source, columns, ids, table); return; }
        // Rows of the table repeat across ids, so this pass stays on one thread (no atomics, a fixed summation order).
        fixed (float* ps = source, pt = table)
            for (int i = 0; i < ids.Length; i++)
                if (ids[i] >= 0) AddInto(pt + (long)ids[i] * columns, ps + (long)i * columns, columns);
    }

    public override void Activate(RnnActivation activation, Span<float> values)
    {
        if (!Vectorised) { base.Activate(activation, values); return; }
        fixed (float* pv = values)
        {
            nint v = (nint)pv;
            bool tanh = activation == RnnActivation.Tanh;
            ForRowBlocks(values.Length, 1, (first, count) =>
            {
                float* p = (float*)v + first;
                int i = 0;
                for (; i <= count - 16; i += 16)
                {
                    var x = Vector512.Load(p + i);
                    (tanh ? Tanh(x) : Vector512.Max(x, Vector512<float>.Zero)).Store(p + i);
                }
                for (; i < count; i++) p[i] = tanh ? MathF.Tanh(p[i]) : MathF.Max(p[i], 0);
            });
        }
    }

    public override void ActivationBackward(RnnActivation activation, ReadOnlySpan<float> output, Span<float> gradient, int columns, Span<float> biasGradient)
    {
        if (!Vectorised) { base.ActivationBackward(activation, output, gradient, columns, biasGradient); return; }
        bool tanh = activation == RnnActivation.Tanh;
        fixed (float* po = output, pg = gradient)
        {
            nint o = (nint)po, g = (nint)pg;
            ColumnSumsOverRowBlocks(gradient.Length / columns, columns, biasGradient, (first, count, sumsAddress) =>
            {
                float* sums = (float*)sumsAddress;
                for (int r = first; r < first + count; r++)
                {
                    float* h = (float*)o + (long)r * columns, d = (float*)g + (long)r * columns;
                    int i = 0;
                    for (; i <= columns - 16; i += 16)
                    {
                        var hv = Vector512.Load(h + i);
                        var derivative = tanh ? Vector512<float>.One - hv * hv
                            : Vector512.ConditionalSelect(Vector512.GreaterThan(hv, Vector512<float>.Zero), Vector512<float>.One, Vector512<float>.Zero);
                        var dz = Vector512.Load(d + i) * derivative;
                        dz.Store(d + i);
                        (Vector512.Load(sums + i) + dz).Store(sums + i);
                    }
                    for (; i < columns; i++)
                    {
                        d[i] *= tanh ? 1 - h[i] * h[i] : h[i] > 0 ? 1 : 0;
                        sums[i] += d[i];
                    }
                }
            });
        }
    }

    public override void AddColumnSums(ReadOnlySpan<float> source, int columns, Span<float> destination)
    {
        if (!Vectorised) { base.AddColumnSums(source, columns, destination); return; }
        fixed (float* ps = source)
        {
            nint s = (nint)ps;
            ColumnSumsOverRowBlocks(source.Length / columns, columns, destination, (first, count, sumsAddress) =>
            {
                for (int r = first; r < first + count; r++) AddInto((float*)sumsAddress, (float*)s + (long)r * columns, columns);
            });
        }
    }

    public override float SoftmaxCrossEntropy(Span<float> logits, int columns, ReadOnlySpan<int> targets, float gradientScale)
    {
        if (!Vectorised) return base.SoftmaxCrossEntropy(logits, columns, targets, gradientScale);
        int rows = targets.Length;
        int blocks = BlockCount(rows, columns);
        var losses = new double[blocks];
        fixed (float* pl = logits)
        fixed (int* pt = targets)
        {
            nint l = (nint)pl, t = (nint)pt;
            Run(blocks, block =>
            {
                (int first, int count) = Block(rows, blocks, block);
                double loss = 0;
                for (int r = first; r < first + count; r++)
                    loss += SoftmaxCrossEntropyRow((float*)l + (long)r * columns, columns, ((int*)t)[r], gradientScale);
                losses[block] = loss;
            });
        }
        return (float)losses.Sum();
    }

    public override float SquaredError(Span<float> output, ReadOnlySpan<float> target, float gradientScale)
    {
        if (!Vectorised) return base.SquaredError(output, target, gradientScale);
        int length = output.Length, blocks = BlockCount(length, 1);
        var losses = new double[blocks];
        fixed (float* po = output, pt = target)
        {
            nint o = (nint)po, t = (nint)pt;
            Run(blocks, block =>
            {
                (int first, int count) = Block(length, blocks, block);
                float* p = (float*)o + first, y = (float*)t + first;
                var sum = Vector512<float>.Zero;
                var scale = Vector512.Create(gradientScale);
                int i = 0;
                for (; i <= count - 16; i += 16)
                {
                    var difference = Vector512.Load(p + i) - Vector512.Load(y + i);
                    sum += difference * difference;
                    (scale * difference).Store(p + i);
                }
                double loss = Vector512.Sum(sum);
                for (; i < count; i++)
                {
                    float difference = p[i] - y[i];
                    loss += difference * difference;
                    p[i] = gradientScale * difference;
                }
                losses[block] = 0.5 * loss;
            });
        }
        return (float)losses.Sum();
    }

    /// <summary>One row of softmax cross-entropy, shifted by its maximum so exp never overflows.</summary>
    private static float SoftmaxCrossEntropyRow(float* row, int columns, int target, float gradientScale)
    {
        int i = 0;
        var maxVector = Vector512.Create(float.NegativeInfinity);
        for (; i <= columns - 16; i += 16) maxVector = Vector512.Max(maxVector, Vector512.Load(row + i));
        float max = columns >= 16 ? HorizontalMax(maxVector) : float.NegativeInfinity;
        for (; i < columns; i++) max = MathF.Max(max, row[i]);

        float shiftedTarget = row[target] - max;
        var shift = Vector512.Create(max);
        var sumVector = Vector512<float>.Zero;
        i = 0;
        for (; i <= columns - 16; i += 16)
        {
            var e = Vector512.Exp(Vector512.Load(row + i) - shift);
            e.Store(row + i);
            sumVector += e;
        }
        float sum = Vector512.Sum(sumVector);
        for (; i < columns; i++)
        {
            row[i] = MathF.Exp(row[i] - max);
            sum += row[i];
        }

        float scale = gradientScale / sum;
        var scaleVector = Vector512.Create(scale);
        i = 0;
        for (; i <= columns - 16; i += 16) (Vector512.Load(row + i) * scaleVector).Store(row + i);
        for (; i < columns; i++) row[i] *= scale;
        row[target] -= gradientScale;
        return MathF.Log(sum) - shiftedTarget;
    }

    /// <summary>tanh(x) = 1 − 2 / (exp(2x) + 1): saturates to ±1 without overflow (exp → ∞ gives 1, exp → 0 gives −1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Tanh(Vector512<float> x)
    {
        var e = Vector512.Exp(x + x);
        return Vector512<float>.One - Vector512.Create(2f) / (e + Vector512<float>.One);
    }

    private static float HorizontalMax(Vector512<float> v)
    {
        float max = v[0];
        for (int i = 1; i < Vector512<float>.Count; i++) max = MathF.Max(max, v[i]);
        return max;
    }

    /// <summary>destination[0..n) += source[0..n).</summary>
    private static void AddInto(float* destination, float* source, int n)
    {
        int i = 0;
        for (; i <= n - 16; i += 16) (Vector512.Load(destination + i) + Vector512.Load(source + i)).Store(destination + i);
        for (; i < n; i++) destination[i] += source[i];
    }

    private static int BlockCount(int rows, int columns) =>
        (long)rows * columns < ParallelElements ? 1 : Math.Min(Environment.ProcessorCount, rows);

    private static (int First, int Count) Block(int rows, int blocks, int block)
    {
        int first = (int)((long)rows * block / blocks), end = (int)((long)rows * (block + 1) / blocks);
        return (first, end - first);
    }

    private static void Run(int blocks, Action<int> body)
    {
        if (blocks == 1) body(0);
        else Parallel.For(0, blocks, body);
    }

    private static void ForRowBlocks(int rows, int columns, Action<int, int> body)
    {
        int blocks = BlockCount(rows, columns);
        Run(blocks, block =>
        {
            (int first, int count) = Block(rows, blocks, block);
            body(first, count);
        });
    }

    /// <summary>Runs <paramref name="body"/> over row blocks, each adding its column sums into a private buffer; the buffers are then added in block order.</summary>
    private static void ColumnSumsOverRowBlocks(int rows, int columns, Span<float> destination, Action<int, int, nint> body)
    {
        int blocks = BlockCount(rows, columns);
        var partial = new float[blocks * columns];
        fixed (float* pp = partial)
        {
            nint p = (nint)pp;
            Run(blocks, block =>
            {
                (int first, int count) = Block(rows, blocks, block);
                body(first, count, p + (nint)block * columns * sizeof(float));
            });
        }
        for (int block = 0; block < blocks; block++)
            for (int c = 0; c < columns; c++) destination[c] += partial[block * columns + c];
    }
}
