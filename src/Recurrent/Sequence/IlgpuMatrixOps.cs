using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T, TData, TIds}"/> in float32 on an ILGPU accelerator, over device views. Products are
/// <see cref="IlgpuGemm"/> (cuBLAS on CUDA where it loads, else a kernel); the activation is the library's elementwise
/// kernel, column sums its reduction kernels, the rest <see cref="SequenceKernels"/>. Everything is enqueued on the
/// accelerator's default stream, in order; the copies (ILGPU's synchronous ones) and <see cref="ReadScalar"/> (the loss,
/// once per step) wait for the device. Owns its workspaces (freed by <see cref="Dispose"/>), not the accelerator.
/// </summary>
/// <remarks>
/// Thread-safety: not safe; a training step is a sequence of these operations over this instance's workspaces, so one model
/// (which owns one instance) must run one call at a time; its model is what has to serialise them. Instances of
/// different models may run on different threads over one accelerator: kernel launches are, ILGPU's CPU accelerator
/// runs one at a time, the shared cuBLAS handle takes one call at a time (<see cref="IlgpuGemm"/>), and the
/// <see cref="IlgpuBackend"/> a model's stack runs on serialises its own calls.
/// </remarks>
internal sealed class IlgpuMatrixOps(IlgpuAccelerator gpu) : IMatrixOps<float, ArrayView<float>, ArrayView<int>>, IDisposable
{
    /// <summary>Every buffer this instance allocated, by the raw buffer its views point into, so a view can free it.</summary>
    private readonly Dictionary<MemoryBuffer, IDisposable> _owned = [];
    private ArrayView<float> _sumScratch, _partials;
    private float[] _hostGradient = [];
    private readonly float[] _scalar = new float[1];
    private bool _disposed;

    public string Name => $"ilgpu-{gpu.ShortName}";

    public ArrayView<float> Slice(ArrayView<float> data, int offset, int length) => data.SubView(offset, length);

    public ArrayView<int> SliceIds(ArrayView<int> ids, int offset, int length) => ids.SubView(offset, length);

    public ArrayView<float> Workspace(ref ArrayView<float> buffer, int length)
    {
        if (buffer.Length < length)
        {
            Free(buffer);
            // Forget the freed buffer before allocating: if allocation fails, a later, smaller request must not reuse it.
            buffer = default;
            buffer = Own(gpu.Allocate(length, "sequence-model workspace"));
        }
        return buffer.SubView(0, length);
    }

    private ArrayView<int> IdWorkspace(ref ArrayView<int> buffer, int length)
    {
        if (buffer.Length < length)
        {
            Free(buffer);
            buffer = default;
            try
            {
                buffer = Own(gpu.Accelerator.Allocate1D<int>(length));
            }
            catch (Exception e)
            {
                throw new IlgpuOperationException($"{Name}: allocating token ids ({length} ints) failed on {gpu.Accelerator.Name}: {e.GetBaseException().Message}", e);
            }
        }
        return buffer.SubView(0, length);
    }

