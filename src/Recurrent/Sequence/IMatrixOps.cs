using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>
/// The few operations the teacher-forced sequence models are made of: matrix products and fused pointwise passes over
/// row-major [rows, columns] matrices, on buffers of type <typeparamref name="TData"/> (elements) and
/// <typeparamref name="TIds"/> (token ids) that live where the implementation computes. A training step is written once
/// against this interface (<see cref="OutputRecurrentEngine{T, TData, TIds}"/>) and runs on every implementation:
/// on the host over <see cref="Memory{T}"/> (<see cref="CpuMatrixOps"/>: float32, the native GEMM;
/// <see cref="ManagedMatrixOps{T}"/>: plain loops, in double the reference the tests check against), and on an ILGPU
/// accelerator over <c>ArrayView</c>s (<see cref="IlgpuMatrixOps"/>).
/// </summary>
/// <remarks>
/// The buffer operations (<see cref="Upload"/>, <see cref="Download"/>, <see cref="GradientAccumulator"/> …) are
/// the identity on the host, so the host path copies nothing; on a device they are the only transfers.
/// Element counts of a buffer are the implementation's to read; row counts follow from them and the column count.
/// </remarks>
/// <typeparam name="T">The element type.</typeparam>
/// <typeparam name="TData">A contiguous buffer of elements (a slice is again a <typeparamref name="TData"/>).</typeparam>
/// <typeparam name="TIds">A contiguous buffer of token ids.</typeparam>
internal interface IMatrixOps<T, TData, TIds>
    where T : unmanaged, IFloatingPointIeee754<T>
    where TData : struct
    where TIds : struct
{
    /// <summary>A short name for reports.</summary>
    string Name { get; }

    /// <summary>Elements [offset, offset + length) of <paramref name="data"/>.</summary>
    TData Slice(TData data, int offset, int length);

    /// <summary>Ids [offset, offset + length) of <paramref name="ids"/>.</summary>
    TIds SliceIds(TIds ids, int offset, int length);

    /// <summary>
    /// The first <paramref name="length"/> elements of <paramref name="buffer"/>, which is replaced by a larger one first
    /// when too short and kept by the caller between calls (a step at T = 100, N = 64, H = 512 needs tens of MB: fresh
    /// host arrays cost page faults and full collections, fresh device buffers a device-wide synchronisation). Contents
    /// are stale; every user overwrites before reading.
    /// </summary>
    TData Workspace(ref TData buffer, int length);

    /// <summary>Sets every element of <paramref name="data"/> to zero.</summary>
    void Clear(TData data);

    /// <summary>
    /// Host data made readable by the other operations: on the host <paramref name="source"/> itself (no copy, and the
    /// operations never write into it); on a device a copy in <paramref name="stage"/> (grown as <see cref="Workspace"/>).
    /// </summary>
    TData Upload(ReadOnlyMemory<T> source, ref TData stage);

    /// <summary><see cref="Upload"/> for ids; on the host writable when <paramref name="source"/> is.</summary>
    TIds UploadIds(ReadOnlyMemory<int> source, ref TIds stage);

    /// <summary>
    /// A buffer of the length of <paramref name="destination"/> for results that end up there: on the host
    /// <paramref name="destination"/> itself, on a device <paramref name="stage"/>; <see cref="Download"/> then moves them.
    /// </summary>
    TData Destination(Memory<T> destination, ref TData stage);

    /// <summary>destination = source (same lengths); nothing on the host when both are the same memory.</summary>
    void Download(TData source, Memory<T> destination);

    /// <summary>destination = source for ids; nothing on the host when both are the same memory.</summary>
    void DownloadIds(TIds source, Memory<int> destination);

    /// <summary>
    /// Where a training step accumulates the gradient of a parameter whose host gradient is <paramref name="hostGradient"/>:
    /// on the host that array itself; on a device <paramref name="stage"/>, zeroed. <see cref="AddToHost"/> ends the step.
    /// </summary>
    TData GradientAccumulator(Memory<T> hostGradient, ref TData stage);

    /// <summary>hostGradient += gradient; nothing on the host, where they are the same memory.</summary>
    void AddToHost(TData gradient, Memory<T> hostGradient);

    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, row-major with row strides, as <see cref="Kernels.Cpu.NativeGemm.Sgemm"/>.
    /// With beta = 0, C is not read.
    /// </summary>
    void Gemm(bool transA, bool transB, int m, int n, int k, T alpha, TData a, int lda, TData b, int ldb, T beta, TData c, int ldc);

    /// <summary>Writes <paramref name="row"/> [C] into every row of <paramref name="destination"/> [R, C] (a bias before a product with beta = 1).</summary>
    void BroadcastRows(TData row, TData destination);

    /// <summary>destination[r, :] += table[ids[r], :] for every r with ids[r] ≥ 0 (a one-hot row times the table); ids [R], table [V, C], destination [R, C].</summary>
    void GatherRowsAdd(TData table, int columns, TIds ids, TData destination);

    /// <summary>table[ids[r], :] += source[r, :] for every r with ids[r] ≥ 0: the gradient of <see cref="GatherRowsAdd"/>. Ids may repeat.</summary>
    void ScatterRowsAdd(TData source, int columns, TIds ids, TData table);

    /// <summary>values = act(values), in place.</summary>
    void Activate(RnnActivation activation, TData values);

    /// <summary>
    /// Fused backward of a biased activation h = act(z + b): gradient [R, C] (dh in, dz out, in place) is multiplied by
    /// act′ evaluated from <paramref name="output"/> h [R, C], and the column sums of dz are added into
    /// <paramref name="biasGradient"/> [C].
    /// </summary>
    void ActivationBackward(RnnActivation activation, TData output, TData gradient, int columns, TData biasGradient);

    /// <summary>destination[c] += Σ_r source[r, c]; source [R, C].</summary>
    void AddColumnSums(TData source, int columns, TData destination);

    /// <summary>
    /// Fused softmax cross-entropy over the rows of <paramref name="logits"/> [R, C] with target classes
    /// <paramref name="targets"/> [R]: adds Σ_r −log softmax(logits_r)[targets[r]] into <paramref name="lossSum"/> [1] and
    /// overwrites the logits with their gradient scaled by <paramref name="gradientScale"/>: scale · (softmax − onehot).
    /// A row whose target is negative is ignored, as PyTorch's <c>ignore_index</c> (a target past a sequence's end): it
    /// adds no loss, its logits are not read (they may hold anything, NaN included) and its gradient row is zero.
    /// The loss stays where the operations run, so a loop over steps does not wait for a device at every step
    /// (<see cref="ReadScalar"/> reads it once).
    /// </summary>
    void SoftmaxCrossEntropy(TData logits, int columns, TIds targets, T gradientScale, TData lossSum);

    /// <summary>
    /// Softmax cross-entropy against target counts, for predictions that share their logits: row r of
    /// <paramref name="counts"/> [R, C] holds how often each class is the target of a prediction whose logits are row r of
    /// <paramref name="logits"/> [R, C]. Adds Σ_r Σ_c counts[r, c] · −log softmax(logits_r)[c] into
    /// <paramref name="lossSum"/> [1] and overwrites the logits with their gradient scaled by
    /// <paramref name="gradientScale"/>: scale · (Σ_c counts[r, c] · softmax(logits_r) − counts_r). One-hot rows of counts
    /// give <see cref="SoftmaxCrossEntropy"/>; a row of zeros gives a zero gradient and no loss.
    /// </summary>
    void SoftmaxCrossEntropyCounts(TData logits, int columns, TData counts, T gradientScale, TData lossSum);

    /// <summary>
    /// Fused squared error over the rows of <paramref name="output"/> and <paramref name="target"/> [R, C]: adds Σ ½(o − y)²
    /// into <paramref name="lossSum"/> [1] and overwrites the output with its gradient scaled by
    /// <paramref name="gradientScale"/>: scale · (o − y). <paramref name="rowMask"/> [R], or empty (default) for none,
    /// marks ignored rows as <see cref="SoftmaxCrossEntropy"/>'s targets do: a row r with rowMask[r] &lt; 0 adds no loss,
    /// its output and target are not read and its gradient row is zero.
    /// </summary>
    void SquaredError(TData output, TData target, int columns, TIds rowMask, T gradientScale, TData lossSum);

    /// <summary>data[0], read on the host (waits for a device).</summary>
    T ReadScalar(TData data);

    /// <summary>destination[r] = the index of the largest element of row r of <paramref name="values"/> [R, C], the first on ties (free running's fed-back token).</summary>
    void ArgMaxRows(TData values, int columns, TIds destination);
}
