using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// What every <see cref="IRnnBackend"/> promises, as one body: forward and backward through the layer API against the
/// double reference (<see cref="ReferenceRnn"/>), gradients that add up over backward calls, inference equal to training
/// forward, table input equal to the gathered dense input, and backward unchanged by inputs changed after forward.
/// Each backend has a fixture in the test assembly that derives this class and opens the backend in
/// <see cref="CreateBackend"/>. A fixture narrows the shapes by declaring its own <c>static new Cases()</c>: NUnit looks a
/// test case source up on the derived fixture's type.
/// </summary>
public abstract class BackendContractTests
{
    /// <summary>
    /// T=1 and N=1; H from 1 to 129, not multiples of 8 or 16, so every vector remainder runs; I ≠ H; 1, 2 and 3 layers;
    /// both directions. N=17 and N=9 with H=129 are large enough per step that the native fused path splits the batch
    /// among two or more threads (unevenly: 8 and 9 rows, 4 and 5); T·N = 72 is where ILGPU's bias gradients switch
    /// to the two-pass column sum.
    /// </summary>
    public static readonly TestData.Shape[] Shapes =
    [
        new(1, 1, 2, 1, 1, false),
        new(3, 2, 5, 3, 2, true),
        new(3, 2, 3, 4, 3, true),
        new(4, 1, 3, 17, 1, true),
        new(2, 3, 20, 33, 2, false),
        new(2, 2, 7, 65, 1, true),
        new(2, 2, 5, 129, 1, false),
        new(3, 17, 33, 129, 1, true),
        new(2, 9, 6, 129, 1, false),
        new(9, 8, 2, 3, 1, false),
    ];

    /// <summary>
    /// For a backend that simulates a device on the CPU (ILGPU's CPU accelerator, well under 1 GFLOP/s): T=1 N=1 H=1,
    /// two bidirectional layers, H=17 with I ≠ H, and T·N = 72.
    /// </summary>
    public static readonly TestData.Shape[] TinyShapes =
    [
        new(1, 1, 1, 1, 1, false),
        new(3, 2, 3, 5, 2, true),
        new(4, 3, 5, 17, 1, false),
        new(9, 8, 2, 3, 1, false),
    ];

    /// <summary>The shape of the tests that run once per cell: two layers, both directions, I ≠ H.</summary>
    protected virtual TestData.Shape PerCellShape => new(3, 2, 3, 5, 2, true);

    /// <summary>The backend under test, open from the fixture's one-time setup to its teardown.</summary>
    protected IRnnBackend Backend { get; private set; } = null!;

    /// <summary>Opens the backend; may <see cref="Assert.Ignore(string)"/> with the reason where it cannot run here.</summary>
    protected abstract IRnnBackend CreateBackend();

    /// <summary>Releases the backend and undoes what <see cref="CreateBackend"/> changed.</summary>
    protected virtual void CloseBackend() => (Backend as IDisposable)?.Dispose();

    [OneTimeSetUp]
    public void OpenBackend() => Backend = CreateBackend();

    [OneTimeTearDown]
    public void DisposeBackend()
    {
        if (Backend is not null) CloseBackend();
    }

    protected static IEnumerable<TestCaseData> CasesOf(IEnumerable<TestData.Shape> shapes) =>
        from cell in TestData.AllCells
        from shape in shapes
        select new TestCaseData(cell, shape).SetArgDisplayNames(cell.ToString(), shape.ToString());

    /// <summary>Every cell on every shape of <see cref="Shapes"/>; hidden by a fixture that needs fewer.</summary>
    protected static IEnumerable<TestCaseData> Cases() => CasesOf(Shapes);

    private static IEnumerable<CellKind> Cells() => TestData.AllCells;

    /// <summary>V below T·N (a backend's table path, where it has one) and V above it (the rows gathered into a dense x).</summary>
    private static IEnumerable<TestCaseData> TableCases() =>
        from cell in TestData.AllCells
        from fewerRowsThanUses in new[] { true, false }
        select new TestCaseData(cell, fewerRowsThanUses).SetArgDisplayNames(cell.ToString(), fewerRowsThanUses ? "V_below_TN" : "V_above_TN");

