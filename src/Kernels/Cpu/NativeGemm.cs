using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>
/// The native library's single-precision matrix product, row-major: cache-blocked, packed, with AVX-512, AVX2 or
/// portable micro-kernels chosen by <see cref="NativeLibrary.Isa"/>, on <see cref="NativeLibrary.ThreadCount"/> threads.
/// </summary>
/// <remarks>Thread-safety: safe; the native library serves concurrent calls (each call writes only its own C). Lifetime: the class holds nothing; a <see cref="PackedMatrix"/> it makes is the caller's to dispose.</remarks>
public static partial class NativeGemm
{
    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C. op(A) is A stored [M,K] with row stride
    /// <paramref name="lda"/> ≥ K, or with <paramref name="transA"/> the transpose of A stored [K,M] (lda ≥ M); likewise B.
    /// With beta = 0, C is overwritten without being read, and with alpha = 0, A and B are not read (the BLAS rules: a NaN
    /// there does not reach C). Buffers must not overlap C.
    /// </summary>
    /// <exception cref="ArgumentException">A size is negative, a stride is below its row length, a buffer is too short, or A or B
    /// overlaps C; the message names it.</exception>
    public static unsafe void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        CheckSizes(m, n, k);
        CheckOperand(a, nameof(a), lda, nameof(lda), transA ? k : m, transA ? m : k);
        CheckOperand(b, nameof(b), ldb, nameof(ldb), transB ? n : k, transB ? k : n);
        CheckOperand(c, nameof(c), ldc, nameof(ldc), m, n);
        CheckDisjoint(a, nameof(a), c);
        CheckDisjoint(b, nameof(b), c);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            NativeLibrary.Check(rc_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc), "rc_sgemm");
    }

    /// <summary>
    /// Packs op(B)[K,N] once (B stored [K,N] with row stride <paramref name="ldb"/> ≥ N, or with <paramref name="transB"/>
    /// its transpose stored [N,K], ldb ≥ K) into the micro-kernels' panel layout, for repeated products with
    /// <see cref="SgemmPacked"/>. The result copies B: later changes to <paramref name="b"/> do not affect it.
    /// </summary>
    /// <exception cref="ArgumentException">A size is negative, the stride is below the row length, or the buffer is too short.</exception>
    public static unsafe PackedMatrix PackB(bool transB, int k, int n, ReadOnlySpan<float> b, int ldb)
    {
        CheckSizes(0, n, k);
        CheckOperand(b, nameof(b), ldb, nameof(ldb), transB ? n : k, transB ? k : n);
        nint handle;
        fixed (float* pb = b)
            NativeLibrary.Check(rc_pack_b(transB ? 1 : 0, k, n, pb, ldb, &handle), "rc_pack_b");
        return new PackedMatrix(handle, k, n);
    }

    /// <summary>
    /// C[M,N] = alpha · op(A)[M,K] · B + beta · C with B[K,N] packed by <see cref="PackB"/>; op(A) as in
    /// <see cref="Sgemm"/>. With beta = 0, C is not read. <paramref name="b"/> may be shared by threads.
    /// </summary>
    /// <exception cref="ArgumentException">A size is negative, a stride is below its row length, or a buffer is too short.</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="b"/> was disposed.</exception>
    public static unsafe void SgemmPacked(bool transA, int m, float alpha, ReadOnlySpan<float> a, int lda, PackedMatrix b,
        float beta, Span<float> c, int ldc)
    {
        ArgumentNullException.ThrowIfNull(b);
        ObjectDisposedException.ThrowIf(b.IsClosed, b);
        CheckSizes(m, b.Cols, b.Rows);
        CheckOperand(a, nameof(a), lda, nameof(lda), transA ? b.Rows : m, transA ? m : b.Rows);
        CheckOperand(c, nameof(c), ldc, nameof(ldc), m, b.Cols);
        CheckDisjoint(a, nameof(a), c);
        if (m == 0 || b.Cols == 0) return;
        bool added = false;
        try
        {
            b.DangerousAddRef(ref added);
            fixed (float* pa = a, pc = c)
                NativeLibrary.Check(rc_sgemm_packed(transA ? 1 : 0, m, alpha, pa, lda, b.DangerousGetHandle(), beta, pc, ldc), "rc_sgemm_packed");
        }
        finally
        {
            if (added) b.DangerousRelease();
        }
    }

    /// <summary>The kernels read A and B while writing C: an overlap would read values already overwritten.</summary>
    private static void CheckDisjoint(ReadOnlySpan<float> operand, string name, ReadOnlySpan<float> c)
    {
        if (!operand.IsEmpty && !c.IsEmpty && operand.Overlaps(c))
            throw new ArgumentException($"{name}: overlaps c; the product is written into c while {name} is read, so they must be separate buffers.", name);
    }

    private static void CheckSizes(int m, int n, int k)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"m, n, k: expected non-negative sizes, got {m}, {n}, {k}.");
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

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_pack_b(int transB, long k, long n, float* b, long ldb, nint* packed);

    [LibraryImport(NativeLibrary.Name)]
    internal static partial void rc_packed_b_free(nint packed);

    [LibraryImport(NativeLibrary.Name)]
    private static unsafe partial int rc_sgemm_packed(int transA, long m, float alpha, float* a, long lda, nint packed,
        float beta, float* c, long ldc);
}

/// <summary>
/// A right-hand side op(B)[K,N] packed by <see cref="NativeGemm.PackB"/> into native memory, for products that reuse
/// it (a weight matrix at every time step). Dispose it to free that memory.
/// </summary>
/// <remarks>Thread-safety: read-only after packing, so several threads may multiply by it at once; do not dispose it while a product uses it. Lifetime: owned by the caller of <see cref="NativeGemm.PackB"/>; <see cref="SafeHandle.Dispose()"/> (or the finalizer) frees the native memory, and a disposed matrix cannot be used.</remarks>
public sealed class PackedMatrix : SafeHandle
{
    internal PackedMatrix(nint handle, int rows, int cols) : base(0, ownsHandle: true)
    {
        SetHandle(handle);
        Rows = rows;
        Cols = cols;
    }

    /// <summary>K, the rows of op(B).</summary>
    public int Rows { get; }

    /// <summary>N, the columns of op(B).</summary>
    public int Cols { get; }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        NativeGemm.rc_packed_b_free(handle);
        return true;
    }
}
