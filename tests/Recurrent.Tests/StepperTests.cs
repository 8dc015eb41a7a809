using NUnit.Framework;
using Recurrent.Kernels.Cpu;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// <see cref="RecurrentLayer.CreateStepper"/> on every backend (the native one on each instruction-set path, fused and
/// unfused): T steps equal one whole-sequence forward pass (outputs and final states), their backward steps equal the
/// double reference's whole-sequence backward (input, initial-state and parameter gradients), generation through it feeds
/// back what it emits, and bad states, steps, gradients, stale weights and disposal are refused.
/// </summary>
[TestFixture]
public class StepperTests
{
    /// <summary>T, N, I, H.</summary>
    public sealed record Shape(int Steps, int Batch, int Input, int Hidden)
    {
        public override string ToString() => $"T{Steps}_N{Batch}_I{Input}_H{Hidden}";
    }

    // H = 17 is not a multiple of any vector width; N = 16, H = 64 lets the native step split its batch among threads
    // (split_batch), as the sequence driver does, so both paths of forward_step run.
    private static readonly Shape[] NativeShapes = [new(1, 1, 1, 1), new(5, 3, 4, 17), new(3, 16, 8, 64)];
    // ILGPU's CPU accelerator is a simulator: tiny shapes only.
    private static readonly Shape[] TinyShapes = [new(3, 2, 3, 4)];

    public static IEnumerable<string> Backends => ["reference", "native-cpu", "native-cpu-unfused", "ilgpu-cpu", "ilgpu-cpu-unfused"];

    /// <summary><see cref="Backends"/> with the native backend on each instruction-set path as well as the widest one.</summary>
    public static IEnumerable<string> BackendsPerIsa =>
        [.. Backends, "native-avx2", "native-avx2-unfused", "native-portable", "native-portable-unfused"];