    [TestCaseSource(nameof(Cases))]
    public void ForwardAndBackward_MatchReference(CellKind cell, TestData.Shape shape)
    {
        var config = shape.Config(cell);
        int seed = Seed(cell, shape);
        var layer = TestLayers.Create(config, Backend, seed);
        var inputs = Inputs.Random(config, shape.Steps, shape.Batch, new Random(seed + 1));
        var (forward, expected) = Reference(layer.Parameters, inputs);

        // On the native backend inference has its own path: no tape, the output doubling as the state.
        using (var inference = layer.Forward(inputs.X, inputs.H0, inputs.C0))
            AssertOutputs(inference, forward, "inference ");
        using var training = layer.Forward(inputs.X, inputs.H0, inputs.C0, keepForBackward: true);
        AssertOutputs(training, forward, "");
        var actual = layer.Backward(training, inputs.Dy, inputs.DhN, inputs.DcN);
        AssertInputGradients(actual.Input.ToArray(), actual.InitialHidden, actual.InitialCell, expected);
        AssertParameterGradients(layer.Parameters, expected);
    }

    [TestCaseSource(nameof(Cells))]
    public void InferenceForward_EqualsTrainingForward(CellKind cell)
    {
        var config = PerCellShape.Config(cell);
        var layer = TestLayers.Create(config, Backend, seed: 3);
        var inputs = Inputs.Random(config, PerCellShape.Steps, PerCellShape.Batch, new Random(9));
        using var inference = layer.Forward(inputs.X, inputs.H0, inputs.C0);
        using var training = layer.Forward(inputs.X, inputs.H0, inputs.C0, keepForBackward: true);
        Assert.That(inference.CanBackward, Is.False, "inference keeps nothing for backward");
        Assert.That(inference.Output.ToArray(), Is.EqualTo(training.Output.ToArray()), "y");
        Assert.That(inference.HiddenState.ToArray(), Is.EqualTo(training.HiddenState.ToArray()), "hN");
        Assert.That(inference.CellState?.ToArray(), Is.EqualTo(training.CellState?.ToArray()), "cN");
    }

    /// <summary>
    /// At the backend's own interface dx, dh0 and dc0 are outputs (each call overwrites them, here filled with noise
    /// first), while the parameter gradients are added into what they hold, as PyTorch's autograd does.
    /// </summary>
    [TestCaseSource(nameof(Cells))]
    public void Backward_OverwritesInputGradients_AndAddsParameterGradients_WhenRunTwice(CellKind cell)
    {
        var config = PerCellShape.Config(cell);
        int steps = PerCellShape.Steps, batch = PerCellShape.Batch;
        var parameters = new RnnParameters(config);
        parameters.Reset(4);
        var random = new Random(5);
        var inputs = Inputs.Random(config, steps, batch, random);
        var (_, expected) = Reference(parameters, inputs);
        var before = parameters.All.Select(p => TestData.UniformSingle(random, p.Grad.Length)).ToArray();
        for (int i = 0; i < before.Length; i++) before[i].CopyTo(parameters.All[i].Grad.Span);

        int[] state = config.StateShape(batch);
        bool hasCell = cell.HasCellState();
        var y = new FloatTensor(steps, batch, config.OutputSize);
        FloatTensor hN = new(state), dh0 = Noise(random, state), dx = Noise(random, steps, batch, config.InputSize);
        FloatTensor? cN = hasCell ? new(state) : null, dc0 = hasCell ? Noise(random, state) : null;
        using var tape = Backend.Forward(parameters, inputs.X, inputs.H0, inputs.C0, y, hN, cN, keepForBackward: true)!;
        for (int call = 1; call <= 2; call++)
        {
            Backend.Backward(parameters, tape, inputs.Dy, inputs.DhN, inputs.DcN, dx, dh0, dc0);
            AssertInputGradients(dx.ToArray(), dh0, dc0, expected, $" after call {call}");
        }
        for (int i = 0; i < before.Length; i++)
        {
            var sum = new double[before[i].Length];
            for (int k = 0; k < sum.Length; k++) sum[k] = before[i][k] + 2 * expected.Weights.Values[i][k];
            Assertions.AllClose(parameters.All[i].Grad.ToArray(), sum, Tolerances.Float32, "grad " + parameters.All[i].Name + " after two calls");
        }
    }

