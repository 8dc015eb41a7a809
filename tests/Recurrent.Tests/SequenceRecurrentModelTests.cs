using NUnit.Framework;
using Recurrent.Reference;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// The hidden-recurrent sequence model (language model): the parallel training step against the step-by-step one and
/// against finite differences of an independent double-precision composition (embedding, <see cref="ReferenceRnn"/>,
/// output layer, loss); teacher forcing and free running feed what they claim to.
/// </summary>
[TestFixture]
public class SequenceRecurrentModelTests
{
    /// <summary>T, N, I, H, O, L.</summary>
    public sealed record Shape(int Steps, int Batch, int Input, int Hidden, int Output, int Layers)
    {
        public override string ToString() => $"T{Steps}_N{Batch}_I{Input}_H{Hidden}_O{Output}_L{Layers}";
    }

    private static readonly Shape[] Shapes = [new(1, 1, 1, 1, 2, 1), new(3, 2, 3, 5, 4, 2), new(4, 3, 2, 17, 7, 1)];

    private static IEnumerable<TestCaseData> Cases(string name) =>
        from cell in TestData.AllCells
        from loss in Enum.GetValues<SequenceLoss>()
        from shape in Shapes
        select new TestCaseData(cell, loss, shape).SetName($"{name}_{cell}_{loss}_{shape}");

    private static IEnumerable<TestCaseData> StepByStepCases() => Cases("Train_StepByStepMatchesParallel");
    private static IEnumerable<TestCaseData> GradientCases() => Cases("Gradients_MatchFiniteDifferencesOfDoubleComposition");

    internal static RecurrentLayer Layer(CellKind cell, int input, int hidden, int layers = 1, int seed = 5) => cell switch
    {
        CellKind.Lstm => new Lstm(input, hidden, layers, seed: seed),
        CellKind.GruResetAfter => new Gru(input, hidden, layers, variant: GruVariant.ResetAfter, seed: seed),
        CellKind.GruResetBefore => new Gru(input, hidden, layers, variant: GruVariant.ResetBefore, seed: seed),
        CellKind.RnnRelu => new ElmanRnn(input, hidden, layers, activation: RnnActivation.Relu, seed: seed),
        _ => new ElmanRnn(input, hidden, layers, activation: RnnActivation.Tanh, seed: seed),
    };

    private static RecurrentSequenceModel Model(CellKind cell, SequenceLoss loss, Shape shape, int seed = 5) =>
        new(Layer(cell, shape.Input, shape.Hidden, shape.Layers, seed), shape.Output, loss,
            loss == SequenceLoss.SoftmaxCrossEntropy ? shape.Output - 1 : null, seed);

    private static SequenceTargets RandomTargets(SequenceLoss loss, Shape shape, Random random) =>
        SequenceOutputRecurrentTests.RandomTargets(loss, new SequenceOutputRecurrentTests.Shape(shape.Steps, shape.Batch, 0, shape.Hidden, shape.Output), random);

    private static IEnumerable<(string Name, float[] Value, float[] Grad)> AllParameters(RecurrentSequenceModel model) =>
        model.Parameters.All.Select(p => (p.Name, p.Value.ToArray(), p.Grad.ToArray()));

    /// <summary>The model's own parameters, besides its stack's.</summary>
    internal static readonly string[] HeadNames = ["embedding", "output_weight", "output_bias"];

    [TestCaseSource(nameof(StepByStepCases))]
    public void Train_StepByStepMatchesParallel(CellKind cell, SequenceLoss loss, Shape shape)
    {
        var model = Model(cell, loss, shape);
        var targets = RandomTargets(loss, shape, new Random(shape.GetHashCode()));

        float parallelLoss = model.Train(targets, TrainingSchedule.ParallelOverTime);
        var parallelGrads = AllParameters(model).Select(p => SequenceOutputRecurrentTests.Widen(p.Grad)).ToArray();
        model.ZeroGrad();
        float stepLoss = model.Train(targets, TrainingSchedule.StepByStep);

        Assertions.AllClose([stepLoss], [parallelLoss], Tolerances.Float32, "loss");
        foreach (var (p, expected) in AllParameters(model).Zip(parallelGrads))
            Assertions.AllClose(p.Grad, expected, Tolerances.Float32, p.Name);
    }

