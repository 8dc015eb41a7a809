using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T, TData, TIds}"/> in float32 on the CPU: every product is the native library's GEMM
/// (<see cref="NativeGemm.Sgemm"/>, which uses the cores); the pointwise passes are managed, vectorised with
/// <see cref="Vector512{T}"/>, on the calling thread. Where AVX-512 is not accelerated they fall back to
/// <see cref="ManagedMatrixOps{T}"/>'s scalar loops.
/// </summary>
/// <remarks>
/// Splitting the passes over row blocks with <c>Parallel.For</c> was tried and measured: on the shared 2-core machine it
/// made tanh over [6400, 512] 15× slower than on one thread (a worker waits for a descheduled peer), and on a quiet
/// machine it could save at most a few ms against the products' tens, so the passes stay on one thread.
/// </remarks>
internal sealed unsafe class CpuMatrixOps : ManagedMatrixOps<float>
{
    private const int Width = 16;
    private static readonly bool Vectorised = Vector512.IsHardwareAccelerated;

    /// <summary>The shared instance (the class holds no state).</summary>
    public static new CpuMatrixOps Instance { get; } = new();

    public override string Name => "native-cpu";

    public override void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        NativeGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    public override void GatherRowsAdd(ReadOnlySpan<float> table, int columns, ReadOnlySpan<int> ids, Span<float> destination)
    {
        if (!Vectorised) { base.GatherRowsAdd(table, columns, ids, destination); return; }
        fixed (float* pt = table, pd = destination)
            for (int r = 0; r < ids.Length; r++)
                if (ids[r] >= 0) AddInto(pd + (long)r * columns, pt + (long)ids[r] * columns, columns);
    }

    public override void ScatterRowsAdd(ReadOnlySpan<float> source, int columns, ReadOnlySpan<int> ids, Span<float> table)
    {
        if (!Vectorised) { base.ScatterRowsAdd(source, columns, ids, table); return; }
        fixed (float* ps = source, pt = table)
            for (int r = 0; r < ids.Length; r++)
                if (ids[r] >= 0) AddInto(pt + (long)ids[r] * columns, ps + (long)r * columns, columns);
    }

    public override void Activate(RnnActivation activation, Span<float> values)
    {
        if (!Vectorised) { base.Activate(activation, values); return; }
        bool tanh = activation == RnnActivation.Tanh;
        int count = values.Length, i = 0;
        fixed (float* p = values)
        {
            for (; i <= count - Width; i += Width)
            {
                var x = Vector512.Load(p + i);
                (tanh ? Tanh(x) : Vector512.Max(x, Vector512<float>.Zero)).Store(p + i);
            }
            for (; i < count; i++) p[i] = tanh ? MathF.Tanh(p[i]) : MathF.Max(p[i], 0);
        }
    }

    public override void ActivationBackward(RnnActivation activation, ReadOnlySpan<float> output, Span<float> gradient, int columns, Span<float> biasGradient)
    {
        if (!Vectorised) { base.ActivationBackward(activation, output, gradient, columns, biasGradient); return; }
        bool tanh = activation == RnnActivation.Tanh;
        int rows = gradient.Length / columns;
        fixed (float* po = output, pg = gradient, sums = biasGradient)
            for (int r = 0; r < rows; r++)
            {
                float* h = po + (long)r * columns, d = pg + (long)r * columns;
                int i = 0;
                for (; i <= columns - Width; i += Width)
                {
                    var hv = Vector512.Load(h + i);
                    // Both derivatives from the output alone, so the pre-activation need not be kept.
                    // relu: 1 where h is NaN (as ManagedMatrixOps), so the gradient is not zeroed there.
                    var derivative = tanh ? Vector512<float>.One - hv * hv
                        : Vector512.ConditionalSelect(Vector512.LessThanOrEqual(hv, Vector512<float>.Zero), Vector512<float>.Zero, Vector512<float>.One);
                    var dz = Vector512.Load(d + i) * derivative;
                    dz.Store(d + i);
                    (Vector512.Load(sums + i) + dz).Store(sums + i);
                }
                for (; i < columns; i++)
                {
                    d[i] *= tanh ? 1 - h[i] * h[i] : h[i] <= 0 ? 0 : 1;
                    sums[i] += d[i];
                }
            }
    }

    public override void AddColumnSums(ReadOnlySpan<float> source, int columns, Span<float> destination)
    {
        if (!Vectorised) { base.AddColumnSums(source, columns, destination); return; }
        int rows = source.Length / columns;
        fixed (float* ps = source, pd = destination)
            for (int r = 0; r < rows; r++) AddInto(pd, ps + (long)r * columns, columns);
    }

    public override float SoftmaxCrossEntropy(Span<float> logits, int columns, ReadOnlySpan<int> targets, float gradientScale)
    {
        if (!Vectorised) return base.SoftmaxCrossEntropy(logits, columns, targets, gradientScale);
        // The loss sums thousands of rows: accumulate in double so the mean keeps float precision.
        double loss = 0;
        fixed (float* pl = logits)
            for (int r = 0; r < targets.Length; r++)
            {
                if (targets[r] < 0) new Span<float>(pl + (long)r * columns, columns).Clear();
                else loss += SoftmaxCrossEntropyRow(pl + (long)r * columns, columns, targets[r], gradientScale);
            }
        return (float)loss;
    }