    /// <summary>What forward keeps for backward is its own: x, h0 and c0 overwritten after it returns change nothing.</summary>
    [TestCaseSource(nameof(Cells))]
    public void Backward_IsUnchanged_WhenInputsAreOverwrittenAfterForward(CellKind cell)
    {
        var config = PerCellShape.Config(cell);
        var layer = TestLayers.Create(config, Backend, seed: 6);
        var inputs = Inputs.Random(config, PerCellShape.Steps, PerCellShape.Batch, new Random(11));
        var (_, expected) = Reference(layer.Parameters, inputs);
        using var forward = layer.Forward(inputs.X, inputs.H0, inputs.C0, keepForBackward: true);
        foreach (var t in new[] { inputs.X, inputs.H0, inputs.C0 })
            if (t is not null) t.Span.Fill(7f);
        var actual = layer.Backward(forward, inputs.Dy, inputs.DhN, inputs.DcN);
        AssertInputGradients(actual.Input.ToArray(), actual.InitialHidden, actual.InitialCell, expected);
        AssertParameterGradients(layer.Parameters, expected);
    }

    /// <summary>
    /// <see cref="RecurrentLayer.ForwardFromTable"/> and <see cref="RecurrentLayer.BackwardFromTable"/> against
    /// <see cref="RecurrentLayer.Forward"/> and <see cref="RecurrentLayer.Backward"/> of the same layer on the gathered rows,
    /// with dx summed per table row. Repeated ids and −1 (a zero row); the table gradient is added into; the table and ids
    /// are overwritten between forward and backward, which must not matter.
    /// </summary>
    [TestCaseSource(nameof(TableCases))]
    public void FromTable_MatchesTheGatheredDenseRun(CellKind cell, bool fewerRowsThanUses) =>
        AssertTableFormsMatchGatheredDenseRun(cell, fewerRowsThanUses, PerCellShape.Steps, PerCellShape.Batch, seed: 3, withLengths: false);

    /// <summary>
    /// Lengths [N] in [1, T] in no particular order: one sequence runs all T steps, one (when N &gt; 1 and T &gt; 1) a single
    /// step, the rest anywhere between, so the running batch shrinks unevenly and the reverse direction starts at many steps.
    /// </summary>
    protected static int[] RandomLengths(int steps, int batch, Random random)
    {
        var lengths = Enumerable.Range(0, batch).Select(_ => 1 + random.Next(steps)).ToArray();
        lengths[random.Next(batch)] = steps;
        if (batch > 1 && steps > 1)
        {
            int shortest = random.Next(batch);
            if (lengths[shortest] != steps || lengths.Count(l => l == steps) > 1) lengths[shortest] = 1;
        }
        return lengths;
    }

    /// <summary>
    /// Per-sequence lengths (PyTorch's packed sequences, padded back) against the reference with the same lengths: y zero
    /// past each end, final states at each sequence's own end (the reverse direction starting there), dy past the ends
    /// ignored and dx zero there; inference and training forward alike. x past the ends holds noise, which must not be read.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void ForwardAndBackward_WithLengths_MatchReference(CellKind cell, TestData.Shape shape)
    {
        var config = shape.Config(cell);
        int seed = Seed(cell, shape) + 17;
        var layer = TestLayers.Create(config, Backend, seed);
        var random = new Random(seed + 1);
        var inputs = Inputs.Random(config, shape.Steps, shape.Batch, random);
        var lengths = RandomLengths(shape.Steps, shape.Batch, random);
        var (forward, expected) = Reference(layer.Parameters, inputs, lengths);

        using (var inference = layer.Forward(inputs.X, inputs.H0, inputs.C0, lengths: lengths))
            AssertOutputs(inference, forward, "inference ");
        using var training = layer.Forward(inputs.X, inputs.H0, inputs.C0, keepForBackward: true, lengths: lengths);
        AssertOutputs(training, forward, "");
        Assert.That(training.Lengths, Is.EqualTo(lengths), "the result records the lengths");
        AssertZeroPastEnds(training.Output.ToArray(), lengths, shape.Batch, config.OutputSize, "y");
        var actual = layer.Backward(training, inputs.Dy, inputs.DhN, inputs.DcN);
        AssertInputGradients(actual.Input.ToArray(), actual.InitialHidden, actual.InitialCell, expected);
        AssertZeroPastEnds(actual.Input.ToArray(), lengths, shape.Batch, config.InputSize, "dx");
        AssertParameterGradients(layer.Parameters, expected);
    }