    [TestCaseSource(nameof(GradientCases))]
    public void Gradients_MatchFiniteDifferencesOfDoubleComposition(CellKind cell, SequenceLoss loss, Shape shape)
    {
        var model = Model(cell, loss, shape);
        var targets = RandomTargets(loss, shape, new Random(shape.GetHashCode() + 1));
        float actual = model.Train(targets);

        var head = HeadNames.Select(name => SequenceOutputRecurrentTests.Widen(model.Parameters[name].Value.ToArray())).ToArray();
        var weights = ReferenceWeights.From(model.Recurrent.Parameters);
        double Loss() => ReferenceLoss(model, head, weights, targets);
        Assertions.AllClose([actual], [Loss()], Tolerances.Float32, "loss");

        // The double composition's central differences are accurate to ≈1e-9, so the float gradients must meet them within Float32.
        var all = head.Zip(HeadNames, (value, name) => (value, model.Parameters[name].Grad.ToArray(), name))
            .Concat(weights.Values.Zip(model.Recurrent.Parameters.All, (value, p) => (value, p.Grad.ToArray(), p.Name)));
        foreach (var (value, grad, name) in all)
            Assertions.AllClose(grad, FiniteDifferences.Numeric(value, Loss), Tolerances.Float32, name);
    }

    [TestCase(CellKind.Lstm, SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(CellKind.GruResetAfter, SequenceLoss.SquaredError)]
    public void TeacherForcing_FeedsPreviousTarget_NoEarlierStepSeesIt(CellKind cell, SequenceLoss loss)
    {
        var shape = new Shape(6, 3, 4, 9, 5, 1);
        var model = Model(cell, loss, shape);
        var targets = RandomTargets(loss, shape, new Random(3));
        var before = model.TeacherForcedOutputs(targets);
        const int changedStep = 2;
        var changed = loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens(targets.TokenIds!.Select((id, i) => i == changedStep * shape.Batch + 1 ? (id + 1) % shape.Output : id).ToArray(), shape.Steps, shape.Batch)
            : SequenceTargets.Real(new FloatTensor(targets.Values!.ToArray().Select((v, i) => i / shape.Output == changedStep * shape.Batch + 1 ? v + 1 : v).ToArray(), shape.Steps, shape.Batch, shape.Output));
        var after = model.TeacherForcedOutputs(changed);
        for (int t = 0; t < shape.Steps; t++)
            for (int n = 0; n < shape.Batch; n++)
            {
                bool differs = Enumerable.Range(0, shape.Output).Any(o => before[t, n, o] != after[t, n, o]);
                // y_2 enters at step 3 and then lives on in the hidden state of its own sequence only.
                Assert.That(differs, Is.EqualTo(t > changedStep && n == 1), $"step {t}, sequence {n}");
            }
    }

    [TestCase(CellKind.Lstm, SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(CellKind.GruResetBefore, SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(CellKind.RnnTanh, SequenceLoss.SquaredError)]
    public void Generate_FeedsBackItsOwnOutputs(CellKind cell, SequenceLoss loss)
    {
        var shape = new Shape(7, 4, 3, 12, 6, 2);
        var model = Model(cell, loss, shape, seed: 9);
        foreach (var p in HeadNames.Select(name => model.Parameters[name]))
            for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] *= 4;
        var generated = model.Generate(shape.Steps, shape.Batch);

        var own = loss == SequenceLoss.SoftmaxCrossEntropy ? SequenceTargets.Tokens(generated.Tokens!, shape.Steps, shape.Batch) : SequenceTargets.Real(generated.Outputs);
        Assertions.AllClose(generated.Outputs.ToArray(), SequenceOutputRecurrentTests.Widen(model.TeacherForcedOutputs(own).ToArray()), Tolerances.Float32,
            "generated vs teacher-forced on own outputs");
        var other = model.TeacherForcedOutputs(RandomTargets(loss, shape, new Random(99)));
        int rowLength = shape.Batch * shape.Output;
        Assert.That(other.Span.Slice(rowLength).SequenceEqual(generated.Outputs.Span.Slice(rowLength)), Is.False, "later steps");
    }

    [Test]
    public void SgdStep_TrainsEmbeddingOutputLayerAndStack()
    {
        const int steps = 8, batch = 4, vocabulary = 5;
        var ids = new int[steps * batch];
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++) ids[t * batch + n] = (n + 2 * t) % vocabulary;
        var targets = SequenceTargets.Tokens(ids, steps, batch);
        var model = new RecurrentSequenceModel(new Gru(6, 12, variant: GruVariant.ResetAfter, seed: 3), vocabulary, SequenceLoss.SoftmaxCrossEntropy, seed: 3);
        var stackBefore = model.Recurrent.Parameters.All.Select(p => p.Value.ToArray()).ToArray();
        float first = 0, last = 0;
        for (int iteration = 0; iteration < 100; iteration++)
        {
            model.ZeroGrad();
            last = model.Train(targets);
            if (iteration == 0) first = last;
            model.SgdStep(0.5f);
        }
        Assert.That(last, Is.LessThan(0.3f * first), $"loss went from {first} to {last}");
        for (int p = 0; p < stackBefore.Length; p++)
            Assert.That(model.Recurrent.Parameters.All[p].Value.ToArray(), Is.Not.EqualTo(stackBefore[p]), model.Recurrent.Parameters.All[p].Name);
    }

    [Test]
    public void Constructor_RejectsBidirectionalStack()
    {
        var e = Assert.Throws<ArgumentException>(() => new RecurrentSequenceModel(new Lstm(3, 4, bidirectional: true), 5, SequenceLoss.SoftmaxCrossEntropy))!;
        Assert.That(e.ParamName, Is.EqualTo("recurrent"));
    }

    [Test]
    public void Train_RejectsBadTargets_BeforeAnyWork()
    {
        var model = new RecurrentSequenceModel(new Gru(3, 4, variant: GruVariant.ResetAfter), 5, SequenceLoss.SoftmaxCrossEntropy);
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => model.Train(SequenceTargets.Tokens([0, 1, 2, 7], 2, 2)))!;
        Assert.That(outside.ParamName, Is.EqualTo("targets"));
        Assert.That(outside.Message, Does.Contain("[0, 5)").And.Contain("7"));
        Assert.That(Assert.Throws<ArgumentException>(() => model.Train(SequenceTargets.Real(new FloatTensor(2, 2, 5))))!.ParamName, Is.EqualTo("targets"));
        Assert.That(Assert.Throws<ArgumentException>(() => model.Generate(3, 0))!.ParamName, Is.EqualTo("batch"));
        var real = new RecurrentSequenceModel(new Gru(3, 4, variant: GruVariant.ResetAfter), 5, SequenceLoss.SquaredError);
        var misshaped = Assert.Throws<ArgumentException>(() => real.Train(SequenceTargets.Real(new FloatTensor(2, 2, 6))))!;
        Assert.That(misshaped.Message, Does.Contain("[2, 2, 5]").And.Contain("[2, 2, 6]"));
        foreach (var (name, _, grad) in AllParameters(model).Concat(AllParameters(real)))
            Assert.That(grad.All(g => g == 0), Is.True, $"{name} was touched");
    }

