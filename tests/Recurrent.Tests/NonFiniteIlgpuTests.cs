using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// A NaN or ±∞ that arises inside a pass on ILGPU (a NaN parameter, a product that overflows) comes out where IEEE
/// arithmetic and the reference put it, on every cell fused and unfused, every sequence pass and both sequence models,
/// and no call hangs: on ILGPU's CPU accelerator a float atomic whose target holds NaN used to spin forever. Every
/// call runs against a deadline, so a regression fails instead of stalling CI; once one call has hung the accelerator
/// is stuck, so the rest of the fixture fails at once and nothing is disposed.
/// </summary>
[TestFixture]
public sealed class NonFiniteIlgpuTests
{
    /// <summary>Each call here takes well under a second on the CPU accelerator; a spinning kernel never returns.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private IlgpuBackend? _fused, _unfused;
    private IlgpuMatrixOps? _ops;
    private bool _hung;

    [OneTimeSetUp]
    public void Open()
    {
        _fused = new IlgpuBackend(IlgpuDevice.Cpu, fused: true);
        _unfused = new IlgpuBackend(IlgpuDevice.Cpu, fused: false);
        _ops = new IlgpuMatrixOps(_fused.Accelerator);
    }

    [OneTimeTearDown]
    public void Close()
    {
        // A hung kernel holds the accelerator: disposing it would wait for that kernel forever.
        if (_hung) return;
        _ops?.Dispose();
        _fused?.Dispose();
        _unfused?.Dispose();
    }

    private IlgpuAccelerator Gpu => _fused!.Accelerator;

