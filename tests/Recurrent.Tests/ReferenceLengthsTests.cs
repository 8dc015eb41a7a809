using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// The reference with per-sequence lengths (PyTorch's packed sequences, padded back): against itself without lengths,
/// against each sequence run alone, against finite differences and against PyTorch's pack_padded_sequence.
/// </summary>
[TestFixture]
public class ReferenceLengthsTests
{
    /// <summary>A stack, its weights, a padded batch with lengths, and the seeds of a loss: everything one pass needs.</summary>
    private sealed class Problem
    {
        public Problem(CellKind cell, TestData.Shape shape, int[] lengths, int seed)
        {
            Config = shape.Config(cell);
            (Steps, Batch, Lengths) = (shape.Steps, shape.Batch, lengths);
            var random = new Random(seed);
            Weights = TestData.RandomWeights(Config, random);
            X = TestData.Uniform(random, Steps * Batch * shape.Input);
            int stateLength = Config.NumLayers * Config.Directions * Batch * Config.HiddenSize;
            H0 = TestData.Uniform(random, stateLength, 0.5);
            C0 = cell.HasCellState() ? TestData.Uniform(random, stateLength, 0.5) : null;
            // dy is nonzero at padded positions too: they must be ignored, not merely multiplied by a zero output.
            Dy = TestData.Uniform(random, Steps * Batch * Config.OutputSize);
            DhN = TestData.Uniform(random, stateLength);
            DcN = cell.HasCellState() ? TestData.Uniform(random, stateLength) : null;
        }

        public RnnConfig Config { get; }
        public int Steps { get; }
        public int Batch { get; }
        public int[] Lengths { get; }
        public ReferenceWeights Weights { get; }
        public double[] X { get; }
        public double[] H0 { get; }
        public double[]? C0 { get; }
        public double[] Dy { get; }
        public double[] DhN { get; }
        public double[]? DcN { get; }

        public ReferenceForward Forward(int[]? lengths) => ReferenceRnn.Forward(Weights, X, Steps, Batch, H0, C0, lengths);

        public ReferenceGradients Backward(ReferenceForward forward) => ReferenceRnn.Backward(forward, Dy, DhN, DcN);

        /// <summary>The fixed random linear function of y, hN and cN whose gradients Backward computes.</summary>
        public double Loss()
        {
            var f = Forward(Lengths);
            double loss = Dot(f.Output, Dy) + Dot(f.HiddenN, DhN);
            if (DcN is not null) loss += Dot(f.CellN!, DcN);
            return loss;
        }
    }

    private static readonly TestData.Shape[] LayerShapes =
    [
        new(5, 4, 3, 2, 1, false),
        new(5, 4, 3, 2, 1, true),
        new(5, 4, 3, 2, 2, true),
        new(5, 4, 3, 2, 2, false),
    ];

    // Unsorted, with the shortest possible (1) and the longest (T = 5).
    private static readonly int[] UnsortedLengths = [3, 5, 1, 4];

    private static IEnumerable<TestCaseData> LayerCases() =>
        from cell in TestData.AllCells
        from shape in LayerShapes
        select new TestCaseData(cell, shape).SetArgDisplayNames(cell.ToString(), shape.ToString());

    private static IEnumerable<TestCaseData> AllStepsCases() =>
        from cell in TestData.AllCells
        from shape in TestData.GradientShapes
        select new TestCaseData(cell, shape).SetArgDisplayNames(cell.ToString(), shape.ToString());

    [TestCaseSource(nameof(AllStepsCases))]
    public void LengthsAllT_AreBitIdenticalToNoLengths(CellKind cell, TestData.Shape shape)
    {
        var problem = new Problem(cell, shape, Enumerable.Repeat(shape.Steps, shape.Batch).ToArray(), 4321 + (int)cell);
        var plain = problem.Forward(null);
        var withLengths = problem.Forward(problem.Lengths);
        var plainGrads = problem.Backward(plain);
        var lengthsGrads = problem.Backward(withLengths);

        Assert.Multiple(() =>
        {
            Assert.That(withLengths.Output, Is.EqualTo(plain.Output), "y");
            Assert.That(withLengths.HiddenN, Is.EqualTo(plain.HiddenN), "hN");
            Assert.That(withLengths.CellN, Is.EqualTo(plain.CellN), "cN");
            Assert.That(lengthsGrads.Input, Is.EqualTo(plainGrads.Input), "dx");
            Assert.That(lengthsGrads.HiddenZero, Is.EqualTo(plainGrads.HiddenZero), "dh0");
            Assert.That(lengthsGrads.CellZero, Is.EqualTo(plainGrads.CellZero), "dc0");
            for (int p = 0; p < plainGrads.Weights.Values.Length; p++)
                Assert.That(lengthsGrads.Weights.Values[p], Is.EqualTo(plainGrads.Weights.Values[p]), $"parameter {p}");
        });
    }

