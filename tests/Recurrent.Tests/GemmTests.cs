using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

[TestFixture]
public class GemmTests
{
    /// <summary>
    /// M, N, K: tiny, not multiples of any tile (AVX-512 14x32, AVX2 6x16, portable 6x8), M &lt; K and M &gt; K, few
    /// rows with many columns (the per-step split over columns), large enough for the thread pool to split the work,
    /// and above the 512 K block and twice the 336-row M block (several blocks per thread with 2 threads).
    /// </summary>
    private static readonly int[][] Sizes =
    [
        [1, 1, 1], [3, 5, 7], [7, 3, 17], [17, 33, 2], [2, 9, 65], [33, 65, 129], [65, 129, 33], [17, 300, 65],
        [129, 17, 300], [257, 300, 129], [700, 35, 515],
    ];

    /// <summary>Every product runs with each of these (ISA, threads); the widest ISA is what Auto picks here.</summary>
    private static readonly (NativeIsa Isa, int Threads)[] Configurations =
    [
        (NativeIsa.Auto, 1), (NativeIsa.Auto, 2), (NativeIsa.Avx2, 1), (NativeIsa.Avx2, 2), (NativeIsa.Portable, 1), (NativeIsa.Portable, 2),
    ];

    private static IEnumerable<TestCaseData> Shapes(string name)
    {
        foreach (var s in Sizes)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    yield return new TestCaseData(s[0], s[1], s[2], ta, tb).SetName($"{name}_M{s[0]}_N{s[1]}_K{s[2]}_{(ta ? "T" : "N")}{(tb ? "T" : "N")}");
    }

    private static IEnumerable<TestCaseData> SgemmShapes() => Shapes(nameof(Sgemm_MatchesNaiveProduct));
    private static IEnumerable<TestCaseData> PackedShapes() => Shapes(nameof(SgemmPacked_MatchesNaiveProduct));

    /// <summary>Operands with row strides larger than their rows, so a kernel that ignores a stride fails.</summary>
    private sealed class Operands
    {
        public readonly int M, N, K, Lda, Ldb, Ldc;
        public readonly bool TransA, TransB;
        public readonly float[] A, B, C0;
        private readonly double[] _product;