    /// <summary>Lengths all equal to T are the dense batch, bit for bit.</summary>
    [TestCaseSource(nameof(Cells))]
    public void Forward_WithEveryLengthT_EqualsTheDenseRun(CellKind cell)
    {
        var config = PerCellShape.Config(cell);
        int steps = PerCellShape.Steps, batch = PerCellShape.Batch;
        var layer = TestLayers.Create(config, Backend, seed: 8);
        var inputs = Inputs.Random(config, steps, batch, new Random(12));
        using var dense = layer.Forward(inputs.X, inputs.H0, inputs.C0);
        using var full = layer.Forward(inputs.X, inputs.H0, inputs.C0, lengths: Enumerable.Repeat(steps, batch).ToArray());
        Assert.That(full.Output.ToArray(), Is.EqualTo(dense.Output.ToArray()), "y");
        Assert.That(full.HiddenState.ToArray(), Is.EqualTo(dense.HiddenState.ToArray()), "hN");
        Assert.That(full.CellState?.ToArray(), Is.EqualTo(dense.CellState?.ToArray()), "cN");
    }

    /// <summary>The table forms with lengths against the dense forms with the same lengths on the gathered rows.</summary>
    [TestCaseSource(nameof(TableCases))]
    public void FromTable_WithLengths_MatchesTheGatheredDenseRun(CellKind cell, bool fewerRowsThanUses) =>
        AssertTableFormsMatchGatheredDenseRun(cell, fewerRowsThanUses, PerCellShape.Steps + 2, PerCellShape.Batch + 2, seed: 4, withLengths: true);

    /// <summary>
    /// The body of the two table tests: forward and backward from a table (repeated ids, −1 rows) against the dense forms on
    /// the gathered rows, dx summed per table row, the table gradient added into; the table and ids overwritten between
    /// forward and backward.
    /// </summary>
    private void AssertTableFormsMatchGatheredDenseRun(CellKind cell, bool fewerRowsThanUses, int steps, int batch, int seed, bool withLengths)
    {
        var config = PerCellShape.Config(cell);
        int input = config.InputSize;
        int vocab = fewerRowsThanUses ? Math.Max(1, steps * batch / 2) : 2 * steps * batch;
        var layer = TestLayers.Create(config, Backend, seed);
        var random = new Random(vocab + 10 * (int)cell + seed);
        var inputs = Inputs.Random(config, steps, batch, random);
        var lengths = withLengths ? RandomLengths(steps, batch, random) : null;
        var table = new FloatTensor(TestData.UniformSingle(random, vocab * input), vocab, input);
        var ids = Enumerable.Range(0, steps * batch).Select(r => r % 5 == 4 ? -1 : random.Next(vocab)).ToArray();
        var x = new FloatTensor(steps, batch, input);
        for (int r = 0; r < ids.Length; r++)
            if (ids[r] >= 0) table.Span.Slice(ids[r] * input, input).CopyTo(x.Span.Slice(r * input, input));

        using var dense = layer.Forward(x, inputs.H0, inputs.C0, keepForBackward: true, lengths: lengths);
        var expected = layer.Backward(dense, inputs.Dy, inputs.DhN, inputs.DcN);
        var expectedGrads = layer.Parameters.All.Select(p => Widen(p.Grad)).ToArray();
        var tableGradient = new FloatTensor(TestData.UniformSingle(random, table.Length), vocab, input);
        var expectedTableGradient = Widen(tableGradient);
        for (int r = 0; r < ids.Length; r++)
            for (int i = 0; ids[r] >= 0 && i < input; i++) expectedTableGradient[ids[r] * input + i] += expected.Input.Span[r * input + i];
        layer.ZeroGrad();

        using var fromTable = layer.ForwardFromTable(table, ids, steps, batch, inputs.H0, inputs.C0, keepForBackward: true, lengths: lengths);
        Assertions.AllClose(fromTable.Output.ToArray(), Widen(dense.Output), Tolerances.Float32, "y");
        Assertions.AllClose(fromTable.HiddenState.ToArray(), Widen(dense.HiddenState), Tolerances.Float32, "hN");
        if (dense.CellState is not null) Assertions.AllClose(fromTable.CellState!.ToArray(), Widen(dense.CellState), Tolerances.Float32, "cN");
        table.Span.Fill(-3f);
        Array.Fill(ids, 0);
        var actual = layer.BackwardFromTable(fromTable, inputs.Dy, tableGradient, inputs.DhN, inputs.DcN);
        Assertions.AllClose(actual.InitialHidden.ToArray(), Widen(expected.InitialHidden), Tolerances.Float32, "dh0");
        if (expected.InitialCell is not null) Assertions.AllClose(actual.InitialCell!.ToArray(), Widen(expected.InitialCell), Tolerances.Float32, "dc0");
        Assertions.AllClose(tableGradient.ToArray(), expectedTableGradient, Tolerances.Float32, "table gradient");
        for (int p = 0; p < expectedGrads.Length; p++)
            Assertions.AllClose(layer.Parameters.All[p].Grad.ToArray(), expectedGrads[p], Tolerances.Float32, "grad " + layer.Parameters.All[p].Name);
    }

