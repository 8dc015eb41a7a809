using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

[TestFixture]
public class GemmTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        int[][] sizes = [[1, 1, 1], [3, 5, 7], [7, 3, 17], [17, 33, 2], [2, 9, 65]]; // M<K and M>K both
        foreach (var s in sizes)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    yield return new TestCaseData(s[0], s[1], s[2], ta, tb).SetName($"Sgemm_MatchesNaiveProduct_M{s[0]}_N{s[1]}_K{s[2]}_{(ta ? "T" : "N")}{(tb ? "T" : "N")}");
    }

    [TestCaseSource(nameof(Shapes))]
    public void Sgemm_MatchesNaiveProduct(int m, int n, int k, bool transA, bool transB)
    {
        var random = new Random(m * 1000 + n * 10 + k);
        int lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
        var a = TestData.UniformSingle(random, (transA ? k : m) * lda);
        var b = TestData.UniformSingle(random, (transB ? n : k) * ldb);
        var c = TestData.UniformSingle(random, m * ldc);
        var expected = new double[c.Length];
        for (int i = 0; i < c.Length; i++) expected[i] = c[i];
        const float alpha = 1.5f, beta = -0.5f;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (double)(transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                expected[i * ldc + j] = alpha * sum + beta * c[i * ldc + j];
            }
        NativeGemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        Assertions.AllClose(c, expected, Tolerances.Float32, "C");
    }

    [Test]
    public void Sgemm_WithZeroBeta_IgnoresNaNInC()
    {
        float[] a = [1, 2], b = [3, 4], c = [float.NaN];
        NativeGemm.Sgemm(false, false, 1, 1, 2, 1, a, 2, b, 1, 0, c, 1);
        Assert.That(c[0], Is.EqualTo(11f));
    }

    [Test]
    public void Sgemm_RejectsShortBufferNamingIt()
    {
        var e = Assert.Throws<ArgumentException>(() => NativeGemm.Sgemm(false, false, 2, 2, 2, 1, new float[3], 2, new float[4], 2, 0, new float[4], 2))!;
        Assert.That(e.ParamName, Is.EqualTo("a"));
        Assert.That(e.Message, Does.Contain("[2, 2]"));
    }
}
