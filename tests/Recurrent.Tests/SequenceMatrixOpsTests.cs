using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// Every float32 implementation of the sequence models' matrix operations against the managed double reference, at
/// widths around the vector width (1, 3, 16, 17, 33, 65) and at long buffers (70 000 elements) that cross every chunk
/// boundary of the loss sums. The bodies are generic over the buffer types, so the host implementations here and the
/// ILGPU one (<see cref="IlgpuSequenceMatrixOpsTests"/>) run the same checks through the same interface.
/// </summary>
[TestFixture]
public class SequenceMatrixOpsTests
{
    private static readonly ManagedMatrixOps<double> Reference = ManagedMatrixOps<double>.Instance;

    /// <summary>Every host float32 implementation; NUnit passes its name, as the classes are internal.</summary>
    private static readonly ManagedMatrixOps<float>[] Implementations = [CpuMatrixOps.Instance, ManagedMatrixOps<float>.Instance];

    private static ManagedMatrixOps<float> Implementation(string name) => Implementations.Single(ops => ops.Name == name);

    internal static readonly (int Rows, int Columns)[] Sizes = [(1, 1), (3, 3), (5, 16), (7, 17), (2, 33), (9, 65), (1100, 65), (70000, 1)];

    private static IEnumerable<TestCaseData> Cases(string name)
    {
        foreach (var ops in Implementations)
            foreach (var (rows, columns) in Sizes)
                yield return new TestCaseData(ops.Name, rows, columns).SetName($"{name}_{ops.Name}_R{rows}_C{columns}");
    }

    private static IEnumerable<TestCaseData> PointwiseCases() => Cases("Pointwise_MatchesDoubleReference");
    private static IEnumerable<TestCaseData> LossCases() => Cases("Losses_MatchDoubleReference");

    [TestCaseSource(nameof(PointwiseCases))]
    public void Pointwise_MatchesDoubleReference(string implementation, int rows, int columns) =>
        CheckPointwise(Implementation(implementation), rows, columns);

    [TestCaseSource(nameof(LossCases))]
    public void Losses_MatchDoubleReference(string implementation, int rows, int columns) =>
        CheckLosses(Implementation(implementation), rows, columns);

    /// <summary>
    /// What the output-recurrent network's per-token step relies on: cross-entropy of one row against counts equals
    /// cross-entropy of that row repeated once per counted target (loss summed, gradients of the copies summed).
    /// </summary>
    [Test]
    public void CrossEntropyCounts_EqualsCrossEntropyOfTheRowsItMerges()
    {
        const int columns = 7;
        var random = new Random(11);
        var logits = TestData.Uniform(random, columns, 4);
        int[] targets = [3, 1, 3, 6, 3, 0];
        double scale = 0.25;

        var repeated = Enumerable.Repeat(logits, targets.Length).SelectMany(row => row).ToArray();
        double expectedLoss = Reference.SoftmaxCrossEntropy(repeated, columns, targets, scale);
        var expectedGradient = new double[columns];
        for (int r = 0; r < targets.Length; r++)
            for (int c = 0; c < columns; c++) expectedGradient[c] += repeated[r * columns + c];

        var counts = new double[columns];
        foreach (int target in targets) counts[target]++;
        var gradient = (double[])logits.Clone();
        double loss = Reference.SoftmaxCrossEntropyCounts(gradient, columns, counts, scale);
        Assertions.AllClose([loss], [expectedLoss], Tolerances.FiniteDifference, "loss");
        Assertions.AllClose(gradient, expectedGradient, Tolerances.FiniteDifference, "gradient");
    }

    /// <summary>Host data in, through the interface, host data out: on the host the staging is the identity, on a device a copy.</summary>
    private sealed class Bridge<TData, TIds>(IMatrixOps<float, TData, TIds> ops)
        where TData : struct where TIds : struct
    {
        public TData Up(float[] values)
        {
            TData stage = default;
            return ops.Upload(values, ref stage);
        }

        public TIds Up(int[] ids)
        {
            TIds stage = default;
            return ops.UploadIds(ids, ref stage);
        }

        public float[] Down(TData data, int length)
        {
            var values = new float[length];
            ops.Download(data, values);
            return values;
        }

        public int[] Down(TIds ids, int length)
        {
            var values = new int[length];
            ops.DownloadIds(ids, values);
            return values;
        }
    }