    internal static IRnnBackend CreateBackend(string name) => name switch
    {
        "reference" => ReferenceBackend.Instance,
        "native-cpu" or "native-avx2" or "native-portable" => new NativeCpuBackend(fused: true),
        "native-cpu-unfused" or "native-avx2-unfused" or "native-portable-unfused" => new NativeCpuBackend(fused: false),
        "ilgpu-cpu" => new IlgpuBackend(IlgpuDevice.Cpu, fused: true),
        "ilgpu-cpu-unfused" => new IlgpuBackend(IlgpuDevice.Cpu, fused: false),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>
    /// Runs <paramref name="body"/> on the backend <paramref name="name"/>: for the narrower native paths with the native library
    /// restricted to that instruction set (process-wide; NUnit runs these tests one at a time), restored afterwards; a path this
    /// CPU lacks is ignored with the reason.
    /// </summary>
    private static void OnBackend(string name, Action<IRnnBackend> body)
    {
        NativeIsa? isa = name.StartsWith("native-avx2") ? NativeIsa.Avx2 : name.StartsWith("native-portable") ? NativeIsa.Portable : null;
        var backend = CreateBackend(name);
        try
        {
            if (isa is { } level)
            {
                NativeLibrary.Isa = level;
                if (NativeLibrary.Isa != level)
                    Assert.Ignore($"This CPU cannot run the {level} kernels (its features: {NativeLibrary.CpuFeatures}).");
            }
            body(backend);
        }
        finally
        {
            if (isa is not null) NativeLibrary.Isa = NativeIsa.Auto;
            (backend as IDisposable)?.Dispose();
        }
    }

    private static IEnumerable<TestCaseData> PerIsaCases(string name) =>
        from backend in BackendsPerIsa
        from cell in TestData.AllCells
        from layers in new[] { 1, 2 }
        from shape in backend.StartsWith("ilgpu") ? TinyShapes : NativeShapes
        select new TestCaseData(backend, cell, layers, shape).SetName($"{name}_{backend}_{cell}_L{layers}_{shape}");

    private static IEnumerable<TestCaseData> StepCases() => PerIsaCases("Steps_MatchWholeSequenceForward");

    [TestCaseSource(nameof(StepCases))]
    public void Steps_MatchWholeSequenceForward(string backendName, CellKind cell, int layers, Shape shape) => OnBackend(backendName, backend =>
    {
        var config = new RnnConfig(cell, shape.Input, shape.Hidden, layers);
        var layer = TestLayers.Create(config, backend, seed: 4);
        var random = new Random(shape.GetHashCode() ^ (int)cell);
        int[] state = config.StateShape(shape.Batch);
        int ni = shape.Batch * shape.Input, nh = shape.Batch * shape.Hidden;
        var x = new FloatTensor(TestData.UniformSingle(random, shape.Steps * ni), shape.Steps, shape.Batch, shape.Input);
        var h0 = new FloatTensor(TestData.UniformSingle(random, layers * nh), state);
        var c0 = cell.HasCellState() ? new FloatTensor(TestData.UniformSingle(random, layers * nh), state) : null;
        using var whole = layer.Forward(x, h0, c0);

        using var stepper = layer.CreateStepper();
        Assert.That(stepper.HasResidentWeights, Is.EqualTo(backend is NativeCpuBackend or IlgpuBackend));
        var current = stepper.InitialState(shape.Batch, h0, c0);
        for (int t = 0; t < shape.Steps; t++)
        {
            var xt = new FloatTensor(x.Span.Slice(t * ni, ni).ToArray(), shape.Batch, shape.Input);
            var (output, next) = stepper.Step(xt, current);
            Assert.That(output.Shape, Is.EqualTo(new[] { shape.Batch, shape.Hidden }));
            Assertions.AllClose(output.ToArray(), Widen(whole.Output.Span.Slice(t * nh, nh)), Tolerances.Float32, $"y[{t}]");
            current = next;
        }
        Assertions.AllClose(current.Hidden.ToArray(), Widen(whole.HiddenState.ToArray()), Tolerances.Float32, "hN");
        if (c0 is not null) Assertions.AllClose(current.Cell!.ToArray(), Widen(whole.CellState!.ToArray()), Tolerances.Float32, "cN");
        else Assert.That(current.Cell, Is.Null);
    });

    private static IEnumerable<TestCaseData> BackwardCases() => PerIsaCases("StepBackward_MatchesWholeSequenceBackwardOfTheReference");

    /// <summary>
    /// T training steps, then their backward steps from the last to the first (each given the later one's state gradient),
    /// give the double reference's whole-sequence backward: dx, dh0, dc0 and every parameter gradient.
    /// </summary>
    [TestCaseSource(nameof(BackwardCases))]
    public void StepBackward_MatchesWholeSequenceBackwardOfTheReference(string backendName, CellKind cell, int layers, Shape shape) =>
        OnBackend(backendName, backend =>
        {
            var config = new RnnConfig(cell, shape.Input, shape.Hidden, layers);
            var layer = TestLayers.Create(config, backend, seed: 6);
            var reference = TestLayers.Create(config, ReferenceBackend.Instance, seed: 6);
            var data = new SequenceData(config, shape, new Random(shape.GetHashCode() ^ (int)cell ^ layers));
            using var whole = reference.Forward(data.X, data.H0, data.C0, keepForBackward: true);
            var expected = reference.Backward(whole, data.DY, data.DHN, data.DCN);

            using var stepper = layer.CreateStepper(training: true);
            Assert.That(stepper.Training, Is.True);
            var actual = StepThroughAndBack(stepper, data);
            Assertions.AllClose(actual.Input, Widen(expected.Input.ToArray()), Tolerances.Float32, "dx");
            Assertions.AllClose(actual.Hidden.ToArray(), Widen(expected.InitialHidden.ToArray()), Tolerances.Float32, "dh0");
            if (data.C0 is not null) Assertions.AllClose(actual.Cell!.ToArray(), Widen(expected.InitialCell!.ToArray()), Tolerances.Float32, "dc0");
            else Assert.That(actual.Cell, Is.Null);
            foreach (var (p, q) in layer.Parameters.All.Zip(reference.Parameters.All))
                Assertions.AllClose(p.Grad.ToArray(), Widen(q.Grad.ToArray()), Tolerances.Float32, p.Name);
        });

    /// <summary>Random x [T, N, I], h0 and c0 [L, N, H], dy [T, N, H], dhN and dcN [L, N, H] (c0 and dcN for LSTM only).</summary>
    private sealed class SequenceData
    {
        public SequenceData(RnnConfig config, Shape shape, Random random)
        {
            int[] state = config.StateShape(shape.Batch);
            int states = config.NumLayers * shape.Batch * shape.Hidden;
            bool hasCell = config.Cell.HasCellState();
            (Steps, Batch) = (shape.Steps, shape.Batch);
            X = new FloatTensor(TestData.UniformSingle(random, shape.Steps * shape.Batch * shape.Input), shape.Steps, shape.Batch, shape.Input);
            H0 = new FloatTensor(TestData.UniformSingle(random, states), state);
            C0 = hasCell ? new FloatTensor(TestData.UniformSingle(random, states), state) : null;
            DY = new FloatTensor(TestData.UniformSingle(random, shape.Steps * shape.Batch * shape.Hidden), shape.Steps, shape.Batch, shape.Hidden);
            DHN = new FloatTensor(TestData.UniformSingle(random, states), state);
            DCN = hasCell ? new FloatTensor(TestData.UniformSingle(random, states), state) : null;
        }

        public int Steps { get; }
        public int Batch { get; }
        public FloatTensor X { get; }
        public FloatTensor H0 { get; }
        public FloatTensor? C0 { get; }
        public FloatTensor DY { get; }
        public FloatTensor DHN { get; }
        public FloatTensor? DCN { get; }

        /// <summary>Row t of a [T, N, W] tensor as [N, W].</summary>
        public static FloatTensor At(FloatTensor sequence, int t)
        {
            int rows = sequence.Shape[1], width = sequence.Shape[2];
            return new FloatTensor(sequence.Span.Slice(t * rows * width, rows * width).ToArray(), rows, width);
        }
    }

    /// <summary>Steps through <paramref name="data"/> keeping every tape, then back-propagates from the last step; dx [T, N, I], dh0, dc0.</summary>
    private static (float[] Input, FloatTensor Hidden, FloatTensor? Cell) StepThroughAndBack(RecurrentStepper stepper, SequenceData data)
    {
        var state = stepper.InitialState(data.Batch, data.H0, data.C0);
        var steps = new List<RecurrentStepResult>();
        for (int t = 0; t < data.Steps; t++)
        {
            var step = stepper.Step(SequenceData.At(data.X, t), state, keepForBackward: true);
            Assert.That(step.CanBackward, Is.True);
            steps.Add(step);
            state = step.State;
        }
        var dx = new float[data.X.Length];
        FloatTensor dh = data.DHN;
        FloatTensor? dc = data.DCN;
        for (int t = data.Steps - 1; t >= 0; t--)
        {
            var gradients = stepper.Backward(steps[t], SequenceData.At(data.DY, t), dh, dc);
            Assert.That(gradients.Input.Shape, Is.EqualTo(new[] { data.Batch, data.X.Shape[2] }));
            gradients.Input.Span.CopyTo(dx.AsSpan(t * gradients.Input.Length));
            (dh, dc) = (gradients.Hidden, gradients.Cell);
            steps[t].Dispose();
            Assert.That(steps[t].CanBackward, Is.False);
        }
        return (dx, dh, dc);
    }

    /// <summary>
    /// What a step keeps is its own: changing its input and the state it started from before its backward changes nothing;
    /// and a second backward of the same steps adds the same gradients again.
    /// </summary>
    [TestCaseSource(nameof(AllBackends))]
    public void StepBackward_ReadsItsOwnCopies_AndAddsAgainWhenRepeated(string backendName) => OnBackend(backendName, backend =>
    {
        var config = new RnnConfig(CellKind.Lstm, 3, 5, 2);
        var layer = TestLayers.Create(config, backend, seed: 2);
        var random = new Random(8);
        using var stepper = layer.CreateStepper(training: true);
        var xt = new FloatTensor(TestData.UniformSingle(random, 2 * 3), 2, 3);
        var start = stepper.InitialState(2, new FloatTensor(TestData.UniformSingle(random, 20), 2, 2, 5), new FloatTensor(TestData.UniformSingle(random, 20), 2, 2, 5));
        var dOutput = new FloatTensor(TestData.UniformSingle(random, 10), 2, 5);

        using var clean = stepper.Step(xt, start, keepForBackward: true);
        var expected = stepper.Backward(clean, dOutput);
        var once = layer.Parameters.All.Select(p => p.Grad.ToArray()).ToArray();

        layer.ZeroGrad();
        using var changed = stepper.Step(xt, start, keepForBackward: true);
        xt.Span.Fill(7f);
        start.Hidden.Span.Fill(-3f);
        start.Cell!.Span.Fill(2f);
        var actual = stepper.Backward(changed, dOutput);
        Assert.That(actual.Input.ToArray(), Is.EqualTo(expected.Input.ToArray()), "dx");
        Assert.That(actual.Hidden.ToArray(), Is.EqualTo(expected.Hidden.ToArray()), "dh");
        Assert.That(actual.Cell!.ToArray(), Is.EqualTo(expected.Cell!.ToArray()), "dc");
        stepper.Backward(changed, dOutput);
        foreach (var (p, g) in layer.Parameters.All.Zip(once))
            Assertions.AllClose(p.Grad.ToArray(), Widen(g.Select(v => 2 * v).ToArray()), Tolerances.SummationOrder, p.Name + " after two backward steps");
    });

    [TestCaseSource(nameof(AllBackends))]
    public void StepBackward_RefusesForeignUntapedOrStaleStepsAndMisshapenGradients(string backendName) => OnBackend(backendName, backend =>
    {
        var layer = new Gru(3, 4, variant: GruVariant.ResetBefore, numLayers: 2, backend: backend);
        var other = new Gru(3, 4, variant: GruVariant.ResetBefore, numLayers: 2, backend: backend);
        using var stepper = layer.CreateStepper(training: true);
        using var sibling = layer.CreateStepper(training: true);
        using var foreign = other.CreateStepper(training: true);
        using var inference = layer.CreateStepper();
        Assert.That(inference.Training, Is.False);
        var xt = new FloatTensor(2, 3);
        using var step = stepper.Step(xt, stepper.InitialState(2), keepForBackward: true);

        var refused = Assert.Throws<InvalidOperationException>(() => inference.Step(xt, inference.InitialState(2), keepForBackward: true))!;
        Assert.That(refused.Message, Does.Contain("training"));
        AssertNames(() => stepper.Backward(sibling.Step(xt, sibling.InitialState(2), keepForBackward: true), null), "step", "another stepper");
        AssertNames(() => stepper.Backward(foreign.Step(xt, foreign.InitialState(2), keepForBackward: true), null), "step", "another layer");
        AssertNames(() => stepper.Backward(step, new FloatTensor(2, 5)), "dOutput", "[2, 4]");
        AssertNames(() => stepper.Backward(step, null, new FloatTensor(1, 2, 4)), "dh", "[2, 2, 4]");
        AssertNames(() => stepper.Backward(step, null, null, new FloatTensor(2, 2, 4)), "dc", "no cell state");
        AssertNames(() => stepper.Backward(step, new FloatTensor([float.NaN, 0, 0, 0, 0, 0, 0, 0], 2, 4)), "dOutput", "NaN");
        var untaped = Assert.Throws<InvalidOperationException>(() => stepper.Backward(stepper.Step(xt, stepper.InitialState(2), keepForBackward: false), null))!;
        Assert.That(untaped.Message, Does.Contain("keepForBackward"));

        using var disposed = stepper.Step(xt, stepper.InitialState(2), keepForBackward: true);
        disposed.Dispose();
        Assert.Throws<InvalidOperationException>(() => stepper.Backward(disposed, null));

        Assert.DoesNotThrow(() => stepper.Backward(step, null));
        layer.Parameters.Reset(3);
        var stale = Assert.Throws<InvalidOperationException>(() => stepper.Backward(step, null))!;
        Assert.That(stale.Message, Does.Contain("replaced"));
        stepper.Dispose();
        Assert.Throws<ObjectDisposedException>(() => stepper.Backward(step, null));
    });

    [Test]
    public void Step_DoesNotChangeTheStateItIsGiven()
    {
        var layer = new Lstm(3, 5, numLayers: 2, seed: 1);
        using var stepper = layer.CreateStepper();
        var start = stepper.InitialState(2);
        var xt = new FloatTensor(TestData.UniformSingle(new Random(1), 6), 2, 3);
        var (first, _) = stepper.Step(xt, start);
        Assert.That(start.Hidden.ToArray().All(v => v == 0) && start.Cell!.ToArray().All(v => v == 0), Is.True, "start state");
        var (again, _) = stepper.Step(xt, start);
        Assert.That(again.ToArray(), Is.EqualTo(first.ToArray()), "same state, same input");
    }

    private static IEnumerable<TestCaseData> GenerateCases() =>
        from backend in new[] { "reference", "native-cpu", "native-cpu-unfused", "ilgpu-cpu" }
        from cell in TestData.AllCells
        from loss in Enum.GetValues<SequenceLoss>()
        select new TestCaseData(backend, cell, loss).SetName($"Generate_MatchesTeacherForcedOutputsOfItsOwnTokens_{backend}_{cell}_{loss}");

    /// <summary>Generation runs through the stepper; teacher forcing through whole-sequence passes: fed its own outputs, the latter must agree.</summary>
    [TestCaseSource(nameof(GenerateCases))]
    public void Generate_MatchesTeacherForcedOutputsOfItsOwnTokens(string backendName, CellKind cell, SequenceLoss loss)
    {
        const int steps = 6, batch = 3, input = 3, hidden = 10, output = 6;
        var layer = TestLayers.Create(new RnnConfig(cell, input, hidden, 2), CreateBackend(backendName), seed: 9);
        var model = new RecurrentSequenceModel(layer, output, loss, loss == SequenceLoss.SoftmaxCrossEntropy ? output - 1 : null, seed: 9);
        // Large weights make the argmax change from step to step, so a wrong fed-back token shows.
        foreach (var p in SequenceRecurrentModelTests.HeadNames.Select(name => model.Parameters[name]))
            for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] *= 4;
        var generated = model.Generate(steps, batch);
        var own = loss == SequenceLoss.SoftmaxCrossEntropy ? SequenceTargets.Tokens(generated.Tokens!, steps, batch) : SequenceTargets.Real(generated.Outputs);
        Assertions.AllClose(generated.Outputs.ToArray(), Widen(model.TeacherForcedOutputs(own).ToArray()), Tolerances.Float32, "generated vs teacher-forced");

        // An SGD step between two generations replaces the stack's weights: the next generation must use the new ones.
        model.Train(own);
        model.SgdStep(0.5f);
        var after = model.Generate(steps, batch);
        var ownAfter = loss == SequenceLoss.SoftmaxCrossEntropy ? SequenceTargets.Tokens(after.Tokens!, steps, batch) : SequenceTargets.Real(after.Outputs);
        Assertions.AllClose(after.Outputs.ToArray(), Widen(model.TeacherForcedOutputs(ownAfter).ToArray()), Tolerances.Float32, "after an SGD step");
    }

