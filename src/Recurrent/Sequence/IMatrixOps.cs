using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>
/// The few operations the teacher-forced sequence models are made of: matrix products and fused pointwise passes over
/// row-major [rows, columns] matrices. A training step is written once against this interface and runs on every
/// implementation: <see cref="CpuMatrixOps"/> (float32, the native GEMM) and <see cref="ManagedMatrixOps{T}"/>
/// (plain loops; in double it is the reference the tests check the float path and finite differences against).
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
internal interface IMatrixOps<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A short name for reports.</summary>
    string Name { get; }

    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, row-major with row strides, as <see cref="Kernels.Cpu.NativeGemm.Sgemm"/>.
    /// With beta = 0, C is not read.
    /// </summary>
    void Gemm(bool transA, bool transB, int m, int n, int k, T alpha, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc);

    /// <summary>Writes <paramref name="row"/> [C] into every row of <paramref name="destination"/> [R, C] (a bias before a product with beta = 1).</summary>
    void BroadcastRows(ReadOnlySpan<T> row, Span<T> destination);

    /// <summary>destination[r, :] += table[ids[r], :] for every r with ids[r] ≥ 0 (a one-hot row times the table); ids [R], table [V, C], destination [R, C].</summary>
    void GatherRowsAdd(ReadOnlySpan<T> table, int columns, ReadOnlySpan<int> ids, Span<T> destination);

    /// <summary>table[ids[r], :] += source[r, :] for every r with ids[r] ≥ 0: the gradient of <see cref="GatherRowsAdd"/>.</summary>
    void ScatterRowsAdd(ReadOnlySpan<T> source, int columns, ReadOnlySpan<int> ids, Span<T> table);

    /// <summary>values = act(values), in place.</summary>
    void Activate(RnnActivation activation, Span<T> values);

    /// <summary>
    /// Fused backward of a biased activation h = act(z + b): gradient [R, C] (dh in, dz out, in place) is multiplied by
    /// act′ evaluated from <paramref name="output"/> h [R, C], and the column sums of dz are added into
    /// <paramref name="biasGradient"/> [C].
    /// </summary>
    void ActivationBackward(RnnActivation activation, ReadOnlySpan<T> output, Span<T> gradient, int columns, Span<T> biasGradient);

    /// <summary>destination[c] += Σ_r source[r, c]; source [R, C].</summary>
    void AddColumnSums(ReadOnlySpan<T> source, int columns, Span<T> destination);

    /// <summary>
    /// Fused softmax cross-entropy over the rows of <paramref name="logits"/> [R, C] with target classes
    /// <paramref name="targets"/> [R]: returns Σ_r −log softmax(logits_r)[targets[r]] and overwrites the logits with
    /// their gradient scaled by <paramref name="gradientScale"/>: scale · (softmax − onehot).
    /// </summary>
    T SoftmaxCrossEntropy(Span<T> logits, int columns, ReadOnlySpan<int> targets, T gradientScale);

    /// <summary>
    /// Fused squared error: returns Σ ½(o − y)² over <paramref name="output"/> and <paramref name="target"/> (same length)
    /// and overwrites the output with its gradient scaled by <paramref name="gradientScale"/>: scale · (o − y).
    /// </summary>
    T SquaredError(Span<T> output, ReadOnlySpan<T> target, T gradientScale);
}
