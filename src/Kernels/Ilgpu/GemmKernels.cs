using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// The sizes of one row-major product C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, passed to
/// <see cref="GemmKernels.TiledSgemm"/> as one argument. op(A) is A stored [M,K] with row stride Lda, or with
/// TransA the transpose of A stored [K,M]; likewise B.
/// </summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct GemmShape(int m, int n, int k, bool transA, bool transB, float alpha, int lda, int ldb, float beta, int ldc)
{
    /// <summary>Rows of C.</summary>
    public readonly int M = m;
    /// <summary>Columns of C.</summary>
    public readonly int N = n;
    /// <summary>The summed dimension.</summary>
    public readonly int K = k;
    /// <summary>1 when A is stored [K,M] (kernels take no bools: their layout differs between backends).</summary>
    public readonly int TransA = transA ? 1 : 0;
    /// <summary>1 when B is stored [N,K].</summary>
    public readonly int TransB = transB ? 1 : 0;
    /// <summary>Scale of the product.</summary>
    public readonly float Alpha = alpha;
    /// <summary>Row stride of A as stored.</summary>
    public readonly int Lda = lda;
    /// <summary>Row stride of B as stored.</summary>
    public readonly int Ldb = ldb;
    /// <summary>Scale of C's old value; 0 means C is not read (NaN in C does not propagate).</summary>
    public readonly float Beta = beta;
    /// <summary>Row stride of C.</summary>
    public readonly int Ldc = ldc;
}

/// <summary>The matrix-product kernels used where cuBLAS is not.</summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class GemmKernels
{
    /// <summary>
    /// One thread per element of C, launched over Index2D(N, M), no shared memory and no barriers. For ILGPU's CPU
    /// accelerator, where every group thread is an operating-system thread and each barrier a rendezvous of them, this is
    /// many times faster than the tiled kernel; on a GPU it re-reads A and B from memory and is the slower one.
    /// </summary>
    public static void SimpleSgemm(Index2D index, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        int col = index.X, row = index.Y;
        float sum = 0;
        for (int p = 0; p < s.K; p++)
            sum += (s.TransA != 0 ? a[p * s.Lda + row] : a[row * s.Lda + p]) * (s.TransB != 0 ? b[col * s.Ldb + p] : b[p * s.Ldb + col]);
        int at = row * s.Ldc + col;
        c[at] = s.Beta == 0 ? s.Alpha * sum : s.Alpha * sum + s.Beta * c[at];
    }

    /// <summary>
    /// Shared-memory tiled SGEMM. Launch with square groups of tile × tile threads, a grid of
    /// ⌈N/tile⌉ × ⌈M/tile⌉ groups and dynamic shared memory for 2 · tile² floats. Each group walks
    /// ⌈K/tile⌉ tiles of the summed dimension (not of M: ILGPU's sample bounds this loop by M and is
    /// wrong whenever M &lt; K), loading zeros past every edge so that any M, N, K works.
    /// </summary>
    public static void TiledSgemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        int tile = Group.DimX;
        var shared = SharedMemory.GetDynamic<float>();
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * tile + ty, col = Grid.IdxX * tile + tx;
        int bTile = tile * tile;
        float sum = 0;
        for (int p0 = 0; p0 < s.K; p0 += tile)
        {
            int pa = p0 + tx, pb = p0 + ty;
            float av = 0, bv = 0;
            if (row < s.M && pa < s.K) av = s.TransA != 0 ? a[pa * s.Lda + row] : a[row * s.Lda + pa];
            if (pb < s.K && col < s.N) bv = s.TransB != 0 ? b[col * s.Ldb + pb] : b[pb * s.Ldb + col];
            shared[ty * tile + tx] = av;
            shared[bTile + ty * tile + tx] = bv;
            Group.Barrier();
            for (int p = 0; p < tile; p++)
                sum += shared[ty * tile + p] * shared[bTile + p * tile + tx];
            Group.Barrier();
        }
        if (row < s.M && col < s.N)
        {
            int index = row * s.Ldc + col;
            c[index] = s.Beta == 0 ? s.Alpha * sum : s.Alpha * sum + s.Beta * c[index];
        }
    }
}