    /// <summary>
    /// The defining property: sequence n of a padded batch is the sequence x[0 … lengths[n]−1, n] run alone (N=1,
    /// T=lengths[n]); past its end its outputs and dx are zero; the batch's parameter gradients are the sum of the
    /// sequences' own.
    /// </summary>
    [TestCaseSource(nameof(LayerCases))]
    public void EachSequence_EqualsItsOwnRunAlone_TruncatedToItsLength(CellKind cell, TestData.Shape shape)
    {
        var problem = new Problem(cell, shape, UnsortedLengths, 777 + (int)cell);
        var config = problem.Config;
        int steps = problem.Steps, batch = problem.Batch, input = shape.Input, hidden = config.HiddenSize, output = config.OutputSize;
        int stacks = config.NumLayers * config.Directions;
        var forward = problem.Forward(problem.Lengths);
        var grads = problem.Backward(forward);
        var summedWeights = new ReferenceWeights(config);
        var tolerance = Tolerances.DoubleSummationOrder;

        Assert.Multiple(() =>
        {
            for (int n = 0; n < batch; n++)
            {
                int length = problem.Lengths[n];
                string who = $"sequence {n} (length {length})";
                var alone = ReferenceRnn.Forward(problem.Weights, Rows(problem.X, length, batch, input, n), length, 1,
                    Rows(problem.H0, stacks, batch, hidden, n), problem.C0 is null ? null : Rows(problem.C0, stacks, batch, hidden, n));
                var aloneGrads = ReferenceRnn.Backward(alone, Rows(problem.Dy, length, batch, output, n),
                    Rows(problem.DhN, stacks, batch, hidden, n), problem.DcN is null ? null : Rows(problem.DcN, stacks, batch, hidden, n));

                Assertions.AllClose(Rows(forward.Output, length, batch, output, n), alone.Output, tolerance, $"{who}: y");
                Assertions.AllClose(Rows(forward.HiddenN, stacks, batch, hidden, n), alone.HiddenN, tolerance, $"{who}: hN");
                if (forward.CellN is not null)
                    Assertions.AllClose(Rows(forward.CellN, stacks, batch, hidden, n), alone.CellN!, tolerance, $"{who}: cN");
                Assertions.AllClose(Rows(grads.Input, length, batch, input, n), aloneGrads.Input, tolerance, $"{who}: dx");
                Assertions.AllClose(Rows(grads.HiddenZero, stacks, batch, hidden, n), aloneGrads.HiddenZero, tolerance, $"{who}: dh0");
                if (grads.CellZero is not null)
                    Assertions.AllClose(Rows(grads.CellZero, stacks, batch, hidden, n), aloneGrads.CellZero!, tolerance, $"{who}: dc0");
                for (int t = length; t < steps; t++)
                {
                    Assert.That(forward.Output.AsSpan((t * batch + n) * output, output).ToArray(), Is.All.EqualTo(0.0), $"{who}: y at t={t}");
                    Assert.That(grads.Input.AsSpan((t * batch + n) * input, input).ToArray(), Is.All.EqualTo(0.0), $"{who}: dx at t={t}");
                }
                for (int p = 0; p < summedWeights.Values.Length; p++)
                    for (int i = 0; i < summedWeights.Values[p].Length; i++) summedWeights.Values[p][i] += aloneGrads.Weights.Values[p][i];
            }
            var names = config.Parameters().Select(p => p.Name).ToArray();
            for (int p = 0; p < summedWeights.Values.Length; p++)
                Assertions.AllClose(grads.Weights.Values[p], summedWeights.Values[p], tolerance, $"{names[p]}: the batch's against the sum of the sequences'");
        });
    }

    private static IEnumerable<TestCaseData> GradientCases()
    {
        (TestData.Shape Shape, int[] Lengths)[] shapes =
        [
            (new(4, 3, 3, 2, 2, true), [2, 4, 1]),
            (new(3, 2, 2, 3, 1, false), [3, 1]),
            (new(3, 3, 4, 2, 1, true), [1, 3, 2]),
        ];
        return from cell in TestData.AllCells
               from s in shapes
               select new TestCaseData(cell, s.Shape, s.Lengths)
                   .SetArgDisplayNames(cell.ToString(), s.Shape.ToString(), "lengths_" + string.Join("_", s.Lengths));
    }

