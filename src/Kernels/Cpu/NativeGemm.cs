using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>The native library's single-precision matrix product, row-major.</summary>
public static partial class NativeGemm
{
    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C. op(A) is A stored [M,K] with row stride
    /// <paramref name="lda"/> ≥ K, or with <paramref name="transA"/> the transpose of A stored [K,M] (lda ≥ M); likewise B.
    /// With beta = 0, C is overwritten without being read. Buffers must not overlap C.
    /// </summary>
    /// <exception cref="ArgumentException">A size is negative, a stride is below its row length, or a buffer is too short; the message names it.</exception>
    public static unsafe void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"m, n, k: expected non-negative sizes, got {m}, {n}, {k}.");
        CheckOperand(a, nameof(a), lda, nameof(lda), transA ? k : m, transA ? m : k);
        CheckOperand(b, nameof(b), ldb, nameof(ldb), transB ? n : k, transB ? k : n);
        CheckOperand(c, nameof(c), ldc, nameof(ldc), m, n);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            NativeLibrary.Check(rc_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc), "rc_sgemm");
    }

    private static void CheckOperand(ReadOnlySpan<float> buffer, string name, int ld, string ldName, int rows, int cols)
    {
        if (ld < Math.Max(cols, 1))
            throw new ArgumentException($"{ldName}: expected at least {cols} (the row length of {name}), got {ld}.", ldName);
        long needed = rows == 0 ? 0 : (long)(rows - 1) * ld + cols;
        if (buffer.Length < needed)
            throw new ArgumentException($"{name}: a [{rows}, {cols}] matrix with row stride {ld} needs {needed} elements, got {buffer.Length}.", name);
    }

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_sgemm(int transA, int transB, long m, long n, long k, float alpha,
        float* a, long lda, float* b, long ldb, float beta, float* c, long ldc);
}