    /// <summary>The model's loss recomputed in double from its definition: embedding, the reference stack, output layer, loss.</summary>
    private static double ReferenceLoss(RecurrentSequenceModel model, double[][] head, ReferenceWeights weights, SequenceTargets targets)
    {
        int steps = targets.Steps, batch = targets.Batch, rows = steps * batch;
        int input = model.Recurrent.Config.InputSize, hidden = model.Recurrent.Config.HiddenSize, width = model.OutputSize;
        double[] embedding = head[0], outputWeight = head[1], outputBias = head[2];
        var x = new double[rows * input];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < input; i++)
            {
                if (r < batch)
                    x[r * input + i] = model.StartToken is int start ? embedding[start * input + i] : 0;
                else if (targets.TokenIds is not null)
                    x[r * input + i] = embedding[targets.TokenIds[r - batch] * input + i];
                else
                    for (int o = 0; o < width; o++) x[r * input + i] += targets.Values!.Span[(r - batch) * width + o] * embedding[o * input + i];
            }
        var y = ReferenceRnn.Forward(weights, x, steps, batch).Output;
        double loss = 0;
        var logits = new double[width];
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < width; o++)
            {
                logits[o] = outputBias[o];
                for (int h = 0; h < hidden; h++) logits[o] += y[r * hidden + h] * outputWeight[h * width + o];
            }
            if (targets.TokenIds is not null)
                loss += Math.Log(logits.Sum(v => Math.Exp(v))) - logits[targets.TokenIds[r]];
            else
                for (int o = 0; o < width; o++) loss += 0.5 * Math.Pow(logits[o] - targets.Values!.Span[r * width + o], 2);
        }
        return loss / rows;
    }
}