    [TestCaseSource(nameof(GradientCases))]
    public void Backward_WithLengths_MatchesFiniteDifferences(CellKind cell, TestData.Shape shape, int[] lengths)
    {
        var problem = new Problem(cell, shape, lengths, 99 + (int)cell);
        var grads = problem.Backward(problem.Forward(problem.Lengths));

        FiniteDifferences.Check(problem.X, grads.Input, problem.Loss, "dx");
        FiniteDifferences.Check(problem.H0, grads.HiddenZero, problem.Loss, "dh0");
        if (problem.C0 is not null) FiniteDifferences.Check(problem.C0, grads.CellZero!, problem.Loss, "dc0");
        var names = problem.Config.Parameters().Select(p => p.Name).ToArray();
        for (int p = 0; p < problem.Weights.Values.Length; p++)
            FiniteDifferences.Check(problem.Weights.Values[p], grads.Weights.Values[p], problem.Loss, names[p]);
    }

    [Test]
    public void Forward_KeepsItsOwnCopyOfLengths_ForBackward()
    {
        var problem = new Problem(CellKind.Lstm, LayerShapes[2], (int[])UnsortedLengths.Clone(), 5);
        var expected = problem.Backward(problem.Forward(problem.Lengths));
        var forward = problem.Forward(problem.Lengths);
        problem.Lengths[0] = 5;   // the caller reuses its array between forward and backward
        Assert.That(problem.Backward(forward).Input, Is.EqualTo(expected.Input));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Bad lengths
    // ---------------------------------------------------------------------------------------------------------------

    private const int BadSteps = 4, BadBatch = 3;

    private static IEnumerable<TestCaseData> BadLengths() =>
    [
        new TestCaseData(new[] { 1, 2 }, "got 2").SetArgDisplayNames("WrongCount"),
        new TestCaseData(new[] { 1, 2, 3, 4 }, "got 4").SetArgDisplayNames("TooMany"),
        new TestCaseData(new[] { 1, 0, 2 }, "lengths[1] = 0").SetArgDisplayNames("Zero"),
        new TestCaseData(new[] { 1, 2, 5 }, "lengths[2] = 5").SetArgDisplayNames("AboveT"),
        new TestCaseData(new[] { -1, 2, 3 }, "lengths[0] = -1").SetArgDisplayNames("Negative"),
    ];

    [TestCaseSource(nameof(BadLengths))]
    public void Validate_RejectsBadLengths_NamingLengthsAndTheOffendingValue(int[] lengths, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceLengths.Validate(lengths, BadSteps, BadBatch));
        Assert.That(e!.ParamName, Is.EqualTo("lengths"));
        Assert.That(e.Message, Does.Contain(message));
    }

    [TestCaseSource(nameof(BadLengths))]
    public void ReferenceForward_RejectsBadLengths_BeforeAnyWork(int[] lengths, string message)
    {
        var config = new RnnConfig(CellKind.Lstm, 2, 3, 1, false);
        var weights = new ReferenceWeights(config);
        var e = Assert.Throws<ArgumentException>(() => ReferenceRnn.Forward(weights, new double[BadSteps * BadBatch * 2], BadSteps, BadBatch, lengths: lengths));
        Assert.That(e!.ParamName, Is.EqualTo("lengths"));
        Assert.That(e.Message, Does.Contain(message));
    }

    private static IEnumerable<TestCaseData> BadValues() =>
    [
        new TestCaseData(new[] { 1f, 2f }, "got 2").SetArgDisplayNames("WrongCount"),
        new TestCaseData(new[] { 1f, 2.5f, 3f }, "lengths[1] = 2.5").SetArgDisplayNames("NotWhole"),
        new TestCaseData(new[] { 1f, float.NaN, 3f }, "lengths[1] = NaN").SetArgDisplayNames("NaN"),
        new TestCaseData(new[] { 1f, 2f, 0f }, "lengths[2] = 0").SetArgDisplayNames("Zero"),
        new TestCaseData(new[] { 1f, 2f, 5f }, "lengths[2] = 5").SetArgDisplayNames("AboveT"),
        new TestCaseData(new[] { -2f, 2f, 3f }, "lengths[0] = -2").SetArgDisplayNames("Negative"),
        new TestCaseData(new[] { 1f, 2f, 1e10f }, "lengths[2] = 1E+10").SetArgDisplayNames("BeyondInt"),
    ];

