using NUnit.Framework;
using Recurrent.Kernels.Cpu;
using Recurrent.Reference;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// NaN and ±∞ that arise inside a pass of the native backend (a parameter that holds NaN, an input that is infinite, a
/// product that overflows) come out as IEEE arithmetic gives them, as the double reference and PyTorch do: NaN stays
/// NaN, ±∞ saturates tanh and sigmoid to their limits. Every cell, every instruction-set path, fused and unfused,
/// forward and backward, element by element against <see cref="ReferenceRnn"/>.
/// </summary>
/// <remarks>
/// The passes are run through the backend, not a layer: what a layer does with a NaN parameter before the backend sees
/// it is a policy of its own.
/// </remarks>
[TestFixture]
public class NonFiniteNativeTests
{
    private static readonly NativeIsa[] Isas = [NativeIsa.Auto, NativeIsa.Avx2, NativeIsa.Portable];

    private static IEnumerable<TestCaseData> PathCases() =>
        from isa in Isas
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        select new TestCaseData(isa, cell, fused).SetArgDisplayNames(isa.ToString(), cell.ToString(), fused ? "fused" : "unfused");

    private static IEnumerable<TestCaseData> ParameterCases() =>
        from isa in Isas
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        from spec in ParameterSpec.RnnBase
        select new TestCaseData(isa, cell, fused, spec).SetArgDisplayNames(isa.ToString(), cell.ToString(), fused ? "fused" : "unfused", spec.Stem);

    /// <summary>The example: ElmanRnn(1, 1), every parameter 0 but weight_ih_l0[0] = NaN, x = [[[1]]] gave −1 (relu: 0).</summary>
    [TestCaseSource(nameof(PathCases))]
    public void Forward_GivesNaN_WhenTheOnlyInputWeightIsNaN(NativeIsa isa, CellKind cell, bool fused)
    {
        var config = new RnnConfig(cell, 1, 1);
        var parameters = new RnnParameters(config);  // zeros
        parameters[0, 0, ParameterSpec.WeightIH].Value.Span[0] = float.NaN;
        var (y, hN, cN) = Outputs(config, 1, 1);
        var c0 = cell.HasCellState() ? new FloatTensor(config.StateShape(1)) : null;
        OnIsa(isa, () => new NativeCpuBackend(fused).Forward(parameters, new FloatTensor([1f], 1, 1, 1), new FloatTensor(config.StateShape(1)), c0, y, hN, cN, false));
        // Every cell's h depends on the first gate's pre-activation (LSTM: i multiplies the candidate into c).
        Assert.That(float.IsNaN(y.Span[0]), $"y = {y.Span[0]}");
        Assert.That(float.IsNaN(hN.Span[0]), $"hN = {hN.Span[0]}");
    }

    /// <summary>
    /// A NaN in one element of a parameter, in each gate's rows in turn, at T=1 (where most of the output stays finite,
    /// so a dropped or an invented NaN shows) and at T=3 both directions (where it spreads through the recurrence).
    /// </summary>
    [TestCaseSource(nameof(ParameterCases))]
    public void ForwardAndBackward_GiveNaNWhereTheReferenceDoes_WhenAParameterHoldsNaN(NativeIsa isa, CellKind cell, bool fused, ParameterSpec spec)
    {
        const int hidden = 17;  // 16 + 1 and 8·2 + 1: a NaN in a full vector and in the scalar remainder
        foreach (var (steps, bidirectional) in new[] { (1, false), (3, true) })
            for (int gate = 0; gate < cell.GateCount(); gate++)
            {
                var config = new RnnConfig(cell, 5, hidden, numLayers: 1, bidirectional);
                var parameters = new RnnParameters(config);
                parameters.Reset(7);
                var values = parameters[0, 0, spec].Value.Span;
                int columns = values.Length / (cell.GateCount() * hidden);
                // Unit 16 of the gate: the remainder lane of a 16- or 8-wide row; a mid column.
                values[(gate * hidden + 16) * columns + columns / 2] = float.NaN;
                var random = new Random(steps * 10 + gate);
                var x = new FloatTensor(TestData.UniformSingle(random, steps * 2 * 5), steps, 2, 5);
                OnIsa(isa, () => AssertSameAsReference(new NativeCpuBackend(fused), parameters, x, random, $"T{steps} gate {gate}"));
            }
    }