/// <summary>
/// The sequence model with its stack on an <see cref="IlgpuBackend"/>: embedding, output layer and loss then run on the
/// same accelerator and the stack through the backend's device-level entry. Same loss and every gradient (the model's
/// and the stack's) as the model on the CPU, both schedules; the same generated tokens. One backend per derived fixture;
/// tiny shapes, as the CPU accelerator is a slow simulator.
/// </summary>
public abstract class IlgpuRecurrentSequenceModelTests(IlgpuDevice device) : IlgpuBackendFixture(device)
{
    private static readonly SequenceRecurrentModelTests.Shape[] Shapes = [new(1, 1, 1, 1, 2, 1), new(3, 2, 3, 5, 4, 2), new(4, 3, 2, 17, 7, 1)];

    private static IEnumerable<TestCaseData> Cases() =>
        from cell in TestData.AllCells
        from loss in Enum.GetValues<SequenceLoss>()
        from shape in Shapes
        select new TestCaseData(cell, loss, shape).SetArgDisplayNames(cell.ToString(), loss.ToString(), shape.ToString());

    private static RecurrentLayer Layer(CellKind cell, SequenceRecurrentModelTests.Shape shape, IRnnBackend? backend, int seed) => cell switch
    {
        CellKind.Lstm => new Lstm(shape.Input, shape.Hidden, shape.Layers, backend: backend, seed: seed),
        CellKind.GruResetAfter => new Gru(shape.Input, shape.Hidden, shape.Layers, variant: GruVariant.ResetAfter, backend: backend, seed: seed),
        CellKind.GruResetBefore => new Gru(shape.Input, shape.Hidden, shape.Layers, variant: GruVariant.ResetBefore, backend: backend, seed: seed),
        CellKind.RnnRelu => new ElmanRnn(shape.Input, shape.Hidden, shape.Layers, activation: RnnActivation.Relu, backend: backend, seed: seed),
        _ => new ElmanRnn(shape.Input, shape.Hidden, shape.Layers, activation: RnnActivation.Tanh, backend: backend, seed: seed),
    };

    /// <summary>The same model (same seeds) on the device and on the CPU.</summary>
    private (RecurrentSequenceModel Device, RecurrentSequenceModel Cpu) Models(CellKind cell, SequenceLoss loss, SequenceRecurrentModelTests.Shape shape, int seed = 5)
    {
        int? start = loss == SequenceLoss.SoftmaxCrossEntropy ? shape.Output - 1 : null;
        return (new RecurrentSequenceModel(Layer(cell, shape, Backend, seed), shape.Output, loss, start, seed),
                new RecurrentSequenceModel(Layer(cell, shape, null, seed), shape.Output, loss, start, seed));
    }

    private static IEnumerable<(string Name, float[] Grad)> Gradients(RecurrentSequenceModel model) =>
        model.Parameters.All.Select(p => (p.Name, p.Grad.ToArray()));

