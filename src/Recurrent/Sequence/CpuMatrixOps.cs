using Recurrent.Kernels.Cpu;

namespace Recurrent.Sequence;

/// <summary>
/// <see cref="IMatrixOps{T}"/> in float32 on the CPU: every product is the native library's GEMM
/// (<see cref="NativeGemm.Sgemm"/>); the pointwise passes are managed.
/// </summary>
internal sealed class CpuMatrixOps : ManagedMatrixOps<float>
{
    /// <summary>The shared instance (the class holds no state).</summary>
    public static new CpuMatrixOps Instance { get; } = new();

    public override string Name => "native-cpu";

    public override void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        NativeGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