    /// <summary>
    /// ±∞ in x with moderate weights: pre-activations ±∞ (tanh, sigmoid saturate to exactly ±1, 0, 1; relu passes ∞ on
    /// to the next step and layer), then 0·∞ = NaN in dW_ih where a saturated gate's derivative (exactly 0) meets the
    /// infinite x. With both signs in one row of x, w·∞ terms of opposite signs meet: NaN pre-activations.
    /// </summary>
    [TestCaseSource(nameof(InfinityCases))]
    public void ForwardAndBackward_MatchTheReference_WhenTheInputHoldsInfinities(NativeIsa isa, CellKind cell, bool fused, bool bothSignsInARow)
    {
        const int steps = 3, batch = 2, input = 5, hidden = 17;
        var config = new RnnConfig(cell, input, hidden, numLayers: 2, bidirectional: true);
        var parameters = new RnnParameters(config);
        parameters.Reset(5);
        var random = new Random(3);
        var x = new FloatTensor(TestData.UniformSingle(random, steps * batch * input), steps, batch, input);
        x.Span[1] = float.PositiveInfinity;                      // t 0, n 0
        x.Span[(batch + 1) * input + 2] = float.NegativeInfinity;  // t 1, n 1
        if (bothSignsInARow)
        {
            x.Span[2 * batch * input + 3] = float.PositiveInfinity;  // t 2, n 0
            x.Span[2 * batch * input + 4] = float.NegativeInfinity;
        }
        OnIsa(isa, () => AssertSameAsReference(new NativeCpuBackend(fused), parameters, x, random, "∞ in x"));
    }

    private static IEnumerable<TestCaseData> InfinityCases() =>
        from isa in Isas
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        from both in new[] { false, true }
        select new TestCaseData(isa, cell, fused, both).SetArgDisplayNames(isa.ToString(), cell.ToString(), fused ? "fused" : "unfused", both ? "both signs in a row" : "one per row");

    /// <summary>
    /// ±∞ in dy, one sign per element of the bias gradients (T=1): each gate's gradient is ±∞ as d times the
    /// derivative is, not the NaN of d − d·h² (∞ − ∞).
    /// </summary>
    [TestCaseSource(nameof(PathCases))]
    public void Backward_MatchesTheReference_WhenTheOutputGradientHoldsInfinities(NativeIsa isa, CellKind cell, bool fused)
    {
        var config = new RnnConfig(cell, 5, 17);
        var parameters = new RnnParameters(config);
        parameters.Reset(6);
        var random = new Random(8);
        var x = new FloatTensor(TestData.UniformSingle(random, 2 * 5), 1, 2, 5);
        OnIsa(isa, () => AssertSameAsReference(new NativeCpuBackend(fused), parameters, x, random, "∞ in dy", dy =>
        {
            dy.Span[3] = float.PositiveInfinity;        // n 0, unit 3
            dy.Span[17 + 16] = float.NegativeInfinity;  // n 1, unit 16 (a vector remainder)
        }));
    }

    /// <summary>
    /// Products of finite values that overflow float (1e30 · 1e30): ±∞ pre-activations, saturated as the reference's
    /// ±1e60 are. One input feature, so no two infinite products of opposite signs meet in a sum (in double they are
    /// finite and cancel, in float they give NaN: a difference of precision, not of NaN handling). relu's ∞ output
    /// feeds W_hh·h the same way, so relu runs one step.
    /// </summary>
    [TestCaseSource(nameof(PathCases))]
    public void ForwardAndBackward_MatchTheReference_WhenAProductOverflows(NativeIsa isa, CellKind cell, bool fused)
    {
        int steps = cell == CellKind.RnnRelu ? 1 : 3;
        const int batch = 3, hidden = 17;
        var config = new RnnConfig(cell, 1, hidden);
        var parameters = new RnnParameters(config);
        parameters.Reset(9);
        var random = new Random(4);
        var weights = parameters[0, 0, ParameterSpec.WeightIH].Value.Span;
        for (int i = 0; i < weights.Length; i++) weights[i] = random.Next(2) == 0 ? 1e30f : -1e30f;
        var x = new FloatTensor(Enumerable.Range(0, steps * batch).Select(_ => random.Next(2) == 0 ? 1e30f : -1e30f).ToArray(), steps, batch, 1);
        OnIsa(isa, () => AssertSameAsReference(new NativeCpuBackend(fused), parameters, x, random, "1e30 · 1e30"));
    }