    internal static void CheckPointwise<TData, TIds>(IMatrixOps<float, TData, TIds> ops, int rows, int columns)
        where TData : struct where TIds : struct
    {
        var bridge = new Bridge<TData, TIds>(ops);
        var random = new Random(rows * 100 + columns);
        int length = rows * columns, tableRows = 4;
        var row = TestData.UniformSingle(random, columns);
        var table = TestData.UniformSingle(random, tableRows * columns);
        var ids = Enumerable.Range(0, rows).Select(_ => random.Next(-1, tableRows)).ToArray();  // −1: a zero start value, skipped
        var z = TestData.UniformSingle(random, length, 3);
        var dh = TestData.UniformSingle(random, length);
        var deviceIds = bridge.Up(ids);

        foreach (var activation in Enum.GetValues<RnnActivation>())
        {
            // Forward: broadcast bias, gather fed-back rows, activate (z added between, on the host).
            var broadcast = bridge.Up(new float[length]);
            ops.BroadcastRows(bridge.Up(row), broadcast);
            ops.GatherRowsAdd(bridge.Up(table), columns, deviceIds, broadcast);
            var gathered = bridge.Down(broadcast, length);
            for (int i = 0; i < length; i++) gathered[i] += z[i];
            var activated = bridge.Up(gathered);
            ops.Activate(activation, activated);
            var actual = bridge.Down(activated, length);
            var expected = new double[length];
            Reference.BroadcastRows(Widen(row), expected);
            Reference.GatherRowsAdd(Widen(table), columns, ids, expected);
            for (int i = 0; i < length; i++) expected[i] += z[i];
            Reference.Activate(activation, expected);
            Assertions.AllClose(actual, expected, Tolerances.Float32, $"{ops.Name} {activation} forward");

            // Backward: activation derivative with the bias gradient.
            var gradient = bridge.Up((float[])dh.Clone());
            var biasGradient = bridge.Up((float[])row.Clone());
            ops.ActivationBackward(activation, bridge.Up(actual), gradient, columns, biasGradient);
            var expectedGradient = Widen(dh);
            var expectedBias = Widen(row);
            Reference.ActivationBackward(activation, Widen(actual), expectedGradient, columns, expectedBias);
            Assertions.AllClose(bridge.Down(gradient, length), expectedGradient, Tolerances.Float32, $"{ops.Name} {activation} dz");
            Assertions.AllClose(bridge.Down(biasGradient, columns), expectedBias, Tolerances.Float32, $"{ops.Name} {activation} db");
        }

        var sums = bridge.Up((float[])row.Clone());
        ops.AddColumnSums(bridge.Up(dh), columns, sums);
        var expectedSums = Widen(row);
        Reference.AddColumnSums(Widen(dh), columns, expectedSums);
        Assertions.AllClose(bridge.Down(sums, columns), expectedSums, Tolerances.Float32, $"{ops.Name} column sums");

        var scattered = bridge.Up((float[])table.Clone());
        ops.ScatterRowsAdd(bridge.Up(dh), columns, deviceIds, scattered);
        var expectedScattered = Widen(table);
        Reference.ScatterRowsAdd(Widen(dh), columns, ids, expectedScattered);
        Assertions.AllClose(bridge.Down(scattered, table.Length), expectedScattered, Tolerances.Float32, $"{ops.Name} scatter");

        // Ties included: values rounded to a coarse grid repeat within a row, and the first maximum must win.
        var coarse = Array.ConvertAll(z, v => MathF.Round(v));
        var tokens = bridge.Up(new int[rows]);
        ops.ArgMaxRows(bridge.Up(coarse), columns, tokens);
        var expectedTokens = new int[rows];
        Reference.ArgMaxRows(Widen(coarse), columns, expectedTokens);
        Assert.That(bridge.Down(tokens, rows), Is.EqualTo(expectedTokens), $"{ops.Name} argmax");
    }