    [TestCaseSource(nameof(Cases))]
    public void Train_MatchesCpuModel_BothSchedules(CellKind cell, SequenceLoss loss, SequenceRecurrentModelTests.Shape shape)
    {
        var (onDevice, cpu) = Models(cell, loss, shape);
        using var disposeDevice = onDevice;
        Assert.That(onDevice.OpsName, Does.StartWith("ilgpu-"));
        var targets = SequenceOutputRecurrentTests.RandomTargets(loss, new SequenceOutputRecurrentTests.Shape(shape.Steps, shape.Batch, 0, shape.Hidden, shape.Output),
            new Random(shape.GetHashCode() + 7));
        float expected = cpu.Train(targets);
        var expectedGrads = Gradients(cpu).Select(g => SequenceOutputRecurrentTests.Widen(g.Grad)).ToArray();
        foreach (var schedule in Enum.GetValues<TrainingSchedule>())
        {
            onDevice.ZeroGrad();
            float actual = onDevice.Train(targets, schedule);
            Assertions.AllClose([actual], [expected], Tolerances.Float32, $"{schedule} loss");
            foreach (var ((name, grad), want) in Gradients(onDevice).Zip(expectedGrads))
                Assertions.AllClose(grad, want, Tolerances.Float32, $"{schedule} {name}");
        }
    }

    [Test]
    public void Disposed_RefusesWork_AndLeavesStackUsable()
    {
        var (onDevice, _) = Models(CellKind.Lstm, SequenceLoss.SoftmaxCrossEntropy, new(2, 1, 3, 4, 5, 1));
        var targets = SequenceTargets.Tokens([1, 2], 2, 1);
        onDevice.Train(targets);
        onDevice.Dispose();
        Assert.Throws<ObjectDisposedException>(() => onDevice.Train(targets));
        Assert.Throws<ObjectDisposedException>(() => onDevice.Generate(2, 1));
        using var next = new RecurrentSequenceModel(onDevice.Recurrent, 5, SequenceLoss.SoftmaxCrossEntropy);
        Assert.That(float.IsFinite(next.Train(targets)), Is.True);
    }

    [TestCase(CellKind.Lstm, SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(CellKind.GruResetBefore, SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(CellKind.RnnTanh, SequenceLoss.SquaredError)]
    public void GenerateAndTeacherForcedOutputs_MatchCpuModel(CellKind cell, SequenceLoss loss)
    {
        var shape = new SequenceRecurrentModelTests.Shape(6, 3, 3, 10, 6, 2);
        var (onDevice, cpu) = Models(cell, loss, shape, seed: 9);
        using var disposeDevice = onDevice;
        // Large output weights make the argmax change from step to step, so a wrong fed-back token shows.
        foreach (var model in new[] { onDevice, cpu })
            foreach (var p in SequenceRecurrentModelTests.HeadNames.Select(name => model.Parameters[name]))
                for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] *= 4;
        var generated = onDevice.Generate(shape.Steps, shape.Batch);
        var expected = cpu.Generate(shape.Steps, shape.Batch);
        if (loss == SequenceLoss.SoftmaxCrossEntropy)
            Assert.That(generated.Tokens, Is.EqualTo(expected.Tokens), "generated tokens");
        Assertions.AllClose(generated.Outputs.ToArray(), SequenceOutputRecurrentTests.Widen(expected.Outputs.ToArray()), Tolerances.Float32, "generated outputs");

        var targets = SequenceOutputRecurrentTests.RandomTargets(loss, new SequenceOutputRecurrentTests.Shape(shape.Steps, shape.Batch, 0, shape.Hidden, shape.Output), new Random(4));
        Assertions.AllClose(onDevice.TeacherForcedOutputs(targets).ToArray(), SequenceOutputRecurrentTests.Widen(cpu.TeacherForcedOutputs(targets).ToArray()),
            Tolerances.Float32, "teacher-forced outputs");
    }
}

/// <summary>On ILGPU's CPU accelerator: runs everywhere.</summary>
[TestFixture]
public sealed class IlgpuCpuRecurrentSequenceModelTests() : IlgpuRecurrentSequenceModelTests(IlgpuDevice.Cpu);

/// <summary>On a CUDA GPU; ignored with the reason where there is none.</summary>
[TestFixture]
[Category("Cuda")]
public sealed class IlgpuCudaRecurrentSequenceModelTests() : IlgpuRecurrentSequenceModelTests(IlgpuDevice.Cuda);