    public override float SoftmaxCrossEntropyCounts(Span<float> logits, int columns, ReadOnlySpan<float> counts, float gradientScale)
    {
        if (!Vectorised || columns < Width) return base.SoftmaxCrossEntropyCounts(logits, columns, counts, gradientScale);
        double loss = 0;
        fixed (float* pl = logits, pc = counts)
            for (long offset = 0; offset < logits.Length; offset += columns)
            {
                float* row = pl + offset, count = pc + offset;
                int i;
                var maxVector = Vector512.Load(row);
                var totalVector = Vector512<float>.Zero;
                var dotVector = Vector512<float>.Zero;
                for (i = 0; i <= columns - Width; i += Width)
                {
                    var v = Vector512.Load(row + i);
                    var n = Vector512.Load(count + i);
                    maxVector = Vector512.Max(maxVector, v);
                    totalVector += n;
                    dotVector += n * v;
                }
                float max = float.NegativeInfinity, total = Vector512.Sum(totalVector), dot = Vector512.Sum(dotVector);
                for (int lane = 0; lane < Width; lane++) max = MathF.Max(max, maxVector[lane]);
                for (int c = i; c < columns; c++)
                {
                    max = MathF.Max(max, row[c]);
                    total += count[c];
                    dot += count[c] * row[c];
                }
                float sum = ExpShifted(row, columns, max);
                // Σ_c count_c · (log Σ exp − logit_c), with the logits shifted by their maximum.
                loss += total * ((double)MathF.Log(sum) + max) - dot;
                float scale = gradientScale * total / sum;
                var scaleVector = Vector512.Create(scale);
                var gradientScaleVector = Vector512.Create(gradientScale);
                for (i = 0; i <= columns - Width; i += Width)
                    (scaleVector * Vector512.Load(row + i) - gradientScaleVector * Vector512.Load(count + i)).Store(row + i);
                for (; i < columns; i++) row[i] = scale * row[i] - gradientScale * count[i];
            }
        return (float)loss;
    }

    public override float SquaredError(Span<float> output, ReadOnlySpan<float> target, float gradientScale)
    {
        if (!Vectorised) return base.SquaredError(output, target, gradientScale);
        int count = output.Length, i = 0;
        double loss = 0;
        fixed (float* p = output, y = target)
        {
            var scale = Vector512.Create(gradientScale);
            // Row-sized partial sums in float, gathered in double: the mean over thousands of rows keeps float precision.
            while (i <= count - Width)
            {
                var sum = Vector512<float>.Zero;
                for (int end = Math.Min(count - Width, i + 1024); i <= end; i += Width)
                {
                    var difference = Vector512.Load(p + i) - Vector512.Load(y + i);
                    sum += difference * difference;
                    (scale * difference).Store(p + i);
                }
                loss += Vector512.Sum(sum);
            }
            for (; i < count; i++)
            {
                float difference = p[i] - y[i];
                loss += difference * difference;
                p[i] = gradientScale * difference;
            }
        }
        return (float)(0.5 * loss);
    }

    /// <summary>One row of softmax cross-entropy, shifted by its maximum so exp never overflows.</summary>
    private static double SoftmaxCrossEntropyRow(float* row, int columns, int target, float gradientScale)
    {
        int i = 0;
        float max = float.NegativeInfinity;
        if (columns >= Width)
        {
            var maxVector = Vector512.Load(row);
            for (i = Width; i <= columns - Width; i += Width) maxVector = Vector512.Max(maxVector, Vector512.Load(row + i));
            for (int lane = 0; lane < Width; lane++) max = MathF.Max(max, maxVector[lane]);
        }
        for (; i < columns; i++) max = MathF.Max(max, row[i]);

        float shiftedTarget = row[target] - max;
        float sum = ExpShifted(row, columns, max);

        float scale = gradientScale / sum;
        var scaleVector = Vector512.Create(scale);
        for (i = 0; i <= columns - Width; i += Width) (Vector512.Load(row + i) * scaleVector).Store(row + i);
        for (; i < columns; i++) row[i] *= scale;
        row[target] -= gradientScale;
        return MathF.Log(sum) - shiftedTarget;
    }

    /// <summary>row[c] = exp(row[c] − max) for every column; returns their sum.</summary>
    private static float ExpShifted(float* row, int columns, float max)
    {
        var shift = Vector512.Create(max);
        var sumVector = Vector512<float>.Zero;
        int i;
        for (i = 0; i <= columns - Width; i += Width)
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
        return sum;
    }

    /// <summary>tanh(x) = 1 − 2 / (exp(2x) + 1): saturates to ±1 without overflow (exp → ∞ gives 1, exp → 0 gives −1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Tanh(Vector512<float> x)
    {
        var e = Vector512.Exp(x + x);
        return Vector512<float>.One - Vector512.Create(2f) / (e + Vector512<float>.One);
    }

    /// <summary>destination[0..n) += source[0..n).</summary>
    private static void AddInto(float* destination, float* source, int n)
    {
        int i = 0;
        for (; i <= n - Width; i += Width) (Vector512.Load(destination + i) + Vector512.Load(source + i)).Store(destination + i);
        for (; i < n; i++) destination[i] += source[i];
    }
}
