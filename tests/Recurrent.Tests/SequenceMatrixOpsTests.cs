using NUnit.Framework;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// Every float32 implementation of the sequence models' matrix operations against the managed double reference, at
/// widths around the vector width (1, 3, 16, 17, 33, 65) and at long buffers (70 000 elements) that cross every chunk boundary of the loss sums.
/// </summary>
[TestFixture]
public class SequenceMatrixOpsTests
{
    private static readonly IMatrixOps<double> Reference = ManagedMatrixOps<double>.Instance;

    /// <summary>Every float32 implementation; NUnit passes its name, as the interface is internal.</summary>
    private static readonly IMatrixOps<float>[] Implementations = [CpuMatrixOps.Instance, ManagedMatrixOps<float>.Instance];

    private static IMatrixOps<float> Implementation(string name) => Implementations.Single(ops => ops.Name == name);

    private static readonly (int Rows, int Columns)[] Sizes = [(1, 1), (3, 3), (5, 16), (7, 17), (2, 33), (9, 65), (1100, 65), (70000, 1)];

    private static IEnumerable<TestCaseData> Cases(string name)
    {
        foreach (var ops in Implementations)
            foreach (var (rows, columns) in Sizes)
                yield return new TestCaseData(ops.Name, rows, columns).SetName($"{name}_{ops.Name}_R{rows}_C{columns}");
    }

    private static IEnumerable<TestCaseData> PointwiseCases() => Cases("Pointwise_MatchesDoubleReference");
    private static IEnumerable<TestCaseData> LossCases() => Cases("Losses_MatchDoubleReference");

    [TestCaseSource(nameof(PointwiseCases))]
    public void Pointwise_MatchesDoubleReference(string implementation, int rows, int columns)
    {
        var ops = Implementation(implementation);
        var random = new Random(rows * 100 + columns);
        int length = rows * columns, tableRows = 4;
        var row = TestData.UniformSingle(random, columns);
        var table = TestData.UniformSingle(random, tableRows * columns);
        var ids = Enumerable.Range(0, rows).Select(_ => random.Next(-1, tableRows)).ToArray();  // −1: a zero start value, skipped
        var z = TestData.UniformSingle(random, length, 3);
        var dh = TestData.UniformSingle(random, length);

        foreach (var activation in Enum.GetValues<RnnActivation>())
        {
            // Forward: broadcast bias, gather fed-back rows, activate.
            var actual = new float[length];
            ops.BroadcastRows(row, actual);
            ops.GatherRowsAdd(table, columns, ids, actual);
            for (int i = 0; i < length; i++) actual[i] += z[i];
            ops.Activate(activation, actual);
            var expected = new double[length];
            Reference.BroadcastRows(Widen(row), expected);
            Reference.GatherRowsAdd(Widen(table), columns, ids, expected);
            for (int i = 0; i < length; i++) expected[i] += z[i];
            Reference.Activate(activation, expected);
            Assertions.AllClose(actual, expected, Tolerances.Float32, $"{activation} forward");

            // Backward: activation derivative with the bias gradient, column sums, scatter into the table.
            var gradient = (float[])dh.Clone();
            var biasGradient = (float[])row.Clone();
            ops.ActivationBackward(activation, actual, gradient, columns, biasGradient);
            var expectedGradient = Widen(dh);
            var expectedBias = Widen(row);
            Reference.ActivationBackward(activation, Widen(actual), expectedGradient, columns, expectedBias);
            Assertions.AllClose(gradient, expectedGradient, Tolerances.Float32, $"{activation} dz");
            Assertions.AllClose(biasGradient, expectedBias, Tolerances.Float32, $"{activation} db");
        }

        var sums = (float[])row.Clone();
        ops.AddColumnSums(dh, columns, sums);
        var expectedSums = Widen(row);
        Reference.AddColumnSums(Widen(dh), columns, expectedSums);
        Assertions.AllClose(sums, expectedSums, Tolerances.Float32, "column sums");

        var scattered = (float[])table.Clone();
        ops.ScatterRowsAdd(dh, columns, ids, scattered);
        var expectedScattered = Widen(table);
        Reference.ScatterRowsAdd(Widen(dh), columns, ids, expectedScattered);
        Assertions.AllClose(scattered, expectedScattered, Tolerances.Float32, "scatter");
    }

    [TestCaseSource(nameof(LossCases))]
    public void Losses_MatchDoubleReference(string implementation, int rows, int columns)
    {
        var ops = Implementation(implementation);
        var random = new Random(rows * 100 + columns + 1);
        int length = rows * columns;
        // Logits far apart (±30) exercise the max shift; a tiny target probability must not give an infinite loss.
        var logits = TestData.UniformSingle(random, length, 30);
        var targets = Enumerable.Range(0, rows).Select(_ => random.Next(columns)).ToArray();
        double scale = 1.0 / rows;

        var gradient = (float[])logits.Clone();
        float loss = ops.SoftmaxCrossEntropy(gradient, columns, targets, (float)scale);
        var expectedGradient = Widen(logits);
        double expectedLoss = Reference.SoftmaxCrossEntropy(expectedGradient, columns, targets, scale);
        Assertions.AllClose([loss / rows], [expectedLoss / rows], Tolerances.Float32, "cross-entropy (mean)");
        Assertions.AllClose(gradient, expectedGradient, Tolerances.Float32, "cross-entropy gradient");

        var output = TestData.UniformSingle(random, length);
        var target = TestData.UniformSingle(random, length);
        var dOutput = (float[])output.Clone();
        float squared = ops.SquaredError(dOutput, target, (float)scale);
        var expectedOutput = Widen(output);
        double expectedSquared = Reference.SquaredError(expectedOutput, Widen(target), scale);
        Assertions.AllClose([squared / rows], [expectedSquared / rows], Tolerances.Float32, "squared error (mean)");
        Assertions.AllClose(dOutput, expectedOutput, Tolerances.Float32, "squared error gradient");
    }

    private static double[] Widen(float[] values) => Array.ConvertAll(values, v => (double)v);
}