    /// <summary>
    /// The table path gives what dense x does: an id of −1 is a zero row, and 0 · NaN is NaN, in the projection (a NaN
    /// in W_ih) and in dW_ih (a NaN gradient at a −1 row, here from dy at T=1, where no other row carries it).
    /// </summary>
    [TestCaseSource(nameof(TableCases))]
    public void FromTable_GivesNaNWhereDenseInputDoes(CellKind cell, bool fused, bool nanInWeights)
    {
        const int batch = 4, input = 3, hidden = 17, vocab = 2;
        int steps = nanInWeights ? 2 : 1;
        var config = new RnnConfig(cell, input, hidden);
        var parameters = new RnnParameters(config);
        parameters.Reset(2);
        if (nanInWeights) parameters[0, 0, ParameterSpec.WeightIH].Value.Span[5 * input + 1] = float.NaN;
        var random = new Random(6);
        var table = TestData.UniformSingle(random, vocab * input);
        int[] ids = [.. Enumerable.Range(0, steps * batch).Select(r => r % 4 == 1 ? -1 : r % vocab)];
        var x = new FloatTensor(steps, batch, input);
        for (int r = 0; r < ids.Length; r++)
            if (ids[r] >= 0) table.AsSpan(ids[r] * input, input).CopyTo(x.Span.Slice(r * input, input));
        int[] state = config.StateShape(batch);
        FloatTensor h0 = new(TestData.UniformSingle(random, batch * hidden), state), dhN = new(state);
        FloatTensor? c0 = cell.HasCellState() ? new FloatTensor(TestData.UniformSingle(random, batch * hidden), state) : null;
        FloatTensor? dcN = cell.HasCellState() ? new FloatTensor(state) : null;
        var dy = new FloatTensor(TestData.UniformSingle(random, steps * batch * hidden), steps, batch, hidden);
        if (!nanInWeights) dy.Span[1 * hidden + 4] = float.NaN;  // row 1 has id −1
        var backend = new NativeCpuBackend(fused);

        var (yDense, hNDense, cNDense) = Outputs(config, steps, batch);
        var (dx, dh0, dc0) = (new FloatTensor(steps, batch, input), new FloatTensor(state), c0 is null ? null : new FloatTensor(state));
        using (var tape = backend.Forward(parameters, x, h0, c0, yDense, hNDense, cNDense, keepForBackward: true)!)
            backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        var denseGrads = parameters.All.Select(p => p.Grad.ToArray()).ToArray();
        parameters.ZeroGrad();

        var (y, hN, cN) = Outputs(config, steps, batch);
        var tableGradient = new float[table.Length];
        using (var tape = backend.ForwardFromTable(parameters, new DirectionwiseBackend.TableInput(table, vocab, ids), h0, c0, y, hN, cN, keepForBackward: true)!)
            backend.BackwardFromTable(parameters, tape, dy, dhN, dcN, tableGradient, new FloatTensor(state), c0 is null ? null : new FloatTensor(state));

        NonFinite.AssertSame(y.ToArray(), Widen(yDense.ToArray()), Tolerances.Float32, "y");
        NonFinite.AssertSame(hN.ToArray(), Widen(hNDense.ToArray()), Tolerances.Float32, "hN");
        for (int i = 0; i < denseGrads.Length; i++)
            NonFinite.AssertSame(parameters.All[i].Grad.ToArray(), Widen(denseGrads[i]), Tolerances.Float32, parameters.All[i].Name);
        // (relu passes a finite gradient through a NaN h, so a NaN weight leaves its gradients finite.)
        if (!nanInWeights || cell != CellKind.RnnRelu)
            Assert.That(parameters[0, 0, ParameterSpec.WeightIH].Grad.ToArray().Any(float.IsNaN), "the case carries a NaN into dW_ih");
    }

    private static IEnumerable<TestCaseData> TableCases() =>
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        from nanInWeights in new[] { true, false }
        select new TestCaseData(cell, fused, nanInWeights).SetArgDisplayNames(cell.ToString(), fused ? "fused" : "unfused", nanInWeights ? "NaN in W_ih" : "NaN in dy");