    public static IEnumerable<string> AllBackends => Backends;

    [TestCaseSource(nameof(AllBackends))]
    public void Step_RefusesStatesOfAnotherStepperLayerOrBatch(string backendName)
    {
        var backend = CreateBackend(backendName);
        try
        {
            var layer = new Gru(3, 4, variant: GruVariant.ResetAfter, numLayers: 2, backend: backend);
            var other = new Gru(3, 4, variant: GruVariant.ResetAfter, numLayers: 2, backend: backend);
            using var stepper = layer.CreateStepper();
            using var sibling = layer.CreateStepper();
            using var foreign = other.CreateStepper();
            var xt = new FloatTensor(2, 3);
            AssertNames(() => stepper.Step(xt, sibling.InitialState(2)), "state", "another stepper");
            AssertNames(() => stepper.Step(xt, foreign.InitialState(2)), "state", "another layer");
            AssertNames(() => stepper.Step(xt, stepper.InitialState(3)), "state", "3 rows");
            AssertNames(() => stepper.Step(new FloatTensor(2, 4), stepper.InitialState(2)), "xt", "[2, 4]");
            AssertNames(() => stepper.Step(new FloatTensor(1, 2, 3), stepper.InitialState(2)), "xt", "[1, 2, 3]");
            AssertNames(() => stepper.InitialState(2, new FloatTensor(1, 2, 4)), "h0", "[1, 2, 4]");
            AssertNames(() => stepper.InitialState(2, null, new FloatTensor(2, 2, 4)), "c0", "no cell state");
            Assert.Throws<ArgumentOutOfRangeException>(() => stepper.InitialState(0));
        }
        finally
        {
            (backend as IDisposable)?.Dispose();
        }
    }

