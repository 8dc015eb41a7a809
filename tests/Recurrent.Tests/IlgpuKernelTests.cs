using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Tests;

/// <summary>
/// The ILGPU kernels that are not cell steps (those are tested through the backend tests) against
/// plain loops. One body; a derived fixture per accelerator shares one context and accelerator for all its tests.
/// </summary>
public abstract class IlgpuKernelTests(IlgpuDevice device)
{
    private IlgpuAccelerator? _gpu;

    /// <summary>The accelerator of this fixture, opened once.</summary>
    protected IlgpuAccelerator Gpu => _gpu ?? throw new InvalidOperationException("fixture not set up");

    [OneTimeSetUp]
    public void OpenAccelerator() => _gpu = IlgpuFixtures.OpenOrIgnore(device);

    [OneTimeTearDown]
    public void CloseAccelerator() => _gpu?.Dispose();

    private static IEnumerable<TestCaseData> GemmShapes()
    {
        // M<K and M>K, sizes not multiples of any tile (4 on the CPU accelerator, 16 on GPUs), K = 0 and 1.
        int[][] sizes = [[1, 1, 1], [3, 5, 7], [7, 3, 17], [17, 33, 2], [2, 9, 65], [5, 4, 0]];
        foreach (var provider in new[] { GemmProvider.Tiled, GemmProvider.Simple, GemmProvider.Auto })
            foreach (var s in sizes)
                foreach (bool ta in new[] { false, true })
                    foreach (bool tb in new[] { false, true })
                        yield return new TestCaseData(provider, s[0], s[1], s[2], ta, tb)
                            .SetArgDisplayNames(provider.ToString(), $"M{s[0]}_N{s[1]}_K{s[2]}_{(ta ? "T" : "N")}{(tb ? "T" : "N")}");
    }

    /// <summary>Every provider; Auto is cuBLAS on a CUDA fixture.</summary>
    [TestCaseSource(nameof(GemmShapes))]
    public void Sgemm_MatchesNaiveProduct(GemmProvider provider, int m, int n, int k, bool transA, bool transB)
    {
        var random = new Random(m * 1000 + n * 10 + k);
        int lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
        var a = TestData.UniformSingle(random, Math.Max((transA ? k : m) * lda, 1));
        var b = TestData.UniformSingle(random, Math.Max((transB ? n : k) * ldb, 1));
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
        using var da = Gpu.Accelerator.Allocate1D(a);
        using var db = Gpu.Accelerator.Allocate1D(b);
        using var dc = Gpu.Accelerator.Allocate1D(c);
        using var gemm = new IlgpuGemm(Gpu.Accelerator, Gpu.Kernels, provider);
        gemm.Sgemm(transA, transB, m, n, k, alpha, da.View, lda, db.View, ldb, beta, dc.View, ldc);
        Assertions.AllClose(dc.GetAsArray1D(), expected, Tolerances.Float32, "C");
    }

    [Test]
    public void Sgemm_WithZeroBeta_IgnoresNaNInC([Values(GemmProvider.Tiled, GemmProvider.Simple, GemmProvider.Auto)] GemmProvider provider)
    {
        using var gemm = new IlgpuGemm(Gpu.Accelerator, Gpu.Kernels, provider);
        using var a = Gpu.Accelerator.Allocate1D(new float[] { 1, 2 });
        using var b = Gpu.Accelerator.Allocate1D(new float[] { 3, 4 });
        using var c = Gpu.Accelerator.Allocate1D(new[] { float.NaN });
        gemm.Sgemm(false, false, 1, 1, 2, 1, a.View, 2, b.View, 1, 0, c.View, 1);
        Assert.That(c.GetAsArray1D()[0], Is.EqualTo(11f));
    }

    [Test]
    public void Allocate_MoreThanTheDeviceHas_ThrowsOperationExceptionNamingWhatAndSize()
    {
        const long length = 1L << 40;   // 4 TiB
        var e = Assert.Throws<IlgpuOperationException>(() => Gpu.Allocate(length, "a test buffer").Dispose())!;
        Assert.That(e.Message, Does.Contain("a test buffer").And.Contain(length.ToString()));
    }