    internal static void CheckLosses<TData, TIds>(IMatrixOps<float, TData, TIds> ops, int rows, int columns)
        where TData : struct where TIds : struct
    {
        var bridge = new Bridge<TData, TIds>(ops);
        var random = new Random(rows * 100 + columns + 1);
        int length = rows * columns;
        // Logits far apart (±30) exercise the max shift; a tiny target probability must not give an infinite loss.
        var logits = TestData.UniformSingle(random, length, 30);
        var targets = Enumerable.Range(0, rows).Select(_ => random.Next(columns)).ToArray();
        double scale = 1.0 / rows;

        // The losses add into an accumulator that starts at 1, so an implementation that overwrote it would fail.
        var gradient = bridge.Up((float[])logits.Clone());
        var lossSum = bridge.Up([1f]);
        ops.SoftmaxCrossEntropy(gradient, columns, bridge.Up(targets), (float)scale, lossSum);
        float loss = ops.ReadScalar(lossSum) - 1;
        var expectedGradient = Widen(logits);
        double expectedLoss = Reference.SoftmaxCrossEntropy(expectedGradient, columns, targets, scale);
        Assertions.AllClose([loss / rows], [expectedLoss / rows], Tolerances.Float32, $"{ops.Name} cross-entropy (mean)");
        Assertions.AllClose(bridge.Down(gradient, length), expectedGradient, Tolerances.Float32, $"{ops.Name} cross-entropy gradient");

        // Against counts: whole numbers up to 5 (many zeros), and an all-zero row, which must give no loss and no gradient.
        var counts = Enumerable.Range(0, length).Select(i => i < columns ? 0f : random.Next(3) == 0 ? random.Next(1, 6) : 0f).ToArray();
        var countGradient = bridge.Up((float[])logits.Clone());
        var countSum = bridge.Up([1f]);
        ops.SoftmaxCrossEntropyCounts(countGradient, columns, bridge.Up(counts), (float)scale, countSum);
        float countLoss = ops.ReadScalar(countSum) - 1;
        var expectedCountGradient = Widen(logits);
        double expectedCountLoss = Reference.SoftmaxCrossEntropyCounts(expectedCountGradient, columns, Widen(counts), scale);
        Assertions.AllClose([countLoss / rows], [expectedCountLoss / rows], Tolerances.Float32, $"{ops.Name} cross-entropy against counts (mean)");
        Assertions.AllClose(bridge.Down(countGradient, length), expectedCountGradient, Tolerances.Float32, $"{ops.Name} cross-entropy against counts, gradient");
        Assert.That(bridge.Down(countGradient, length).Take(columns), Is.All.EqualTo(0f), $"{ops.Name}: a row of zero counts has no gradient");

        var output = TestData.UniformSingle(random, length);
        var target = TestData.UniformSingle(random, length);
        var dOutput = bridge.Up((float[])output.Clone());
        var squaredSum = bridge.Up([1f]);
        ops.SquaredError(dOutput, bridge.Up(target), columns, default, (float)scale, squaredSum);
        float squared = ops.ReadScalar(squaredSum) - 1;
        var expectedOutput = Widen(output);
        double expectedSquared = Reference.SquaredError(expectedOutput, Widen(target), scale);
        Assertions.AllClose([squared / rows], [expectedSquared / rows], Tolerances.Float32, $"{ops.Name} squared error (mean)");
        Assertions.AllClose(bridge.Down(dOutput, length), expectedOutput, Tolerances.Float32, $"{ops.Name} squared error gradient");

        CheckIgnoredRows(ops, bridge, rows, columns, random);
    }