        public Operands(int m, int n, int k, bool transA, bool transB)
        {
            (M, N, K, TransA, TransB) = (m, n, k, transA, transB);
            var random = new Random(m * 1000 + n * 10 + k + (transA ? 7 : 0) + (transB ? 13 : 0));
            (Lda, Ldb, Ldc) = ((transA ? m : k) + 1, (transB ? k : n) + 2, n + 3);
            A = TestData.UniformSingle(random, (transA ? k : m) * Lda);
            B = TestData.UniformSingle(random, (transB ? n : k) * Ldb);
            C0 = TestData.UniformSingle(random, m * Ldc);
            _product = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++)
                        sum += (double)(transA ? A[p * Lda + i] : A[i * Lda + p]) * (transB ? B[j * Ldb + p] : B[p * Ldb + j]);
                    _product[i * n + j] = sum;
                }
        }

        /// <summary>C before the product: C0, or NaN everywhere when beta = 0 (which must not read C).</summary>
        public float[] InitialC(float beta) => beta == 0 ? Enumerable.Repeat(float.NaN, C0.Length).ToArray() : (float[])C0.Clone();

        /// <summary>The expected C in double; padding between rows keeps its initial value.</summary>
        public double[] Expected(float alpha, float beta)
        {
            var initial = InitialC(beta);
            var expected = Array.ConvertAll(initial, v => (double)v);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    expected[i * Ldc + j] = alpha * _product[i * N + j] + (beta == 0 ? 0 : beta * (double)initial[i * Ldc + j]);
            return expected;
        }
    }

    /// <summary>Runs product(c) under every configuration and beta (0 with NaN in C, and -0.5) against the double product.</summary>
    private static void CheckEveryConfiguration(Operands operands, Action<float, float, float[]> product)
    {
        const float alpha = 1.5f;
        try
        {
            foreach (var (isa, threads) in Configurations)
            {
                NativeLibrary.Isa = isa;
                NativeLibrary.ThreadCount = threads;
                foreach (float beta in new[] { 0f, -0.5f })
                {
                    var c = operands.InitialC(beta);
                    product(alpha, beta, c);
                    Assertions.AllClose(c, operands.Expected(alpha, beta), Tolerances.Float32, $"C ({isa}, {threads} threads, beta {beta})");
                }
            }
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
            NativeLibrary.ThreadCount = 0;
        }
    }

    [TestCaseSource(nameof(SgemmShapes))]
    public void Sgemm_MatchesNaiveProduct(int m, int n, int k, bool transA, bool transB)
    {
        var o = new Operands(m, n, k, transA, transB);
        CheckEveryConfiguration(o, (alpha, beta, c) => NativeGemm.Sgemm(transA, transB, m, n, k, alpha, o.A, o.Lda, o.B, o.Ldb, beta, c, o.Ldc));
    }

    [TestCaseSource(nameof(PackedShapes))]
    public void SgemmPacked_MatchesNaiveProduct(int m, int n, int k, bool transA, bool transB)
    {
        var o = new Operands(m, n, k, transA, transB);
        // Packed once under the widest ISA and reused by every configuration, as a weight matrix is across steps.
        using var packed = NativeGemm.PackB(transB, k, n, o.B, o.Ldb);
        Assert.That((packed.Rows, packed.Cols), Is.EqualTo((k, n)));
        CheckEveryConfiguration(o, (alpha, beta, c) => NativeGemm.SgemmPacked(transA, m, alpha, o.A, o.Lda, packed, beta, c, o.Ldc));
    }

    [Test]
    public void Sgemm_WithZeroK_ScalesC()
    {
        float[] c = [2, float.NaN];
        NativeGemm.Sgemm(false, false, 1, 1, 0, 1, [], 1, [], 1, 0.5f, c, 2);
        Assert.That(c, Is.EqualTo(new[] { 1f, float.NaN }));
        NativeGemm.Sgemm(false, false, 1, 2, 0, 1, [], 1, [], 2, 0, c, 2);
        Assert.That(c, Is.EqualTo(new[] { 0f, 0f }));
    }

    [Test]
    public void Sgemm_FromSeveralManagedThreadsAtOnce_MatchesNaiveProduct()
    {
        var o = new Operands(65, 129, 33, false, true);
        var expected = o.Expected(1, 0);
        var results = new float[8][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var c = o.InitialC(0);
            for (int repeat = 0; repeat < 10; repeat++)
                NativeGemm.Sgemm(false, true, o.M, o.N, o.K, 1, o.A, o.Lda, o.B, o.Ldb, 0, c, o.Ldc);
            results[i] = c;
        });
        foreach (var c in results) Assertions.AllClose(c, expected, Tolerances.Float32, "C");
    }

    [Test]
    public void ThreadCount_CanBeSetAndRestored()
    {
        int initial = NativeLibrary.ThreadCount;
        try
        {
            NativeLibrary.ThreadCount = 3;
            Assert.That(NativeLibrary.ThreadCount, Is.EqualTo(3));
            NativeLibrary.ThreadCount = 1;
            Assert.That(NativeLibrary.ThreadCount, Is.EqualTo(1));
        }
        finally
        {
            NativeLibrary.ThreadCount = 0;
        }
        Assert.That(NativeLibrary.ThreadCount, Is.EqualTo(initial).And.GreaterThanOrEqualTo(1));
    }

    [Test]
    public void ThreadCount_RejectsAbsurdCountWithNativeMessage()
    {
        var e = Assert.Throws<NativeException>(() => NativeLibrary.ThreadCount = 100_000)!;
        Assert.That(e.Message, Does.Contain("got 100000"));
    }

    [Test]
    public void Sgemm_RejectsShortBufferNamingIt()
    {
        var e = Assert.Throws<ArgumentException>(() => NativeGemm.Sgemm(false, false, 2, 2, 2, 1, new float[3], 2, new float[4], 2, 0, new float[4], 2))!;
        Assert.That(e.ParamName, Is.EqualTo("a"));
        Assert.That(e.Message, Does.Contain("[2, 2]"));
    }

    [Test]
    public void SgemmPacked_RejectsShortCAndDisposedOperand()
    {
        var packed = NativeGemm.PackB(false, 2, 3, new float[6], 3);
        var e = Assert.Throws<ArgumentException>(() => NativeGemm.SgemmPacked(false, 2, 1, new float[4], 2, packed, 0, new float[5], 3))!;
        Assert.That(e.ParamName, Is.EqualTo("c"));
        Assert.That(e.Message, Does.Contain("[2, 3]"));
        packed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => NativeGemm.SgemmPacked(false, 2, 1, new float[4], 2, packed, 0, new float[6], 3));
    }
}