    /// <summary>
    /// A variable-length batch (packed: a pass reads only the rows of running sequences): NaN in x and dy past the ends of
    /// sequences is never read, so nothing comes out NaN, as in the reference; a NaN inside a sequence stays in that
    /// sequence's rows of y, the states and dx (rows never mix) and reaches the weight gradients, where the reference has it.
    /// </summary>
    [TestCaseSource(nameof(LengthsCases))]
    public void ForwardAndBackward_WithLengths_ReadNoNaNPastTheEnds_AndKeepASequencesNaNInIt(NativeIsa isa, CellKind cell, bool fused, bool nanInASequence)
    {
        const int steps = 4, batch = 3, input = 5, hidden = 17;
        int[] lengths = [2, 4, 1];
        var config = new RnnConfig(cell, input, hidden, numLayers: 2, bidirectional: true);
        var parameters = new RnnParameters(config);
        parameters.Reset(12);
        var random = new Random(13);
        var x = new FloatTensor(TestData.UniformSingle(random, steps * batch * input), steps, batch, input);
        int Row(int t, int n) => (t * batch + n) * input;
        x.Span.Slice(Row(3, 0), input).Fill(float.NaN);  // sequence 0 ended at step 1
        for (int t = 1; t < steps; t++) x.Span[Row(t, 2) + t] = float.NaN;  // sequence 2 ended at step 0
        if (nanInASequence) x.Span[Row(2, 1) + 3] = float.NaN;
        OnIsa(isa, () => AssertSameAsReference(new NativeCpuBackend(fused), parameters, x, random, nanInASequence ? "NaN in sequence 1" : "NaN past the ends",
            dy =>
            {
                dy.Span[(2 * batch + 0) * config.OutputSize + 16] = float.NaN;
                dy.Span[(3 * batch + 2) * config.OutputSize + 20] = float.NaN;
            }, lengths));
    }

    private static IEnumerable<TestCaseData> LengthsCases() =>
        from isa in Isas
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        from inside in new[] { false, true }
        select new TestCaseData(isa, cell, fused, inside).SetArgDisplayNames(isa.ToString(), cell.ToString(), fused ? "fused" : "unfused",
            inside ? "NaN in a sequence" : "NaN past the ends");

    private static void AssertSameAsReference(NativeCpuBackend backend, RnnParameters parameters, FloatTensor x, Random random, string what,
        Action<FloatTensor>? editDy = null, int[]? lengths = null)
    {
        var config = parameters.Config;
        int steps = x.Shape[0], batch = x.Shape[1];
        int[] state = config.StateShape(batch);
        bool hasCell = config.Cell.HasCellState();
        FloatTensor Random(int[] shape) => new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);
        FloatTensor h0 = Random(state), dhN = Random(state), dy = Random([steps, batch, config.OutputSize]);
        FloatTensor? c0 = hasCell ? Random(state) : null, dcN = hasCell ? Random(state) : null;
        editDy?.Invoke(dy);

        var reference = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Widen(x.ToArray()), steps, batch, Widen(h0.ToArray()), c0 is null ? null : Widen(c0.ToArray()),
            lengths);
        var expected = ReferenceRnn.Backward(reference, Widen(dy.ToArray()), Widen(dhN.ToArray()), dcN is null ? null : Widen(dcN.ToArray()));

        var (y, hN, cN) = Outputs(config, steps, batch);
        backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: false, lengths);
        NonFinite.AssertSame(y.ToArray(), reference.Output, Tolerances.Float32, $"{what}: inference y");
        if (cN is not null) NonFinite.AssertSame(cN.ToArray(), reference.CellN!, Tolerances.Float32, $"{what}: inference cN");

        (y, hN, cN) = Outputs(config, steps, batch);
        parameters.ZeroGrad();
        var dx = new FloatTensor([.. x.Shape]);
        var dh0 = new FloatTensor(state);
        var dc0 = hasCell ? new FloatTensor(state) : null;
        using (var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true, lengths)!)
        {
            NonFinite.AssertSame(y.ToArray(), reference.Output, Tolerances.Float32, $"{what}: y");
            NonFinite.AssertSame(hN.ToArray(), reference.HiddenN, Tolerances.Float32, $"{what}: hN");
            if (cN is not null) NonFinite.AssertSame(cN.ToArray(), reference.CellN!, Tolerances.Float32, $"{what}: cN");
            backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        }
        NonFinite.AssertSame(dx.ToArray(), expected.Input, Tolerances.Float32, $"{what}: dx");
        NonFinite.AssertSame(dh0.ToArray(), expected.HiddenZero, Tolerances.Float32, $"{what}: dh0");
        if (dc0 is not null) NonFinite.AssertSame(dc0.ToArray(), expected.CellZero!, Tolerances.Float32, $"{what}: dc0");
        for (int i = 0; i < parameters.All.Count; i++)
            NonFinite.AssertSame(parameters.All[i].Grad.ToArray(), expected.Weights.Values[i], Tolerances.Float32, $"{what}: grad {parameters.All[i].Name}");
    }

    private static (FloatTensor Y, FloatTensor HN, FloatTensor? CN) Outputs(RnnConfig config, int steps, int batch) =>
        (new FloatTensor(steps, batch, config.OutputSize), new FloatTensor(config.StateShape(batch)),
            config.Cell.HasCellState() ? new FloatTensor(config.StateShape(batch)) : null);

    private static double[] Widen(float[] values) => Array.ConvertAll(values, v => (double)v);

    private static void OnIsa(NativeIsa isa, Action body)
    {
        try
        {
            NativeLibrary.Isa = isa;
            Assert.That(NativeLibrary.Isa, Is.LessThanOrEqualTo(isa == NativeIsa.Auto ? NativeIsa.Avx512 : isa));
            body();
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
    }
}