    /// <summary>Up to 64 rows in one pass; taller ones through partial sums (130 rows: chunks of 3, the last of 1).</summary>
    [TestCase(1, 1, false)]
    [TestCase(37, 5, true)]
    [TestCase(3, 70, false)]
    [TestCase(64, 3, true)]
    [TestCase(130, 7, true)]
    [TestCase(1000, 2, false)]
    public void ColumnSums_MatchLoop(int rows, int cols, bool accumulate)
    {
        var random = new Random(rows * 100 + cols);
        int ld = cols + 2;
        var matrix = TestData.UniformSingle(random, rows * ld);
        var sums = TestData.UniformSingle(random, cols);
        var expected = new double[cols];
        for (int j = 0; j < cols; j++)
        {
            double sum = accumulate ? sums[j] : 0;
            for (int r = 0; r < rows; r++) sum += matrix[r * ld + j];
            expected[j] = sum;
        }
        using var dm = Gpu.Accelerator.Allocate1D(matrix);
        using var ds = Gpu.Accelerator.Allocate1D(sums);
        using var scratch = Gpu.Accelerator.Allocate1D<float>(IlgpuKernels.ColumnSumScratchLength(cols));
        Gpu.Kernels.ColumnSums(dm.View, rows, cols, ld, ds.View, accumulate, scratch.View);
        Assertions.AllClose(ds.GetAsArray1D(), expected, Tolerances.Float32, "sums");
    }

    /// <summary>Rows named in any order, one twice, and −1 for a zero row; the destination starts as NaN, so every element must be written.</summary>
    [Test]
    public void GatherRows_CopiesTheNamedRows_AndZerosForMinusOne()
    {
        const int columns = 3;
        var source = TestData.UniformSingle(new Random(1), 4 * columns);
        int[] rows = [2, -1, 0, 3, 2];
        using var ds = Gpu.Accelerator.Allocate1D(source);
        using var ids = Gpu.Accelerator.Allocate1D(rows);
        using var destination = Gpu.Accelerator.Allocate1D(Enumerable.Repeat(float.NaN, rows.Length * columns).ToArray());
        Gpu.Kernels.GatherRows(new Index1D(rows.Length * columns), ds.View, ids.View, destination.View, columns);
        var expected = rows.SelectMany(r => Enumerable.Range(0, columns).Select(c => r < 0 ? 0f : source[r * columns + c])).ToArray();
        Assert.That(destination.GetAsArray1D(), Is.EqualTo(expected));
    }

    /// <summary>
    /// Each row's h_{t−1}: row ≥ 0 of a layer output whose rows are 5 apart (its direction's 2 features at offset 1),
    /// or −1 − p for row p of the initial state [N, 2].
    /// </summary>
    [Test]
    public void GatherPreviousHidden_TakesOutputRows_OrInitialRowsForNegativeIds()
    {
        const int hidden = 2, stride = 5;
        var random = new Random(2);
        var outputs = TestData.UniformSingle(random, 4 * stride);
        var initial = TestData.UniformSingle(random, 3 * hidden);
        int[] rows = [-1, -3, 1, 3, -2];
        using var dOutputs = Gpu.Accelerator.Allocate1D(outputs);
        using var dInitial = Gpu.Accelerator.Allocate1D(initial);
        using var ids = Gpu.Accelerator.Allocate1D(rows);
        using var destination = Gpu.Accelerator.Allocate1D(Enumerable.Repeat(float.NaN, rows.Length * hidden).ToArray());
        Gpu.Kernels.GatherPreviousHidden(new Index1D(rows.Length * hidden), dOutputs.View.SubView(1, outputs.Length - 1), stride, dInitial.View, ids.View, destination.View, hidden);
        var expected = rows.SelectMany(r => Enumerable.Range(0, hidden).Select(c => r >= 0 ? outputs[1 + r * stride + c] : initial[(-1 - r) * hidden + c])).ToArray();
        Assert.That(destination.GetAsArray1D(), Is.EqualTo(expected));
    }

    private static IEnumerable<TestCaseData> UnaryCases()
    {
        yield return Unary<UnaryOps.Sigmoid>(x => 1 / (1 + Math.Exp(-x)));
        yield return Unary<UnaryOps.Tanh>(Math.Tanh);
        yield return Unary<UnaryOps.Relu>(x => Math.Max(x, 0));
        yield return Unary<UnaryOps.Copy>(x => x);
        yield return Unary<UnaryOps.OneMinus>(x => 1 - x);
        yield return Unary<UnaryOps.SigmoidDerivative>(y => y * (1 - y));
        yield return Unary<UnaryOps.TanhDerivative>(y => 1 - y * y);
        yield return Unary<UnaryOps.ReluDerivative>(y => y > 0 ? 1 : 0);
    }

    private static TestCaseData Unary<TOp>(Func<double, double> reference) where TOp : struct, IUnaryOp =>
        new TestCaseData(new Action<IlgpuAccelerator, ArrayView<float>, Block, ArrayView<float>, Block, int, int>(
                (gpu, s, sb, d, db, rows, cols) => gpu.Kernels.Unary<TOp>()(new Index2D(cols, rows), s, sb, d, db)), reference)
            .SetArgDisplayNames(typeof(TOp).Name);