    /// <summary>
    /// Rows past a sequence's end: a negative target (cross-entropy) or row mask (squared error) ignores the row. Their
    /// logits, outputs and targets hold NaN, which must not be read: the loss stays that of the other rows, and their
    /// gradient rows are zero. A third of the rows (the first always) are ignored.
    /// </summary>
    private static void CheckIgnoredRows<TData, TIds>(IMatrixOps<float, TData, TIds> ops, Bridge<TData, TIds> bridge, int rows, int columns, Random random)
        where TData : struct where TIds : struct
    {
        int length = rows * columns;
        var ignored = Enumerable.Range(0, rows).Select(r => r == 0 || random.Next(3) == 0).ToArray();
        var logits = TestData.UniformSingle(random, length, 30);
        var targets = Enumerable.Range(0, rows).Select(r => ignored[r] ? -1 : random.Next(columns)).ToArray();
        var output = TestData.UniformSingle(random, length);
        var target = TestData.UniformSingle(random, length);
        var mask = Array.ConvertAll(ignored, i => i ? -1 : 0);
        for (int i = 0; i < length; i++)
            if (ignored[i / columns]) logits[i] = output[i] = target[i] = float.NaN;
        double scale = 1.0 / Math.Max(1, ignored.Count(i => !i));

        var gradient = bridge.Up((float[])logits.Clone());
        var lossSum = bridge.Up([1f]);
        ops.SoftmaxCrossEntropy(gradient, columns, bridge.Up(targets), (float)scale, lossSum);
        var expectedGradient = Widen(logits);
        double expectedLoss = Reference.SoftmaxCrossEntropy(expectedGradient, columns, targets, scale);
        Assertions.AllClose([(ops.ReadScalar(lossSum) - 1) * scale], [expectedLoss * scale], Tolerances.Float32, $"{ops.Name} cross-entropy with ignored rows (mean)");
        var actualGradient = bridge.Down(gradient, length);
        Assertions.AllClose(actualGradient, expectedGradient, Tolerances.Float32, $"{ops.Name} cross-entropy gradient with ignored rows");
        AssertZeroRows(actualGradient, columns, ignored, $"{ops.Name} cross-entropy");

        var dOutput = bridge.Up((float[])output.Clone());
        var squaredSum = bridge.Up([1f]);
        ops.SquaredError(dOutput, bridge.Up(target), columns, bridge.Up(mask), (float)scale, squaredSum);
        var expectedOutput = Widen(output);
        double expectedSquared = Reference.SquaredError(expectedOutput, Widen(target), columns, mask, scale);
        Assertions.AllClose([(ops.ReadScalar(squaredSum) - 1) * scale], [expectedSquared * scale], Tolerances.Float32, $"{ops.Name} squared error with ignored rows (mean)");
        var actualOutput = bridge.Down(dOutput, length);
        Assertions.AllClose(actualOutput, expectedOutput, Tolerances.Float32, $"{ops.Name} squared error gradient with ignored rows");
        AssertZeroRows(actualOutput, columns, ignored, $"{ops.Name} squared error");
    }

    private static void AssertZeroRows(float[] gradient, int columns, bool[] ignored, string what)
    {
        for (int r = 0; r < ignored.Length; r++)
            if (ignored[r])
                Assert.That(gradient.AsSpan(r * columns, columns).ToArray(), Is.All.EqualTo(0f), $"{what}: ignored row {r} has a gradient");
    }

    private static double[] Widen(float[] values) => Array.ConvertAll(values, v => (double)v);
}

/// <summary>
/// The ILGPU implementation (<see cref="IlgpuMatrixOps"/>) through the same checks as the host ones, on one accelerator
/// per derived fixture.
/// </summary>
public abstract class IlgpuSequenceMatrixOpsTests(IlgpuDevice device)
{
    private IlgpuAccelerator? _gpu;
    private IlgpuMatrixOps? _ops;

    [OneTimeSetUp]
    public void Open()
    {
        _gpu = IlgpuFixtures.OpenOrIgnore(device);
        _ops = new IlgpuMatrixOps(_gpu);
    }

    [OneTimeTearDown]
    public void Close()
    {
        _ops?.Dispose();
        _gpu?.Dispose();
    }

    /// <summary>
    /// The host sizes but the 70 000-row one: the simulator runs softmax's one group per row at about 1.4 ms a row. 1100 × 65
    /// still takes the squared error through more partial sums than a column sum's first pass holds.
    /// </summary>
    private static IEnumerable<TestCaseData> SizeCases() =>
        SequenceMatrixOpsTests.Sizes.Where(s => s.Rows <= 1100).Select(s => new TestCaseData(s.Rows, s.Columns).SetArgDisplayNames($"R{s.Rows}_C{s.Columns}"));

    [TestCaseSource(nameof(SizeCases))]
    public void Pointwise_MatchesDoubleReference(int rows, int columns) => SequenceMatrixOpsTests.CheckPointwise(_ops!, rows, columns);

    [TestCaseSource(nameof(SizeCases))]
    public void Losses_MatchDoubleReference(int rows, int columns) => SequenceMatrixOpsTests.CheckLosses(_ops!, rows, columns);
}

/// <summary>On ILGPU's CPU accelerator: runs everywhere.</summary>
[TestFixture]
public sealed class IlgpuCpuSequenceMatrixOpsTests() : IlgpuSequenceMatrixOpsTests(IlgpuDevice.Cpu);

/// <summary>On a CUDA GPU; ignored with the reason where there is none.</summary>
[TestFixture]
[Category("Cuda")]
public sealed class IlgpuCudaSequenceMatrixOpsTests() : IlgpuSequenceMatrixOpsTests(IlgpuDevice.Cuda);