    [TestCaseSource(nameof(BadValues))]
    public void FromValues_RejectsBadLengths_NamingLengthsAndTheOffendingValue(float[] lengths, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceLengths.FromValues(lengths, BadSteps, BadBatch));
        Assert.That(e!.ParamName, Is.EqualTo("lengths"));
        Assert.That(e.Message, Does.Contain(message));
    }

    [Test]
    public void GoodLengths_AreAccepted()
    {
        Assert.DoesNotThrow(() => SequenceLengths.Validate(null, BadSteps, BadBatch));
        Assert.DoesNotThrow(() => SequenceLengths.Validate([4, 1, 3], BadSteps, BadBatch));
        Assert.That(SequenceLengths.FromValues([4f, 1f, 3f], BadSteps, BadBatch), Is.EqualTo(new[] { 4, 1, 3 }));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // PyTorch: pack_padded_sequence(x, lengths, enforce_sorted=False) → nn.LSTM/GRU/RNN → pad_packed_sequence
    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>The variable-length cases of scripts/make_reference_data.py (LENGTH_CASES); their data files hold lengths.</summary>
    public static readonly PyTorchCase[] PyTorchLengthCases =
    [
        new("lstm_l2_bi_lengths_f64", CellKind.Lstm, 3, 2, 2, true),
        new("gru_l2_bi_lengths_f64", CellKind.GruResetAfter, 5, 3, 2, true),
        new("gru_reset_before_l2_bi_lengths_f64", CellKind.GruResetBefore, 2, 3, 2, true),
        new("rnn_tanh_l1_lengths_f64", CellKind.RnnTanh, 4, 3, 1, false),
        new("rnn_relu_l2_bi_lengths_f64", CellKind.RnnRelu, 3, 2, 2, true),
    ];

    private static IEnumerable<TestCaseData> PyTorchCases() =>
        PyTorchLengthCases.Select(c => new TestCaseData(c).SetArgDisplayNames(c.Name));

    /// <summary>What the reference computes for a case with or without its lengths, named as in the data file.</summary>
    private static Dictionary<string, double[]> RunReference(PyTorchCase testCase, IReadOnlyDictionary<string, FloatTensor> data, bool useLengths)
    {
        var x = data["x"];
        var lengths = useLengths ? SequenceLengths.FromValues(data["lengths"].ToArray(), x.Shape[0], x.Shape[1]) : null;
        return PyTorchParityTests.RunReference(testCase, data, ReferenceWeights.From(testCase.LoadLayer().Parameters), lengths);
    }

    [TestCaseSource(nameof(PyTorchCases))]
    public void Reference_WithLengths_MatchesPyTorchPackedSequences_ValuesAndEveryGradient(PyTorchCase testCase)
    {
        var data = testCase.Data;
        var actual = RunReference(testCase, data, useLengths: true);
        Assert.Multiple(() =>
        {
            foreach (var name in actual.Keys)
            {
                Assert.That(data.ContainsKey(name), $"{testCase.Name}: the data file has no '{name}'");
                Assertions.AllClose(actual[name], PyTorchData.Widen(data[name]), testCase.Tolerance, $"{testCase.Name}: {name}");
            }
        });
    }

    /// <summary>The fixtures must exercise the lengths: unsorted, with 1 and T, and without them the reference disagrees.</summary>
    [TestCaseSource(nameof(PyTorchCases))]
    public void PyTorchLengthData_IsUnsortedWithOneAndT_AndIgnoringLengthsFails(PyTorchCase testCase)
    {
        var data = testCase.Data;
        int steps = data["x"].Shape[0], batch = data["x"].Shape[1];
        var lengths = SequenceLengths.FromValues(data["lengths"].ToArray(), steps, batch);
        Assert.That(lengths, Does.Contain(1).And.Contain(steps), "lengths include 1 and T");
        Assert.That(lengths, Is.Not.Ordered.Descending, "lengths are not sorted as pack_padded_sequence's enforce_sorted wants");

        var wrong = RunReference(testCase, data, useLengths: false);
        bool anyRejected = wrong.Any(kv => kv.Value.Zip(data[kv.Key].ToArray(), (a, e) => !testCase.Tolerance.Accepts(a, e)).Any(rejected => rejected));
        Assert.That(anyRejected, $"{testCase.Name}: without lengths the results still pass; the data does not test them");
    }

    /// <summary>Rows n of a [count, N, width] buffer's first <paramref name="count"/> outer indices, as [count, 1, width].</summary>
    private static double[] Rows(double[] source, int count, int batch, int width, int n)
    {
        var result = new double[count * width];
        for (int i = 0; i < count; i++) Array.Copy(source, (i * batch + n) * width, result, i * width, width);
        return result;
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