    /// <summary>A 3 × 5 block at offset 2 with row stride 7, into a block at offset 1 with stride 6.</summary>
    [TestCaseSource(nameof(UnaryCases))]
    public void Unary_MatchesScalar(Action<IlgpuAccelerator, ArrayView<float>, Block, ArrayView<float>, Block, int, int> launch, Func<double, double> reference)
    {
        const int rows = 3, cols = 5;
        var random = new Random(5);
        var source = TestData.UniformSingle(random, 2 + rows * 7, 3);
        var destination = TestData.UniformSingle(random, 1 + rows * 6);
        var expected = Array.ConvertAll(destination, v => (double)v);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                expected[1 + r * 6 + c] = (float)reference(source[2 + r * 7 + c]);
        using var ds = Gpu.Accelerator.Allocate1D(source);
        using var dd = Gpu.Accelerator.Allocate1D(destination);
        launch(Gpu, ds.View, new Block(2, 7), dd.View, new Block(1, 6), rows, cols);
        Assertions.AllClose(dd.GetAsArray1D(), expected, Tolerances.Float32, "destination");
    }

    private static IEnumerable<TestCaseData> BinaryCases()
    {
        yield return Binary<BinaryOps.Add>((a, b) => a + b);
        yield return Binary<BinaryOps.Subtract>((a, b) => a - b);
        yield return Binary<BinaryOps.Multiply>((a, b) => a * b);
    }

    private static TestCaseData Binary<TOp>(Func<double, double, double> reference) where TOp : struct, IBinaryOp =>
        new TestCaseData(new Action<IlgpuAccelerator, ArrayView<float>, Block, ArrayView<float>, Block, ArrayView<float>, Block, int, int>(
                (gpu, a, ab, b, bb, d, db, rows, cols) => gpu.Kernels.Binary<TOp>()(new Index2D(cols, rows), a, ab, b, bb, d, db)), reference)
            .SetArgDisplayNames(typeof(TOp).Name);

    /// <summary>b is broadcast (stride 0) as a bias is.</summary>
    [TestCaseSource(nameof(BinaryCases))]
    public void Binary_MatchesScalar_WithBroadcastRow(Action<IlgpuAccelerator, ArrayView<float>, Block, ArrayView<float>, Block, ArrayView<float>, Block, int, int> launch,
        Func<double, double, double> reference)
    {
        const int rows = 4, cols = 3;
        var random = new Random(6);
        var a = TestData.UniformSingle(random, rows * 5);
        var b = TestData.UniformSingle(random, 1 + cols);
        var destination = new float[rows * cols];
        var expected = new double[destination.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                expected[r * cols + c] = (float)reference(a[r * 5 + c], b[1 + c]);
        using var da = Gpu.Accelerator.Allocate1D(a);
        using var dbuf = Gpu.Accelerator.Allocate1D(b);
        using var dd = Gpu.Accelerator.Allocate1D(destination);
        launch(Gpu, da.View, new Block(0, 5), dbuf.View, new Block(1, 0), dd.View, new Block(0, cols), rows, cols);
        Assertions.AllClose(dd.GetAsArray1D(), expected, Tolerances.Float32, "destination");
    }
}

/// <summary>The kernels on ILGPU's CPU accelerator: runs everywhere.</summary>
[TestFixture]
public sealed class IlgpuCpuKernelTests() : IlgpuKernelTests(IlgpuDevice.Cpu);

/// <summary>The kernels on a CUDA GPU, cuBLAS included where it loads; ignored with the reason where there is none.</summary>
[TestFixture]
[Category("Cuda")]
public sealed class IlgpuCudaKernelTests() : IlgpuKernelTests(IlgpuDevice.Cuda);

/// <summary>Shared set-up of the ILGPU fixtures.</summary>
internal static class IlgpuFixtures
{
    /// <summary>Opens <paramref name="device"/>, or marks the fixture ignored with the reason when it is not present.</summary>
    public static IlgpuAccelerator OpenOrIgnore(IlgpuDevice device)
    {
        try
        {
            return IlgpuAccelerator.Create(device);
        }
        catch (IlgpuDeviceException e) when (device is IlgpuDevice.Cuda or IlgpuDevice.OpenCL)
        {
            Assert.Ignore($"No {device} device on this machine: {e.Message}");
            throw;
        }
    }
}

/// <summary>A fixture with one <see cref="IlgpuBackend"/> on its device for all its tests; ignored with the reason where the device is absent.</summary>
public abstract class IlgpuBackendFixture(IlgpuDevice device)
{
    /// <summary>The backend, open from the fixture's setup to its teardown.</summary>
    protected IlgpuBackend? Backend { get; private set; }

    [OneTimeSetUp]
    public void OpenBackend()
    {
        IlgpuFixtures.OpenOrIgnore(device).Dispose();
        Backend = new IlgpuBackend(device);
    }

    [OneTimeTearDown]
    public void CloseBackend() => Backend?.Dispose();
}