    /// <summary>Runs <paramref name="work"/> on a background thread and fails if it has not returned by the deadline.</summary>
    private T Within<T>(string what, Func<T> work)
    {
        if (_hung) Assert.Fail("an earlier call of this fixture hung the accelerator");
        var task = Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(Deadline))
        {
            _hung = true;
            Assert.Fail($"{what} did not return within {Deadline.TotalSeconds} s: a kernel spins on a NaN.");
        }
        return task.Result;
    }

    private void Within(string what, Action work) => Within(what, () => { work(); return 0; });

    /// <summary>
    /// NaN exactly where <paramref name="expected"/> has NaN, the same infinities, finite values within the float32
    /// tolerance. Expected values beyond float's range are the float overflow (±∞) they round to.
    /// </summary>
    internal static void AssertSameValues(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        for (int i = 0; i < actual.Length; i++)
        {
            float a = actual[i], e = (float)expected[i];
            bool same = float.IsNaN(e) ? float.IsNaN(a) : float.IsInfinity(e) ? a == e : float.IsFinite(a) && Tolerances.Float32.Accepts(a, expected[i]);
            if (!same) Assert.Fail($"{what}: element {i} is {a:R}, expected {expected[i]:R}.");
        }
    }

    private static void AssertSame(float[] actual, float[] expected, string what) =>
        AssertSameValues(actual, Array.ConvertAll(expected, v => (double)v), what);

    // ---- cells, fused and unfused, against ReferenceBackend ----

    private static readonly TestData.Shape CellShape = new(2, 2, 3, 3, 1, false);

    private static IEnumerable<TestCaseData> NaNParameterCases() =>
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        from spec in ParameterSpec.RnnBase
        from gate in Enumerable.Range(0, cell.GateCount())
        select new TestCaseData(cell, fused, spec, gate).SetArgDisplayNames(cell.ToString(), fused ? "fused" : "unfused", spec.Stem, $"gate{gate}");

    /// <summary>One NaN in gate block <paramref name="gate"/> of one parameter: outputs, states and every gradient NaN exactly where the reference's are.</summary>
    [TestCaseSource(nameof(NaNParameterCases))]
    public void NaNParameter_GivesNaNExactlyWhereTheReferenceDoes(CellKind cell, bool fused, ParameterSpec spec, int gate)
    {
        var config = CellShape.Config(cell);
        var parameters = new RnnParameters(config);
        parameters.Reset(3);
        var value = parameters[0, 0, spec].Value.Span;
        int h = config.HiddenSize, row = gate * h + 1;
        value[spec == ParameterSpec.WeightIH || spec == ParameterSpec.WeightHH ? row * (value.Length / (config.GateCount * h)) : row] = float.NaN;
        CompareWithReference(cell, fused, parameters, CellShape, x => { }, $"{cell} NaN in {spec} gate {gate}", expectNaN: true);
    }

    /// <summary>A NaN in the input of a two-layer bidirectional stack reaches both directions of both layers as in the reference.</summary>
    [Test]
    public void NaNInput_GivesNaNExactlyWhereTheReferenceDoes([ValueSource(typeof(TestData), nameof(TestData.AllCells))] CellKind cell, [Values] bool fused)
    {
        var shape = new TestData.Shape(3, 2, 2, 2, 2, true);
        var parameters = new RnnParameters(shape.Config(cell));
        parameters.Reset(4);
        CompareWithReference(cell, fused, parameters, shape, x => x[1 * 2 * 2 + 1] = float.NaN, $"{cell} NaN in x", expectNaN: true);
    }

    /// <summary>
    /// W_ih x overflows float (10²⁰ · 10²⁰ · u): every gate saturates, as the double reference's do, and nothing turns
    /// into NaN. Relu's output is ∞ there, so its stack runs one step (a second would form ∞ − ∞ in W_hh h, where the
    /// double reference still has finite values).
    /// </summary>
    [Test]
    public void OverflowingInputProduct_SaturatesAsTheReferenceDoes([ValueSource(typeof(TestData), nameof(TestData.AllCells))] CellKind cell, [Values] bool fused)
    {
        var shape = cell == CellKind.RnnRelu ? new TestData.Shape(1, 2, 3, 3, 1, false) : new TestData.Shape(3, 2, 3, 3, 1, false);
        var parameters = new RnnParameters(shape.Config(cell));
        parameters.Reset(5);
        var wih = parameters[0, 0, ParameterSpec.WeightIH].Value.Span;
        for (int r = 0; r < wih.Length / shape.Input; r++) wih[r * shape.Input] *= 1e20f;
        CompareWithReference(cell, fused, parameters, shape, x =>
        {
            for (int i = 0; i < x.Length; i += shape.Input) x[i] = 1e20f;
        }, $"{cell} overflowing W_ih x", expectNaN: false);
    }

    private void CompareWithReference(CellKind cell, bool fused, RnnParameters parameters, TestData.Shape shape, Action<float[]> editInput, string what, bool expectNaN)
    {
        var config = parameters.Config;
        var random = new Random(11 + (int)cell);
        int steps = shape.Steps, batch = shape.Batch;
        var state = config.StateShape(batch);
        int stateLength = state.Aggregate(1, (a, b) => a * b);
        bool lstm = cell.HasCellState();
        var xData = TestData.UniformSingle(random, steps * batch * shape.Input);
        editInput(xData);
        var x = new FloatTensor(xData, steps, batch, shape.Input);
        var h0 = new FloatTensor(TestData.UniformSingle(random, stateLength, 0.5), state);
        var c0 = lstm ? new FloatTensor(TestData.UniformSingle(random, stateLength, 0.5), state) : null;
        var dy = new FloatTensor(TestData.UniformSingle(random, steps * batch * config.OutputSize), steps, batch, config.OutputSize);
        var dhN = new FloatTensor(TestData.UniformSingle(random, stateLength), state);
        var dcN = lstm ? new FloatTensor(TestData.UniformSingle(random, stateLength), state) : null;
        var backend = fused ? _fused! : _unfused!;
        var expected = BackendRuns.ForwardBackward(ReferenceBackend.Instance, parameters, x, h0, c0, dy, dhN, dcN);
        var actual = Within(what, () => BackendRuns.ForwardBackward(backend, parameters, x, h0, c0, dy, dhN, dcN));
        Assert.That(expected.Values.Any(v => v.Any(float.IsNaN)), Is.EqualTo(expectNaN), $"{what}: whether the reference has NaN");
        foreach (var (name, values) in expected)
            AssertSame(actual[name], values, $"{backend.Name} {what}: {name}");
    }

    // ---- the sequence models' passes (IlgpuMatrixOps) against the managed ones in float ----

    private static readonly float[] Specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 1.5f, -2.5f, 50f, -50f, 3e38f, -1e-40f];

    private static ManagedMatrixOps<float> Managed => ManagedMatrixOps<float>.Instance;

    private MemoryBuffer1D<float, Stride1D.Dense> Device(float[] values) => Gpu.Accelerator.Allocate1D(values);

    private MemoryBuffer1D<int, Stride1D.Dense> Device(int[] values) => Gpu.Accelerator.Allocate1D(values);

    /// <summary>Runs an operation on the device on a copy of <paramref name="data"/> and returns what it left there.</summary>
    private float[] OnDevice(string what, float[] data, Action<ArrayView<float>> operation) => Within(what, () =>
    {
        using var buffer = Device(data);
        operation(buffer.View);
        return buffer.GetAsArray1D();
    });

    [Test]
    public void Activate_MatchesManaged_OnSpecialValues([Values] RnnActivation activation)
    {
        var expected = (float[])Specials.Clone();
        Managed.Activate(activation, expected);
        var actual = OnDevice("activate", Specials, v => _ops!.Activate(activation, v));
        AssertSame(actual, expected, $"{activation}");
        for (int i = 0; i < expected.Length; i++)
            Assert.That(float.IsNegative(actual[i]), Is.EqualTo(float.IsNegative(expected[i])), $"{activation}: sign of element {i} ({Specials[i]})");
    }

    /// <summary>70 rows: above 64 the bias gradient takes the two-pass column sum; NaN in every row of a column hits every thread of its reduction.</summary>
    [Test]
    public void ActivationBackward_MatchesManaged_OnSpecialValues([Values] RnnActivation activation, [Values(10, 70)] int rows)
    {
        const int columns = 4;
        var random = new Random(rows);
        var output = new float[rows * columns];
        var gradient = TestData.UniformSingle(random, rows * columns);
        for (int i = 0; i < output.Length; i++) output[i] = i % columns == 3 ? (float)random.NextDouble() : Specials[i % Specials.Length];
        for (int r = 0; r < rows; r++) gradient[r * columns] = float.NaN;   // column 0: NaN in every row
        gradient[columns + 1] = float.PositiveInfinity;
        var expectedGradient = (float[])gradient.Clone();
        var expectedBias = new float[] { 1, 2, 3, 4 };
        Managed.ActivationBackward(activation, output, expectedGradient, columns, expectedBias);
        var (actualGradient, actualBias) = Within("activation backward", () =>
        {
            using var o = Device(output);
            using var g = Device(gradient);
            using var b = Device(new float[] { 1, 2, 3, 4 });
            _ops!.ActivationBackward(activation, o.View, g.View, columns, b.View);
            return (g.GetAsArray1D(), b.GetAsArray1D());
        });
        AssertSame(actualGradient, expectedGradient, $"{activation} gradient");
        AssertSame(actualBias, expectedBias, $"{activation} bias gradient");
    }

    /// <summary>Column 0 all NaN, column 1 +∞ and −∞ (NaN), column 2 +∞ (∞), column 3 finite; both column-sum paths.</summary>
    [Test]
    public void AddColumnSums_PropagatesNaNAndInfinities([Values(10, 70)] int rows)
    {
        const int columns = 4;
        var source = TestData.UniformSingle(new Random(rows), rows * columns);
        for (int r = 0; r < rows; r++) source[r * columns] = float.NaN;
        source[1] = float.PositiveInfinity;
        source[(rows - 1) * columns + 1] = float.NegativeInfinity;
        source[2 * columns + 2] = float.PositiveInfinity;
        var expected = new float[columns];
        Managed.AddColumnSums(source, columns, expected);
        var actual = Within("column sums", () =>
        {
            using var s = Device(source);
            using var d = Device(new float[columns]);
            _ops!.AddColumnSums(s.View, columns, d.View);
            return d.GetAsArray1D();
        });
        AssertSame(actual, expected, "column sums");
        Assert.That(float.IsNaN(actual[0]) && float.IsNaN(actual[1]) && float.IsPositiveInfinity(actual[2]) && float.IsFinite(actual[3]), Is.True,
            $"column sums {string.Join(", ", actual)}");
    }

    /// <summary>Rows of 40 logits (more than a CPU group's 16 threads): finite, one NaN, one +∞, one −∞, all −∞, 3·10³⁸ (overflows Σ).</summary>
    private static float[][] LogitRows()
    {
        const int columns = 40;
        var random = new Random(3);
        float[] Row(Action<float[]> edit)
        {
            var row = TestData.UniformSingle(random, columns, 3);
            edit(row);
            return row;
        }
        return
        [
            Row(_ => { }),
            Row(r => r[17] = float.NaN),
            Row(r => r[0] = float.NaN),
            Row(r => r[5] = float.PositiveInfinity),
            Row(r => r[5] = float.NegativeInfinity),
            Row(r => Array.Fill(r, float.NegativeInfinity)),
            Row(r => Array.Fill(r, 3e38f)),
        ];
    }

    [Test]
    public void SoftmaxCrossEntropy_MatchesManaged_RowByRow_OnNonFiniteLogits()
    {
        var rows = LogitRows();
        for (int i = 0; i < rows.Length; i++)
        {
            int[] target = [i % 3 == 0 ? 5 : 17];
            var expected = (float[])rows[i].Clone();
            float expectedLoss = Managed.SoftmaxCrossEntropy(expected, expected.Length, target, 0.5f);
            var (actual, loss) = Within("softmax cross-entropy", () =>
            {
                using var logits = Device(rows[i]);
                using var targets = Device(target);
                using var lossSum = Device(new float[1]);
                _ops!.SoftmaxCrossEntropy(logits.View, rows[i].Length, targets.View, 0.5f, lossSum.View);
                return (logits.GetAsArray1D(), lossSum.GetAsArray1D()[0]);
            });
            AssertSame(actual, expected, $"row {i} gradient");
            AssertSame([loss], [expectedLoss], $"row {i} loss");
        }
    }

    [Test]
    public void SoftmaxCrossEntropyCounts_MatchesManaged_RowByRow_OnNonFiniteLogits()
    {
        var rows = LogitRows();
        var random = new Random(8);
        for (int i = 0; i < rows.Length; i++)
        {
            var counts = new float[rows[i].Length];
            for (int c = 0; c < counts.Length; c += 3) counts[c] = random.Next(0, 3);
            var expected = (float[])rows[i].Clone();
            float expectedLoss = Managed.SoftmaxCrossEntropyCounts(expected, expected.Length, counts, 0.25f);
            var (actual, loss) = Within("softmax cross-entropy against counts", () =>
            {
                using var logits = Device(rows[i]);
                using var deviceCounts = Device(counts);
                using var lossSum = Device(new float[1]);
                _ops!.SoftmaxCrossEntropyCounts(logits.View, rows[i].Length, deviceCounts.View, 0.25f, lossSum.View);
                return (logits.GetAsArray1D(), lossSum.GetAsArray1D()[0]);
            });
            AssertSame(actual, expected, $"row {i} gradient");
            AssertSame([loss], [expectedLoss], $"row {i} loss");
        }
    }

    /// <summary>A whole batch of those rows at once: one NaN row makes the summed loss NaN and leaves the finite rows' gradients alone.</summary>
    [Test]
    public void SoftmaxCrossEntropy_OverRowsWithNaN_GivesNaNLossAndKeepsFiniteRows()
    {
        var rows = LogitRows();
        var logits = rows.SelectMany(r => r).ToArray();
        int[] targets = Enumerable.Range(0, rows.Length).Select(r => r * 5 % 40).ToArray();
        var expected = (float[])logits.Clone();
        float expectedLoss = Managed.SoftmaxCrossEntropy(expected, 40, targets, 1f);
        var (actual, loss) = Within("softmax cross-entropy", () =>
        {
            using var l = Device(logits);
            using var t = Device(targets);
            using var s = Device(new float[1]);
            _ops!.SoftmaxCrossEntropy(l.View, 40, t.View, 1f, s.View);
            return (l.GetAsArray1D(), s.GetAsArray1D()[0]);
        });
        AssertSame(actual, expected, "gradient");
        Assert.That(float.IsNaN(loss) && float.IsNaN(expectedLoss), Is.True, $"loss {loss}, expected {expectedLoss}");
    }

    [Test]
    public void SquaredError_MatchesManaged_OnSpecialValues()
    {
        var output = Specials.Concat(Specials).ToArray();
        var target = Specials.Reverse().Concat(Enumerable.Repeat(1f, Specials.Length)).ToArray();
        var expected = (float[])output.Clone();
        float expectedLoss = Managed.SquaredError(expected, target, 0.5f);
        var (actual, loss) = Within("squared error", () =>
        {
            using var o = Device(output);
            using var t = Device(target);
            using var s = Device(new float[1]);
            _ops!.SquaredError(o.View, t.View, 1, default, 0.5f, s.View);
            return (o.GetAsArray1D(), s.GetAsArray1D()[0]);
        });
        AssertSame(actual, expected, "gradient");
        AssertSame([loss], [expectedLoss], "loss");
    }

    [Test]
    public void ArgMaxRows_MatchesManaged_OnNonFiniteValues()
    {
        float nan = float.NaN, inf = float.PositiveInfinity;
        float[][] rows =
        [
            [nan, 1, 3, 2], [1, nan, 3, 2], [1, 3, nan, 3], [1, -inf, inf, 2], [-inf, -inf, -inf, -inf], [nan, nan, nan, nan], [-0f, 0f, -0f, 0f],
        ];
        var values = rows.SelectMany(r => r).ToArray();
        var expected = new int[rows.Length];
        Managed.ArgMaxRows(values, 4, expected);
        var actual = Within("argmax", () =>
        {
            using var v = Device(values);
            using var d = Device(new int[rows.Length]);
            _ops!.ArgMaxRows(v.View, 4, d.View);
            return d.GetAsArray1D();
        });
        Assert.That(actual, Is.EqualTo(expected));
    }

    /// <summary>Ids repeat, so several rows add into one table row atomically: a NaN row, and +∞ and −∞ into one element.</summary>
    [Test]
    public void ScatterRowsAdd_WithNaNRowsAndRepeatedIds_ReturnsAndPropagates()
    {
        const int columns = 5, vocabulary = 3;
        int[] ids = [0, 1, 0, 2, 0, -1, 1, 0, 2, 0, 0, 1];
        var source = TestData.UniformSingle(new Random(2), ids.Length * columns);
        for (int c = 0; c < columns; c++) source[c] = float.NaN;              // row 0 → table row 0
        source[1 * columns + 2] = float.PositiveInfinity;                     // rows 1 and 6 → table row 1
        source[6 * columns + 2] = float.NegativeInfinity;
        source[3 * columns + 4] = float.PositiveInfinity;                     // row 3 → table row 2
        source[5 * columns] = float.NaN;                                      // id −1: skipped
        var table = TestData.UniformSingle(new Random(3), vocabulary * columns);
        var expected = (float[])table.Clone();
        Managed.ScatterRowsAdd(source, columns, ids, expected);
        var actual = Within("scatter", () =>
        {
            using var s = Device(source);
            using var i = Device(ids);
            using var t = Device(table);
            _ops!.ScatterRowsAdd(s.View, columns, i.View, t.View);
            return t.GetAsArray1D();
        });
        AssertSame(actual, expected, "table");
    }

    [Test]
    public void GatherRowsAddAndBroadcastRows_CarryNonFiniteValues()
    {
        int columns = Specials.Length;
        int[] ids = [1, -1, 0, 1];
        var table = Specials.Concat(Specials.Reverse()).ToArray();
        var destination = TestData.UniformSingle(new Random(4), ids.Length * columns);
        destination[columns] = float.NaN;
        var expected = (float[])destination.Clone();
        Managed.GatherRowsAdd(table, columns, ids, expected);
        var actual = Within("gather", () =>
        {
            using var t = Device(table);
            using var i = Device(ids);
            using var d = Device(destination);
            _ops!.GatherRowsAdd(t.View, columns, i.View, d.View);
            return d.GetAsArray1D();
        });
        AssertSame(actual, expected, "gather");
        var broadcast = new float[3 * columns];
        Managed.BroadcastRows(Specials, broadcast);
        var actualBroadcast = Within("broadcast", () =>
        {
            using var row = Device(Specials);
            using var d = Device(new float[3 * columns]);
            _ops!.BroadcastRows(row.View, d.View);
            return d.GetAsArray1D();
        });
        AssertSame(actualBroadcast, broadcast, "broadcast");
    }

    /// <summary>NaN in A, ∞ in B (∞ · 0 is NaN, ∞ · x is ±∞), NaN in C with beta = 1 (kept) and with beta = 0 (not read), on both kernels.</summary>
    [Test]
    public void Gemm_PropagatesNaNAndInfinities_AndHonoursBeta([Values(GemmProvider.Tiled, GemmProvider.Simple)] GemmProvider provider, [Values(0f, 1f)] float beta)
    {
        const int m = 5, n = 6, k = 7;
        var random = new Random(6);
        var a = TestData.UniformSingle(random, m * k);
        var b = TestData.UniformSingle(random, k * n);
        var c = TestData.UniformSingle(random, m * n);
        a[1 * k + 2] = float.NaN;
        b[3 * n + 4] = float.PositiveInfinity;
        a[2 * k + 3] = 0;                         // row 2 · column 4: ∞ · 0
        c[4 * n + 1] = float.NaN;
        var expected = (float[])c.Clone();
        Managed.Gemm(false, false, m, n, k, 1f, a, k, b, n, beta, expected, n);
        var actual = Within("gemm", () =>
        {
            using var gemm = new IlgpuGemm(Gpu.Accelerator, Gpu.Kernels, provider);
            using var da = Device(a);
            using var db = Device(b);
            using var dc = Device(c);
            gemm.Sgemm(false, false, m, n, k, 1f, da.View, k, db.View, n, beta, dc.View, n);
            return dc.GetAsArray1D();
        });
        AssertSame(actual, expected, $"{provider} beta {beta}");
    }

    // ---- the sequence models end to end ----

    private static RecurrentLayer Layer(CellKind cell, int input, int hidden, IRnnBackend backend) => cell switch
    {
        CellKind.Lstm => new Lstm(input, hidden, backend: backend, seed: 3),
        CellKind.GruResetAfter => new Gru(input, hidden, variant: GruVariant.ResetAfter, backend: backend, seed: 3),
        _ => new ElmanRnn(input, hidden, activation: RnnActivation.Relu, backend: backend, seed: 3),
    };

    /// <summary>
    /// A NaN in the stack's W_hh: the loss is NaN and so are gradients, on both schedules. The embedding's gradient is
    /// the atomic scatter over repeated tokens, the bias gradients group reductions: both used to spin forever here.
    /// </summary>
    [Test]
    public void RecurrentSequenceModel_TrainWithNaNParameter_ReturnsNaNLoss(
        [Values(CellKind.Lstm, CellKind.GruResetAfter, CellKind.RnnRelu)] CellKind cell, [Values] SequenceLoss loss, [Values] TrainingSchedule schedule)
    {
        const int steps = 4, batch = 3, output = 3;
        using var model = new RecurrentSequenceModel(Layer(cell, 2, 3, _fused!), output, loss, loss == SequenceLoss.SoftmaxCrossEntropy ? 0 : null, seed: 2);
        model.Recurrent.Parameters.All.First(p => p.Name.StartsWith("weight_hh")).Value.Span[1] = float.NaN;
        var targets = SequenceOutputRecurrentTests.RandomTargets(loss, new SequenceOutputRecurrentTests.Shape(steps, batch, 0, 3, output), new Random(1));
        float value = Within($"{cell} sequence model training", () => model.Train(targets, schedule));
        Assert.That(value, Is.NaN, "loss");
        var gradients = model.Parameters.All.Select(p => (p.Name, p.Grad.ToArray()));
        foreach (var (name, grad) in gradients)
            Assert.That(grad.Any(float.IsNaN), Is.True, $"{name} gradient holds no NaN");
    }

    /// <summary>
    /// Token feedback with external input (so the step runs over all T·N rows): a NaN hidden bias makes the loss NaN, and
    /// the feedback weight's gradient, a scatter over repeated fed-back tokens, holds NaN instead of hanging.
    /// </summary>
    [Test]
    public void OutputRecurrentNetwork_TrainWithTokenFeedbackAndNaNParameter_ReturnsNaNLoss([Values] TrainingSchedule schedule, [Values] RnnActivation activation)
    {
        var shape = new SequenceOutputRecurrentTests.Shape(4, 3, 2, 3, 3);
        using var network = new OutputRecurrentNetwork(shape.Input, shape.Hidden, shape.Output, SequenceLoss.SoftmaxCrossEntropy, activation, startToken: 0, seed: 4, device: _fused);
        network.Parameters["hidden_bias"].Value.Span[1] = float.NaN;
        var random = new Random(5);
        var x = new FloatTensor(TestData.UniformSingle(random, shape.Steps * shape.Batch * shape.Input), shape.Steps, shape.Batch, shape.Input);
        var targets = SequenceOutputRecurrentTests.RandomTargets(SequenceLoss.SoftmaxCrossEntropy, shape, random);
        float value = Within("output-recurrent training", () => network.Train(x, targets, schedule));
        Assert.That(value, Is.NaN, "loss");
        Assert.That(network.Parameters["feedback_weight"].Grad.ToArray().Any(float.IsNaN), Is.True, "feedback_weight gradient holds no NaN");
    }

    // ---- one backend from several threads ----

    /// <summary>
    /// Four threads run forward and backward of one layer on one backend at once, each many times: the backend serialises
    /// them, so the accumulated gradients are the serial sum to rounding.
    /// </summary>
    [Test]
    public void OneBackendFromFourThreads_AccumulatesTheSerialSumOfGradients([Values] bool fused)
    {
        const int threads = 4, repeats = 2;
        var backend = fused ? _fused! : _unfused!;
        var layer = new Gru(3, 4, variant: GruVariant.ResetBefore, backend: backend, seed: 9);
        var inputs = Enumerable.Range(0, threads).Select(i => new FloatTensor(TestData.UniformSingle(new Random(i), 3 * 2 * 3), 3, 2, 3)).ToArray();
        void Step(FloatTensor x)
        {
            using var forward = layer.Forward(x, keepForBackward: true);
            layer.Backward(forward, forward.Output);
        }
        layer.ZeroGrad();
        for (int r = 0; r < repeats; r++)
            foreach (var x in inputs) Within("serial step", () => Step(x));
        var serial = layer.Parameters.All.Select(p => p.Grad.ToArray().Select(v => (double)v).ToArray()).ToArray();

        layer.ZeroGrad();
        Within("four threads", () =>
        {
            using var start = new Barrier(threads);
            var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
            var workers = inputs.Select(x => new Thread(() =>
            {
                try
                {
                    start.SignalAndWait();
                    for (int r = 0; r < repeats; r++) Step(x);
                }
                catch (Exception e)
                {
                    failures.Enqueue(e);
                }
            }) { IsBackground = true }).ToArray();
            foreach (var w in workers) w.Start();
            foreach (var w in workers) w.Join();
            if (!failures.IsEmpty) throw new AggregateException(failures);
        });
        var all = layer.Parameters.All;
        for (int p = 0; p < all.Count; p++)
            Assertions.AllClose(all[p].Grad.ToArray(), serial[p], Tolerances.Float32, $"{all[p].Name} from {threads} threads");
    }
}