    private ArrayView<T> Own<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _owned[((IArrayView)buffer.View.BaseView).Buffer] = buffer;
        return buffer.View;
    }

    private void Free<T>(ArrayView<T> view) where T : unmanaged
    {
        if (view.IsValid && _owned.Remove(((IArrayView)view).Buffer, out var buffer)) buffer.Dispose();
    }

    public void Clear(ArrayView<float> data)
    {
        if (data.Length > 0) data.MemSetToZero();
    }

    public ArrayView<float> Upload(ReadOnlyMemory<float> source, ref ArrayView<float> stage)
    {
        if (source.IsEmpty) return default;
        var view = Workspace(ref stage, source.Length);
        view.CopyFromCPU(ref MemoryMarshal.GetReference(source.Span), source.Length);
        return view;
    }

    public ArrayView<int> UploadIds(ReadOnlyMemory<int> source, ref ArrayView<int> stage)
    {
        if (source.IsEmpty) return default;
        var view = IdWorkspace(ref stage, source.Length);
        view.CopyFromCPU(ref MemoryMarshal.GetReference(source.Span), source.Length);
        return view;
    }

    public ArrayView<float> Destination(Memory<float> destination, ref ArrayView<float> stage) =>
        destination.IsEmpty ? default : Workspace(ref stage, destination.Length);

    public void Download(ArrayView<float> source, Memory<float> destination)
    {
        if (!destination.IsEmpty) source.SubView(0, destination.Length).CopyToCPU(ref MemoryMarshal.GetReference(destination.Span), destination.Length);
    }

    public void DownloadIds(ArrayView<int> source, Memory<int> destination)
    {
        if (!destination.IsEmpty) source.SubView(0, destination.Length).CopyToCPU(ref MemoryMarshal.GetReference(destination.Span), destination.Length);
    }

    public ArrayView<float> GradientAccumulator(Memory<float> hostGradient, ref ArrayView<float> stage)
    {
        if (hostGradient.IsEmpty) return default;
        var view = Workspace(ref stage, hostGradient.Length);
        view.MemSetToZero();
        return view;
    }

    public void AddToHost(ArrayView<float> gradient, Memory<float> hostGradient)
    {
        if (hostGradient.IsEmpty) return;
        if (_hostGradient.Length < hostGradient.Length) _hostGradient = new float[hostGradient.Length];
        var downloaded = _hostGradient.AsMemory(0, hostGradient.Length);
        Download(gradient, downloaded);
        var destination = hostGradient.Span;
        var source = downloaded.Span;
        for (int i = 0; i < destination.Length; i++) destination[i] += source[i];
    }

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<float> a, int lda, ArrayView<float> b, int ldb, float beta, ArrayView<float> c, int ldc) =>
        gpu.Gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    public void BroadcastRows(ArrayView<float> row, ArrayView<float> destination) =>
        gpu.Kernels.BroadcastRows(new Index1D(destination.IntLength), row, destination, row.IntLength);

    public void GatherRowsAdd(ArrayView<float> table, int columns, ArrayView<int> ids, ArrayView<float> destination) =>
        gpu.Kernels.GatherRowsAdd(new Index1D(ids.IntLength * columns), table, ids, destination, columns);

    public void ScatterRowsAdd(ArrayView<float> source, int columns, ArrayView<int> ids, ArrayView<float> table) =>
        gpu.Kernels.ScatterRowsAdd(new Index1D(ids.IntLength * columns), source, ids, table, columns);

    public void Activate(RnnActivation activation, ArrayView<float> values)
    {
        var kernel = activation == RnnActivation.Tanh ? gpu.Kernels.Unary<UnaryOps.Tanh>() : gpu.Kernels.Unary<UnaryOps.Relu>();
        kernel(new Index2D(values.IntLength, 1), values, new Block(0, 0), values, new Block(0, 0));
    }

    public void ActivationBackward(RnnActivation activation, ArrayView<float> output, ArrayView<float> gradient, int columns, ArrayView<float> biasGradient)
    {
        int rows = gradient.IntLength / columns;
        int rowsPerChunk = (rows + IlgpuKernels.ColumnSumChunks - 1) / IlgpuKernels.ColumnSumChunks;
        int chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        var partial = SumScratch(columns);
        var shape = new ColumnSumShape(rows, columns, columns, false, rowsPerChunk);
        var kernel = activation == RnnActivation.Tanh
            ? gpu.Kernels.ActivationBackwardPartialSums<TanhActivation>()
            : gpu.Kernels.ActivationBackwardPartialSums<ReluActivation>();
        kernel(new Index1D(chunks * columns), output, gradient, partial, shape);
        gpu.Kernels.ColumnSumsKernel(ColumnSumConfig(columns), partial, biasGradient, new ColumnSumShape(chunks, columns, columns, accumulate: true));
    }

    public void AddColumnSums(ArrayView<float> source, int columns, ArrayView<float> destination) =>
        gpu.Kernels.ColumnSums(source, source.IntLength / columns, columns, columns, destination, accumulate: true, SumScratch(columns));

    public void SoftmaxCrossEntropy(ArrayView<float> logits, int columns, ArrayView<int> targets, float gradientScale, ArrayView<float> lossSum)
    {
        int rows = targets.IntLength;
        var rowLoss = Workspace(ref _partials, rows);
        gpu.Kernels.SoftmaxCrossEntropyRows(new KernelConfig(new Index1D(rows), new Index1D(GroupSize)), logits, targets, rowLoss, columns, gradientScale);
        AddSum(rowLoss, lossSum);
    }

    public void SoftmaxCrossEntropyCounts(ArrayView<float> logits, int columns, ArrayView<float> counts, float gradientScale, ArrayView<float> lossSum)
    {
        int rows = logits.IntLength / columns;
        var rowLoss = Workspace(ref _partials, rows);
        gpu.Kernels.SoftmaxCrossEntropyCountsRows(new KernelConfig(new Index1D(rows), new Index1D(GroupSize)), logits, counts, rowLoss, columns, gradientScale);
        AddSum(rowLoss, lossSum);
    }

    public void SquaredError(ArrayView<float> output, ArrayView<float> target, int columns, ArrayView<int> rowMask, float gradientScale, ArrayView<float> lossSum)
    {
        int length = output.IntLength;
        // Enough threads to fill a GPU, each with a coalesced stride; their partial sums are then one column sum.
        int threads = Math.Min(length, 64 * 1024);
        var partial = Workspace(ref _partials, threads);
        if (rowMask.IsValid && rowMask.Length > 0)
            gpu.Kernels.SquaredErrorMaskedPartials(new Index1D(threads), output, target, rowMask, partial, length, threads, columns, gradientScale);
        else
            gpu.Kernels.SquaredErrorPartials(new Index1D(threads), output, target, partial, length, threads, gradientScale);
        AddSum(partial, lossSum);
    }

    public float ReadScalar(ArrayView<float> data)
    {
        Download(data, _scalar);
        return _scalar[0];
    }

    public void ArgMaxRows(ArrayView<float> values, int columns, ArrayView<int> destination) =>
        gpu.Kernels.ArgMaxRows(new Index1D(destination.IntLength), values, destination, columns);

    private int GroupSize => Math.Min(256, gpu.Accelerator.MaxNumThreadsPerGroup);

    private KernelConfig ColumnSumConfig(int columns) => new(new Index1D(columns), new Index1D(GroupSize));

    private ArrayView<float> SumScratch(int columns) => Workspace(ref _sumScratch, (int)IlgpuKernels.ColumnSumScratchLength(columns));

    /// <summary>sum[0] += Σ values, as a one-column sum on the device.</summary>
    private void AddSum(ArrayView<float> values, ArrayView<float> sum) =>
        gpu.Kernels.ColumnSums(values, values.IntLength, 1, 1, sum, accumulate: true, SumScratch(1));

    /// <summary>Frees every workspace; the accelerator stays open (its owner disposes it).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var buffer in _owned.Values) buffer.Dispose();
        _owned.Clear();
    }
}