    [TestCaseSource(nameof(AllBackends))]
    public void Step_RefusesStaleWeightsAfterResetOrLoad(string backendName)
    {
        var backend = CreateBackend(backendName);
        var path = Path.Combine(Path.GetTempPath(), $"stepper-{Guid.NewGuid():N}.safetensors");
        try
        {
            var layer = new Lstm(3, 4, backend: backend);
            var xt = new FloatTensor(1, 3);
            var stepper = layer.CreateStepper();
            stepper.Step(xt, stepper.InitialState(1));
            layer.Parameters.Reset(7);
            var stale = Assert.Throws<InvalidOperationException>(() => stepper.Step(xt, stepper.InitialState(1)))!;
            Assert.That(stale.Message, Does.Contain("replaced").And.Contain("new stepper"));

            var fresh = layer.CreateStepper();
            fresh.Step(xt, fresh.InitialState(1));
            layer.Save(path);
            layer.Load(path);
            Assert.Throws<InvalidOperationException>(() => fresh.Step(xt, fresh.InitialState(1)));
            using var reloaded = layer.CreateStepper();
            Assert.DoesNotThrow(() => reloaded.Step(xt, reloaded.InitialState(1)));
            stepper.Dispose();
            fresh.Dispose();
        }
        finally
        {
            File.Delete(path);
            (backend as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// The ILGPU stepper uploads the parameters once, when it is made: its training steps and backward steps upload
    /// nothing more, and a direct write into a parameter's values afterwards is not seen (as on the native stepper).
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public void IlgpuStepper_UploadsTheWeightsOnce(bool fused)
    {
        using var backend = new IlgpuBackend(IlgpuDevice.Cpu, fused);
        var layer = new Gru(2, 3, variant: GruVariant.ResetBefore, numLayers: 2, backend: backend, seed: 3);
        var xt = new FloatTensor(TestData.UniformSingle(new Random(5), 4), 2, 2);
        int before = backend.ParameterUploads;
        using var stepper = layer.CreateStepper(training: true);
        Assert.That(backend.ParameterUploads, Is.EqualTo(before + 1), "made");
        using var first = stepper.Step(xt, stepper.InitialState(2), keepForBackward: true);
        using var second = stepper.Step(xt, first.State, keepForBackward: true);
        var gradients = stepper.Backward(second, new FloatTensor(TestData.UniformSingle(new Random(6), 6), 2, 3));
        stepper.Backward(first, null, gradients.Hidden);
        Assert.That(backend.ParameterUploads, Is.EqualTo(before + 1), "after two steps and their backward");

        var p = layer.Parameters["weight_hh_l1"];
        for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] += 1;
        var (resident, _) = stepper.Step(xt, first.State);
        Assert.That(resident.ToArray(), Is.EqualTo(second.Output.ToArray()), "a direct write is not seen");
        using var fresh = layer.CreateStepper();
        var (changed, _) = fresh.Step(xt, fresh.InitialState(2, first.State.Hidden));
        Assert.That(changed.ToArray(), Is.Not.EqualTo(second.Output.ToArray()), "a new stepper sees it");
    }

    /// <summary>The sequence model's device-level step runs (generation, the step-by-step schedule) upload the weights once per run.</summary>
    [Test]
    public void IlgpuSequenceSteps_UploadTheWeightsOncePerRun()
    {
        const int steps = 4, batch = 2;
        using var backend = new IlgpuBackend(IlgpuDevice.Cpu);
        var model = new RecurrentSequenceModel(new Lstm(3, 4, numLayers: 2, backend: backend, seed: 2), 3, SequenceLoss.SoftmaxCrossEntropy, startToken: 2, seed: 2);
        int before = backend.ParameterUploads;
        var generated = model.Generate(steps, batch);
        Assert.That(backend.ParameterUploads, Is.EqualTo(before + 1), "generation");
        model.Train(SequenceTargets.Tokens(generated.Tokens!, steps, batch), TrainingSchedule.StepByStep);
        Assert.That(backend.ParameterUploads, Is.EqualTo(before + 2), "a step-by-step training pass");
    }

    [TestCaseSource(nameof(AllBackends))]
    public void Dispose_IsIdempotent_AndStepAfterItThrows(string backendName)
    {
        var backend = CreateBackend(backendName);
        try
        {
            var layer = new ElmanRnn(2, 3, numLayers: 2, backend: backend);
            var stepper = layer.CreateStepper();
            var state = stepper.InitialState(1);
            stepper.Dispose();
            Assert.DoesNotThrow(stepper.Dispose);
            Assert.Throws<ObjectDisposedException>(() => stepper.Step(new FloatTensor(1, 2), state));
            Assert.Throws<ObjectDisposedException>(() => stepper.InitialState(1));
        }
        finally
        {
            (backend as IDisposable)?.Dispose();
        }
    }

    [Test]
    public void CreateStepper_RefusesBidirectionalStacks()
    {
        var error = Assert.Throws<NotSupportedException>(() => new Lstm(3, 4, bidirectional: true).CreateStepper())!;
        Assert.That(error.Message, Does.Contain("bidirectional"));
    }

    [Test]
    public void NativeStep_RefusesMissingCellStateShortWeightsAndUseAfterDispose()
    {
        var layer = new Lstm(2, 3);
        var p = layer.Parameters;
        using var step = NativeRnnStep.Create(CellKind.Lstm, true, 2, 3, p["weight_ih_l0"].Value.Span, p["weight_hh_l0"].Value.Span,
            p["bias_ih_l0"].Value.Span, p["bias_hh_l0"].Value.Span);
        Assert.That(step.Bytes, Is.GreaterThan(0));
        var error = Assert.Throws<ArgumentException>(() => step.Forward(1, new float[2], new float[3], new float[2], new float[3], new float[3]))!;
        Assert.That(error.ParamName, Is.EqualTo("c"));
        Assert.Throws<ArgumentException>(() => NativeRnnStep.Create(CellKind.Lstm, true, 2, 3, new float[5], p["weight_hh_l0"].Value.Span,
            p["bias_ih_l0"].Value.Span, p["bias_hh_l0"].Value.Span));
        step.Dispose();
        Assert.Throws<ObjectDisposedException>(() => step.Forward(1, new float[2], new float[3], new float[3], new float[3], new float[3]));
    }

    [Test]
    public void NativeStep_BackwardNeedsATrainingHandleAndAWholeTape()
    {
        var layer = new Lstm(2, 3);
        var p = layer.Parameters;
        NativeRnnStep Create(bool training) => NativeRnnStep.Create(CellKind.Lstm, true, 2, 3, p["weight_ih_l0"].Value.Span, p["weight_hh_l0"].Value.Span,
            p["bias_ih_l0"].Value.Span, p["bias_hh_l0"].Value.Span, training);
        using var inference = Create(training: false);
        using var training = Create(training: true);
        Assert.That(training.Bytes, Is.GreaterThan(inference.Bytes), "the weights packed for backward");
        // LSTM: h, h_out, c, c_out and four gate blocks per N·H.
        Assert.That(training.TapeLength(2), Is.EqualTo(8 * 2 * 3));
        var tape = new float[training.TapeLength(1)];
        var h = new float[3];
        training.Forward(1, new float[] { 1, -1 }, h, new float[3], h.ToArray(), new float[3], tape);
        Span<float> Grad(string name) => p[name].Grad.Span;
        void Backward(NativeRnnStep step, float[] stepTape) => step.Backward(1, new float[2], stepTape, new float[3], new float[3], new float[3],
            new float[2], new float[3], new float[3], Grad("weight_ih_l0"), Grad("weight_hh_l0"), Grad("bias_ih_l0"), Grad("bias_hh_l0"));
        var refused = Assert.Throws<InvalidOperationException>(() => Backward(inference, tape))!;
        Assert.That(refused.Message, Does.Contain("training"));
        var error = Assert.Throws<ArgumentException>(() => Backward(training, tape[..^1]))!;
        Assert.That(error.ParamName, Is.EqualTo("tape"));
        Assert.DoesNotThrow(() => Backward(training, tape));
        error = Assert.Throws<ArgumentException>(() => training.Forward(1, new float[2], new float[3], new float[3], new float[3], new float[3], new float[5]))!;
        Assert.That(error.ParamName, Is.EqualTo("tape"));
    }

    private static IEnumerable<TestCaseData> ScheduleCases() =>
        from backend in new[] { "reference", "native-cpu-unfused", "native-portable", "ilgpu-cpu" }
        from cell in TestData.AllCells
        from loss in Enum.GetValues<SequenceLoss>()
        select new TestCaseData(backend, cell, loss).SetName($"TrainStepByStep_MatchesParallel_{backend}_{cell}_{loss}");

    /// <summary>
    /// The sequence model's step-by-step schedule steps through the stack's stepper on the host (the default native backend is
    /// SequenceRecurrentModelTests'), and a device step run on resident weights on ILGPU: both give the parallel schedule's loss and gradients.
    /// </summary>
    [TestCaseSource(nameof(ScheduleCases))]
    public void TrainStepByStep_MatchesParallel(string backendName, CellKind cell, SequenceLoss loss) => OnBackend(backendName, backend =>
    {
        const int steps = 3, batch = 2, input = 3, hidden = 4, output = 5;
        var layer = TestLayers.Create(new RnnConfig(cell, input, hidden, 2), backend, seed: 3);
        using var model = new RecurrentSequenceModel(layer, output, loss, loss == SequenceLoss.SoftmaxCrossEntropy ? 0 : null, seed: 3);
        var random = new Random(5);
        var targets = loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens(Enumerable.Range(0, steps * batch).Select(_ => random.Next(output)).ToArray(), steps, batch)
            : SequenceTargets.Real(new FloatTensor(TestData.UniformSingle(random, steps * batch * output), steps, batch, output));
        float[][] Gradients() => model.Parameters.All.Select(p => p.Grad.ToArray()).ToArray();

        float parallelLoss = model.Train(targets, TrainingSchedule.ParallelOverTime);
        var parallel = Gradients();
        model.ZeroGrad();
        float stepLoss = model.Train(targets, TrainingSchedule.StepByStep);
        Assertions.AllClose([stepLoss], [parallelLoss], Tolerances.Float32, "loss");
        foreach (var (actual, expected) in Gradients().Zip(parallel))
            Assertions.AllClose(actual, Widen(expected), Tolerances.Float32, "gradient");
    });

    private static void AssertNames(Action call, string argument, string fragment)
    {
        var error = Assert.Catch<ArgumentException>(() => call())!;
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.StartWith(argument + ":").And.Contain(fragment));
    }

    private static double[] Widen(ReadOnlySpan<float> values)
    {
        var wide = new double[values.Length];
        for (int i = 0; i < values.Length; i++) wide[i] = values[i];
        return wide;
    }
}