/// <summary>
/// The managed pointwise passes of the sequence models (<see cref="CpuMatrixOps"/>' Vector512 bodies and scalar
/// remainders, <see cref="ManagedMatrixOps{T}"/> in float) on NaN, ±∞ and ±0 against the double reference, at every
/// length 0..33 (every remainder of 16-wide vectors) with the special value at every position.
/// </summary>
[TestFixture]
public class NonFiniteSequenceOpsTests
{
    private static readonly float[] Specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 1e30f, -1e30f, 100f, -100f];

    private static readonly ManagedMatrixOps<double> Reference = ManagedMatrixOps<double>.Instance;

    private static IEnumerable<TestCaseData> Implementations() =>
        new ManagedMatrixOps<float>[] { CpuMatrixOps.Instance, ManagedMatrixOps<float>.Instance }.Select(ops => new TestCaseData(ops.Name).SetArgDisplayNames(ops.Name));

    private static ManagedMatrixOps<float> Implementation(string name) =>
        name == CpuMatrixOps.Instance.Name ? CpuMatrixOps.Instance : ManagedMatrixOps<float>.Instance;

    [TestCaseSource(nameof(Implementations))]
    public void ActivationForwardAndBackward_KeepNaNAndInfinities(string implementation)
    {
        var ops = Implementation(implementation);
        var random = new Random(1);
        foreach (var activation in new[] { RnnActivation.Tanh, RnnActivation.Relu })
            foreach (var (values, what) in SpecialArrays(random))
            {
                var actual = (float[])values.Clone();
                var expected = Array.ConvertAll(values, v => (double)v);
                ops.Activate(activation, actual);
                Reference.Activate(activation, expected);
                NonFinite.AssertSame(actual, expected, Tolerances.Float32, $"{activation} {what}");

                // The special value as the output h (relu: NaN h passes the gradient) and as the gradient.
                var gradient = TestData.UniformSingle(random, values.Length);
                var expectedGradient = Array.ConvertAll(gradient, v => (double)v);
                var sums = new float[values.Length];
                var expectedSums = new double[values.Length];
                ops.ActivationBackward(activation, actual, gradient, Math.Max(1, values.Length), sums);
                Reference.ActivationBackward(activation, Array.ConvertAll(actual, v => (double)v), expectedGradient, Math.Max(1, values.Length), expectedSums);
                NonFinite.AssertSame(gradient, expectedGradient, Tolerances.Float32, $"{activation} backward (special h) {what}");
                var h = TestData.UniformSingle(random, values.Length);
                gradient = (float[])values.Clone();
                expectedGradient = Array.ConvertAll(values, v => (double)v);
                ops.ActivationBackward(activation, h, gradient, Math.Max(1, values.Length), sums);
                Reference.ActivationBackward(activation, Array.ConvertAll(h, v => (double)v), expectedGradient, Math.Max(1, values.Length), expectedSums);
                NonFinite.AssertSame(gradient, expectedGradient, Tolerances.Float32, $"{activation} backward (special gradient) {what}");
            }
    }

    [TestCaseSource(nameof(Implementations))]
    public void Losses_AreNaN_WhereTheReferenceIs(string implementation)
    {
        var ops = Implementation(implementation);
        var random = new Random(2);
        foreach (var (values, what) in SpecialArrays(random))
        {
            if (values.Length == 0) continue;
            int target = values.Length / 2;
            var logits = (float[])values.Clone();
            var expectedLogits = Array.ConvertAll(values, v => (double)v);
            float loss = ops.SoftmaxCrossEntropy(logits, values.Length, [target], 0.5f);
            double expectedLoss = Reference.SoftmaxCrossEntropy(expectedLogits, values.Length, [target], 0.5);
            NonFinite.AssertSame([loss], [expectedLoss], Tolerances.Float32, $"cross-entropy loss {what}");
            NonFinite.AssertSame(logits, expectedLogits, Tolerances.Float32, $"cross-entropy gradient {what}");

            var counts = TestData.UniformSingle(random, values.Length).Select(Math.Abs).ToArray();
            logits = (float[])values.Clone();
            expectedLogits = Array.ConvertAll(values, v => (double)v);
            loss = ops.SoftmaxCrossEntropyCounts(logits, values.Length, counts, 0.5f);
            expectedLoss = Reference.SoftmaxCrossEntropyCounts(expectedLogits, values.Length, Array.ConvertAll(counts, v => (double)v), 0.5);
            NonFinite.AssertSame([loss], [expectedLoss], Tolerances.Float32, $"counts loss {what}");
            NonFinite.AssertSame(logits, expectedLogits, Tolerances.Float32, $"counts gradient {what}");

            var output = (float[])values.Clone();
            var expectedOutput = Array.ConvertAll(values, v => (double)v);
            var target2 = TestData.UniformSingle(random, values.Length);
            loss = ops.SquaredError(output, target2, 0.5f);
            expectedLoss = Reference.SquaredError(expectedOutput, Array.ConvertAll(target2, v => (double)v), 0.5);
            NonFinite.AssertSame([loss], [expectedLoss], Tolerances.Float32, $"squared error {what}");
            NonFinite.AssertSame(output, expectedOutput, Tolerances.Float32, $"squared error gradient {what}");
        }
    }

    /// <summary>As torch.argmax: a NaN is the largest value, the first one wins.</summary>
    [TestCaseSource(nameof(Implementations))]
    public void ArgMax_PicksTheFirstNaN(string implementation)
    {
        var ops = Implementation(implementation);
        float[] values = [1, float.NaN, 5, float.NaN, 2, 3, float.NegativeInfinity, 0, 9, 1, 2, 3, float.NaN, 4];
        var ids = new int[5];
        ops.ArgMaxRows(values[..10], 2, ids);  // rows [1, NaN], [5, NaN], [2, 3], [−∞, 0], [9, 1]
        Assert.That(ids, Is.EqualTo(new[] { 1, 1, 1, 1, 0 }));
        Assert.That(TeacherForcing.ArgMax<float>([float.NaN, 2, float.NaN]), Is.EqualTo(0));
        Assert.That(TeacherForcing.ArgMax<float>([float.PositiveInfinity, 2, float.NaN, 7]), Is.EqualTo(2));
    }

    /// <summary>Random arrays of every length 0..33 with each special value at every position.</summary>
    internal static IEnumerable<(float[] Values, string What)> SpecialArrays(Random random)
    {
        yield return ([], "length 0");
        for (int length = 1; length <= 33; length++)
            for (int position = 0; position < length; position++)
                foreach (float special in Specials)
                {
                    var values = TestData.UniformSingle(random, length, bound: 3);
                    values[position] = special;
                    yield return (values, $"length {length}, {special} at {position}");
                }
    }
}

internal static class NonFinite
{
    /// <summary>
    /// NaN exactly where expected is NaN, ±∞ exactly where expected rounded to float is ±∞, and the finite elements
    /// within the tolerance (AllClose treats ∞ = ∞ as a mismatch).
    /// </summary>
    public static void AssertSame(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, Tolerance tolerance, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], e = expected[i], rounded = (float)e;
            bool same = double.IsNaN(e) ? double.IsNaN(a)
                : double.IsInfinity(rounded) ? a == rounded
                : double.IsFinite(a) && Math.Abs(a - e) <= tolerance.Absolute + tolerance.Relative * Math.Abs(e);
            if (!same) Assert.Fail($"{what}: element {i} is {a:R}, expected {e:R}.");
        }
    }
}