    /// <summary>Rows [T, N, F] at steps t ≥ lengths[n] are exactly zero.</summary>
    private static void AssertZeroPastEnds(float[] rows, int[] lengths, int batch, int features, string what)
    {
        for (int r = 0; r < rows.Length / features; r++)
            if (r / batch >= lengths[r % batch])
                for (int f = 0; f < features; f++)
                    if (rows[r * features + f] != 0)
                        Assert.Fail($"{what}[{r / batch}, {r % batch}, {f}] = {rows[r * features + f]} past the sequence's length {lengths[r % batch]}; expected 0.");
    }

    /// <summary>A forward pass's arguments and the loss seeds of its backward pass, seeded random.</summary>
    protected sealed record Inputs(FloatTensor X, FloatTensor H0, FloatTensor? C0, FloatTensor Dy, FloatTensor DhN, FloatTensor? DcN)
    {
        /// <summary>x [T, N, I], dy [T, N, D·H], h0, dhN and (LSTM) c0, dcN [L·D, N, H], uniform in [−1, 1].</summary>
        public static Inputs Random(RnnConfig config, int steps, int batch, Random random)
        {
            int[] state = config.StateShape(batch);
            bool hasCell = config.Cell.HasCellState();
            return new(Noise(random, steps, batch, config.InputSize), Noise(random, state), hasCell ? Noise(random, state) : null,
                Noise(random, steps, batch, config.OutputSize), Noise(random, state), hasCell ? Noise(random, state) : null);
        }
    }

    private static FloatTensor Noise(Random random, params int[] shape) =>
        new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);

    /// <summary>The reference's forward and backward in double on the float parameters and inputs (read before the pass runs).</summary>
    private static (ReferenceForward Forward, ReferenceGradients Gradients) Reference(RnnParameters parameters, Inputs inputs, int[]? lengths = null)
    {
        var forward = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Widen(inputs.X), inputs.X.Shape[0], inputs.X.Shape[1],
            Widen(inputs.H0), inputs.C0 is null ? null : Widen(inputs.C0), lengths);
        return (forward, ReferenceRnn.Backward(forward, Widen(inputs.Dy), Widen(inputs.DhN), inputs.DcN is null ? null : Widen(inputs.DcN)));
    }

    private static void AssertOutputs(RnnForwardResult actual, ReferenceForward expected, string what)
    {
        Assertions.AllClose(actual.Output.ToArray(), expected.Output, Tolerances.Float32, what + "y");
        Assertions.AllClose(actual.HiddenState.ToArray(), expected.HiddenN, Tolerances.Float32, what + "hN");
        Assert.That(actual.CellState is null, Is.EqualTo(expected.CellN is null), what + "cN present");
        if (actual.CellState is not null) Assertions.AllClose(actual.CellState.ToArray(), expected.CellN!, Tolerances.Float32, what + "cN");
    }

    private static void AssertInputGradients(float[] dx, FloatTensor dh0, FloatTensor? dc0, ReferenceGradients expected, string when = "")
    {
        Assertions.AllClose(dx, expected.Input, Tolerances.Float32, "dx" + when);
        Assertions.AllClose(dh0.ToArray(), expected.HiddenZero, Tolerances.Float32, "dh0" + when);
        Assert.That(dc0 is null, Is.EqualTo(expected.CellZero is null), "dc0 present");
        if (dc0 is not null) Assertions.AllClose(dc0.ToArray(), expected.CellZero!, Tolerances.Float32, "dc0" + when);
    }

    private static void AssertParameterGradients(RnnParameters parameters, ReferenceGradients expected)
    {
        for (int i = 0; i < parameters.All.Count; i++)
            Assertions.AllClose(parameters.All[i].Grad.ToArray(), expected.Weights.Values[i], Tolerances.Float32, "grad " + parameters.All[i].Name);
    }

    private static int Seed(CellKind cell, TestData.Shape shape) =>
        1000 * (int)cell + 31 * shape.Hidden + 7 * shape.Steps + shape.Batch + 3 * shape.Layers;

    private static double[] Widen(FloatTensor t) => Array.ConvertAll(t.ToArray(), v => (double)v);
}
