using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>Which implementation <see cref="IlgpuGemm"/> runs.</summary>
public enum GemmProvider
{
    /// <summary>The default: cuBLAS on CUDA where it loads, <see cref="Simple"/> on ILGPU's CPU accelerator, else <see cref="Tiled"/>.</summary>
    Auto,
    /// <summary><see cref="GemmKernels.TiledSgemm"/>: shared-memory tiles, for GPUs without cuBLAS.</summary>
    Tiled,
    /// <summary><see cref="GemmKernels.SimpleSgemm"/>: one thread per element, no barriers, for ILGPU's CPU accelerator.</summary>
    Simple,
    /// <summary>cuBLAS through ILGPU.Algorithms' bindings: CUDA, where libcublas loads.</summary>
    CuBlas,
}

/// <summary>
/// Row-major SGEMM on device buffers: cuBLAS on CUDA when the library loads, the barrier-free simple kernel on ILGPU's
/// CPU accelerator, else the tiled kernel. ILGPU.Algorithms
/// looks for <c>libcublas.so.12</c>, then <c>.11</c>, then <c>.10</c> (on Windows <c>cublas64_12.dll</c> …) on the
/// loader's path; pip's PyTorch ships one in <c>site-packages/nvidia/cublas/lib</c>.
/// </summary>
/// <remarks>Thread-safety: the cuBLAS handle is locked per call, but products are queued on the accelerator's one stream, so its user serialises them. Lifetime: owned by its <see cref="IlgpuAccelerator"/>; <see cref="Dispose"/> frees the cuBLAS handle (the accelerator stays open).</remarks>
public sealed class IlgpuGemm : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly IlgpuKernels _kernels;
    private readonly CuBlas? _cuBlas;
    private readonly int _tile;

    /// <summary>
    /// Uses <paramref name="provider"/>; <see cref="GemmProvider.Auto"/> picks as the class summary says. Asking for cuBLAS
    /// where it does not load falls back to the tiled kernel and says why in <see cref="CuBlasFailure"/>.
    /// </summary>
    public IlgpuGemm(Accelerator accelerator, IlgpuKernels kernels, GemmProvider provider = GemmProvider.Auto)
    {
        _accelerator = accelerator;
        _kernels = kernels;
        // Square tiles of the largest side whose threads fit one group, at most 16 (256 threads): 4 on ILGPU's CPU
        // accelerator, whose groups hold 16 threads.
        _tile = Math.Min(16, (int)Math.Sqrt(accelerator.MaxNumThreadsPerGroup));
        if (provider == GemmProvider.Auto)
            provider = accelerator is CudaAccelerator ? GemmProvider.CuBlas : accelerator is CPUAccelerator ? GemmProvider.Simple : GemmProvider.Tiled;
        Provider = provider == GemmProvider.Simple ? GemmProvider.Simple : GemmProvider.Tiled;
        if (provider == GemmProvider.CuBlas && accelerator is not CudaAccelerator)
            CuBlasFailure = "cuBLAS needs a CUDA accelerator.";
        if (provider == GemmProvider.CuBlas && accelerator is CudaAccelerator cuda)
        {
            try
            {
                _cuBlas = new CuBlas(cuda) { Stream = (CudaStream)cuda.DefaultStream };
                Provider = GemmProvider.CuBlas;
                Description = $"cuBLAS {_cuBlas.Version}";
            }
            catch (Exception e)
            {
                // Any failure (library missing, wrong version, no handle) leaves the tiled kernel in charge.
                _cuBlas = null;
                CuBlasFailure = e.GetBaseException().Message;
            }
        }
        Description ??= Provider == GemmProvider.Simple ? "simple kernel" : $"tiled {_tile}x{_tile} kernel";
    }

    /// <summary>The provider in use: <see cref="GemmProvider.CuBlas"/>, <see cref="GemmProvider.Tiled"/> or <see cref="GemmProvider.Simple"/>.</summary>
    public GemmProvider Provider { get; }

    /// <summary>The provider in words, such as <c>cuBLAS V12</c> or <c>tiled 16x16 kernel</c>.</summary>
    public string Description { get; }

    /// <summary>Why cuBLAS was not used on a CUDA accelerator, or null.</summary>
    public string? CuBlasFailure { get; }

    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, row-major. op(A) is A stored [M,K] with row stride
    /// <paramref name="lda"/>, or with <paramref name="transA"/> the transpose of A stored [K,M]; likewise B. Views start
    /// at element (0, 0). With beta = 0, C is not read. Enqueued on the accelerator's default stream.
    /// </summary>
    public void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<float> a, int lda,
        ArrayView<float> b, int ldb, float beta, ArrayView<float> c, int ldc)
    {
        if (m == 0 || n == 0) return;
        if (_cuBlas is not null)
        {
            // cuBLAS is column-major: a row-major [r, c] matrix is its column-major transpose, so compute
            // Cᵀ = op(B)ᵀ · op(A)ᵀ, which swaps the operands and M with N. The handle is shared by every user of the
            // accelerator (a backend and the sequence models' ops, possibly on other threads), and ILGPU sets its
            // pointer mode and stream per call: one call at a time.
            lock (_cuBlas) _cuBlas.Gemm(transB ? CuBlasOperation.Transpose : CuBlasOperation.NonTranspose,
                transA ? CuBlasOperation.Transpose : CuBlasOperation.NonTranspose,
                n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
            return;
        }
        var shape = new GemmShape(m, n, k, transA, transB, alpha, lda, ldb, beta, ldc);
        if (Provider == GemmProvider.Simple)
        {
            _kernels.SimpleSgemm(new Index2D(n, m), a, b, c, shape);
            return;
        }
        var config = new KernelConfig(
            new Index2D((n + _tile - 1) / _tile, (m + _tile - 1) / _tile),
            new Index2D(_tile, _tile),
            SharedMemoryConfig.RequestDynamic<float>(2 * _tile * _tile));
        _kernels.TiledSgemm(config, a, b, c, shape);
    }

    /// <inheritdoc />
    public void Dispose() => _cuBlas?.Dispose();
}
