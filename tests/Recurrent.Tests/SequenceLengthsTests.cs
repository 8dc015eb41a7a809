using NUnit.Framework;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// Padded batches in the sequence models (<see cref="SequenceTargets"/> with lengths). The strongest check: a model
/// trained on a padded batch gets the loss and every gradient of the same model trained on each sequence alone (a batch
/// of one, truncated to its length), weighted by the lengths, as the mean over the real tokens is; targets past each end
/// hold garbage (ids outside the vocabulary, NaN) that must not be read. Also lengths of all T equal no lengths, the
/// teacher-forced outputs are those of the sequences alone and zero past each end, and bad lengths are refused.
/// Every model × loss × schedule, the language model's stack on the reference and the native backend here and on ILGPU
/// in <see cref="IlgpuSequenceLengthsTests"/>.
/// </summary>
[TestFixture]
public class SequenceLengthsTests
{
    /// <summary>The host backends of the language model's stack; NUnit passes the name.</summary>
    private static IRnnBackend? HostBackend(string name) => name switch
    {
        "reference" => ReferenceBackend.Instance,
        _ => null,  // the default: native
    };

    private static IEnumerable<TestCaseData> LanguageModelCases(string name) =>
        from backend in new[] { "reference", "native" }
        from cell in PaddedBatches.Cells
        from loss in Enum.GetValues<SequenceLoss>()
        from schedule in Enum.GetValues<TrainingSchedule>()
        select new TestCaseData(backend, cell, loss, schedule).SetName($"{name}_{backend}_{cell}_{loss}_{schedule}");

    private static IEnumerable<TestCaseData> OutputRecurrentCases(string name) =>
        from loss in Enum.GetValues<SequenceLoss>()
        from input in new[] { 0, 2 }
        from schedule in Enum.GetValues<TrainingSchedule>()
        select new TestCaseData(loss, input, schedule).SetName($"{name}_{loss}_I{input}_{schedule}");

    private static IEnumerable<TestCaseData> LanguageModelTrainCases() => LanguageModelCases("LanguageModel_Train_EqualsSequencesAlone");
    private static IEnumerable<TestCaseData> LanguageModelAllStepsCases() => LanguageModelCases("LanguageModel_LengthsOfAllSteps_EqualNoLengths");
    private static IEnumerable<TestCaseData> OutputRecurrentTrainCases() => OutputRecurrentCases("OutputRecurrent_Train_EqualsSequencesAlone");
    private static IEnumerable<TestCaseData> OutputRecurrentAllStepsCases() => OutputRecurrentCases("OutputRecurrent_LengthsOfAllSteps_EqualNoLengths");

    [TestCaseSource(nameof(LanguageModelTrainCases))]
    public void LanguageModel_Train_EqualsSequencesAlone(string backend, CellKind cell, SequenceLoss loss, TrainingSchedule schedule) =>
        PaddedBatches.CheckTrainEqualsSequencesAlone(PaddedBatches.LanguageModel(cell, loss, HostBackend(backend)), loss, schedule);

    [TestCaseSource(nameof(LanguageModelAllStepsCases))]
    public void LanguageModel_LengthsOfAllSteps_EqualNoLengths(string backend, CellKind cell, SequenceLoss loss, TrainingSchedule schedule) =>
        PaddedBatches.CheckAllStepsEqualNoLengths(PaddedBatches.LanguageModel(cell, loss, HostBackend(backend)), loss, schedule);

    [TestCase("reference", SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase("reference", SequenceLoss.SquaredError)]
    [TestCase("native", SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase("native", SequenceLoss.SquaredError)]
    public void LanguageModel_TeacherForcedOutputs_AreThoseOfSequencesAlone_ZeroPastEnds(string backend, SequenceLoss loss) =>
        PaddedBatches.CheckOutputsEqualSequencesAlone(PaddedBatches.LanguageModel(CellKind.Lstm, loss, HostBackend(backend)), loss);

    [TestCaseSource(nameof(OutputRecurrentTrainCases))]
    public void OutputRecurrent_Train_EqualsSequencesAlone(SequenceLoss loss, int input, TrainingSchedule schedule) =>
        PaddedBatches.CheckTrainEqualsSequencesAlone(PaddedBatches.OutputRecurrent(loss, input, null), loss, schedule);

    [TestCaseSource(nameof(OutputRecurrentAllStepsCases))]
    public void OutputRecurrent_LengthsOfAllSteps_EqualNoLengths(SequenceLoss loss, int input, TrainingSchedule schedule) =>
        PaddedBatches.CheckAllStepsEqualNoLengths(PaddedBatches.OutputRecurrent(loss, input, null), loss, schedule);

    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 0)]
    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 2)]
    [TestCase(SequenceLoss.SquaredError, 2)]
    public void OutputRecurrent_TeacherForcedOutputs_AreThoseOfSequencesAlone_ZeroPastEnds(SequenceLoss loss, int input) =>
        PaddedBatches.CheckOutputsEqualSequencesAlone(PaddedBatches.OutputRecurrent(loss, input, null), loss);

    /// <summary>
    /// The double reference of the output-recurrent network (<see cref="ManagedMatrixOps{T}"/> in double) with lengths
    /// against its own sequences alone, to <see cref="Tolerances.DoubleSummationOrder"/>: the masking is exact, not
    /// merely within float rounding.
    /// </summary>
    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 0)]
    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 2)]
    [TestCase(SequenceLoss.SquaredError, 2)]
    public void OutputRecurrentDoubleReference_EqualsSequencesAlone(SequenceLoss loss, int input)
    {
        var network = PaddedBatches.OutputRecurrent(loss, input, null);
        var random = new Random(17);
        var x = PaddedBatches.Input(network.InputSize, random);
        var targets = PaddedBatches.Targets(loss, network.OutputSize, PaddedBatches.Lengths, random);
        var reference = SequenceOutputRecurrentTests.Widen(network.Network!);
        int steps = targets.Steps, batch = targets.Batch;
        var values = SequenceOutputRecurrentTests.Widen(targets.Values);
        double loss0 = reference.Train(TrainingSchedule.ParallelOverTime, SequenceOutputRecurrentTests.Widen(x), steps, batch, targets.TokenIds, values,
            PaddedBatches.Lengths);
        var grads = reference.Grads.Select(g => g.ToArray()).ToArray();

        double total = PaddedBatches.Lengths.Sum();
        double expectedLoss = 0;
        var expectedGrads = grads.Select(g => new double[g.Length]).ToArray();
        for (int n = 0; n < batch; n++)
        {
            int length = PaddedBatches.Lengths[n];
            var alone = PaddedBatches.Truncated(targets, n, length);
            foreach (var g in reference.Grads) g.Span.Clear();
            double lossN = reference.Train(TrainingSchedule.ParallelOverTime, SequenceOutputRecurrentTests.Widen(PaddedBatches.Truncated(x, n, length)), length, 1,
                alone.TokenIds, SequenceOutputRecurrentTests.Widen(alone.Values));
            expectedLoss += lossN * length / total;
            for (int p = 0; p < grads.Length; p++)
                for (int i = 0; i < grads[p].Length; i++) expectedGrads[p][i] += reference.Grads[p].Span[i] * length / total;
        }
        Assertions.AllClose([loss0], [expectedLoss], Tolerances.DoubleSummationOrder, "loss");
        for (int p = 0; p < grads.Length; p++)
            Assertions.AllClose(grads[p], expectedGrads[p], Tolerances.DoubleSummationOrder, network.Network!.Parameters.All[p].Name);
    }

    [Test]
    public void Targets_RejectBadLengths_NamingLengths()
    {
        var ids = new int[6];
        var values = new FloatTensor(3, 2, 4);
        int[][] bad = [[1], [1, 2, 3], [0, 2], [1, 4], [-1, 2]];
        foreach (var lengths in bad)
        {
            var tokens = Assert.Throws<ArgumentException>(() => SequenceTargets.Tokens(ids, 3, 2, lengths))!;
            Assert.That(tokens.ParamName, Is.EqualTo("lengths"), $"Tokens with [{string.Join(", ", lengths)}]");
            var real = Assert.Throws<ArgumentException>(() => SequenceTargets.Real(values, lengths))!;
            Assert.That(real.ParamName, Is.EqualTo("lengths"), $"Real with [{string.Join(", ", lengths)}]");
            if (lengths.Length == 2) Assert.That(tokens.Message, Does.Contain("[1, 3]"), "the expected range");
            else Assert.That(tokens.Message, Does.Contain("expected 2 lengths"), "the expected count");
        }
    }

    [Test]
    public void Targets_KeepTheirOwnCopyOfTheLengths()
    {
        int[] lengths = [2, 1];
        var targets = SequenceTargets.Tokens(new int[4], 2, 2, lengths);
        lengths[0] = 7;
        Assert.That(targets.Lengths, Is.EqualTo(new[] { 2, 1 }));
        Assert.That(SequenceTargets.Tokens(new int[4], 2, 2).Lengths, Is.Null);
    }

    /// <summary>Targets within each length are checked as ever; past an end they are not read, so anything goes there.</summary>
    [Test]
    public void Train_ChecksTargetsWithinLengthsOnly_BeforeAnyWork()
    {
        var model = new RecurrentSequenceModel(new Gru(3, 4, variant: GruVariant.ResetAfter, backend: ReferenceBackend.Instance), 5, SequenceLoss.SoftmaxCrossEntropy);
        // [T = 2, N = 2], lengths [1, 2]: id 9 at step 1 of sequence 0 is past its end; at step 1 of sequence 1 it is not.
        Assert.That(float.IsFinite(model.Train(SequenceTargets.Tokens([0, 1, 9, 2], 2, 2, [1, 2]))), Is.True);
        model.ZeroGrad();
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => model.Train(SequenceTargets.Tokens([0, 1, 2, 9], 2, 2, [1, 2])))!;
        Assert.That(outside.ParamName, Is.EqualTo("targets"));
        Assert.That(outside.Message, Does.Contain("step 1, sequence 1"));

        var network = new OutputRecurrentNetwork(0, 4, 3, SequenceLoss.SquaredError);
        var values = new FloatTensor(2, 2, 3);
        values[1, 0, 2] = float.NaN;
        Assert.That(float.IsFinite(network.Train(null, SequenceTargets.Real(values, [1, 2]))), Is.True);
        network.ZeroGrad();
        var nan = Assert.Throws<ArgumentException>(() => network.Train(null, SequenceTargets.Real(values, [2, 2])))!;
        Assert.That(nan.ParamName, Is.EqualTo("targets"));
        Assert.That(nan.Message, Does.Contain("step 1, sequence 0"));
        Assert.That(network.Parameters.Gradients.ToArray(), Is.All.EqualTo(0f), "a refused call touched the gradients");
    }
}

/// <summary>
/// The language model with its stack on an <see cref="IlgpuBackend"/> and the output-recurrent network on its device,
/// through <see cref="PaddedBatches"/>' checks. One backend per derived fixture; tiny shapes (the CPU accelerator is a
/// slow simulator).
/// </summary>
public abstract class IlgpuSequenceLengthsTests(IlgpuDevice device) : IlgpuBackendFixture(device)
{
    private static IEnumerable<TestCaseData> LanguageModelCases() =>
        from cell in PaddedBatches.Cells
        from loss in Enum.GetValues<SequenceLoss>()
        from schedule in Enum.GetValues<TrainingSchedule>()
        select new TestCaseData(cell, loss, schedule).SetArgDisplayNames(cell.ToString(), loss.ToString(), schedule.ToString());

    private static IEnumerable<TestCaseData> OutputRecurrentCases() =>
        from loss in Enum.GetValues<SequenceLoss>()
        from input in new[] { 0, 2 }
        from schedule in Enum.GetValues<TrainingSchedule>()
        select new TestCaseData(loss, input, schedule).SetArgDisplayNames(loss.ToString(), $"I{input}", schedule.ToString());

    [TestCaseSource(nameof(LanguageModelCases))]
    public void LanguageModel_Train_EqualsSequencesAlone(CellKind cell, SequenceLoss loss, TrainingSchedule schedule)
    {
        using var model = PaddedBatches.LanguageModel(cell, loss, Backend);
        Assert.That(model.OpsName, Does.StartWith("ilgpu-"));
        PaddedBatches.CheckTrainEqualsSequencesAlone(model, loss, schedule);
    }

    [TestCaseSource(nameof(LanguageModelCases))]
    public void LanguageModel_LengthsOfAllSteps_EqualNoLengths(CellKind cell, SequenceLoss loss, TrainingSchedule schedule)
    {
        using var model = PaddedBatches.LanguageModel(cell, loss, Backend);
        PaddedBatches.CheckAllStepsEqualNoLengths(model, loss, schedule);
    }

    [TestCase(SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(SequenceLoss.SquaredError)]
    public void LanguageModel_TeacherForcedOutputs_AreThoseOfSequencesAlone_ZeroPastEnds(SequenceLoss loss)
    {
        using var model = PaddedBatches.LanguageModel(CellKind.GruResetAfter, loss, Backend);
        PaddedBatches.CheckOutputsEqualSequencesAlone(model, loss);
    }

    [TestCaseSource(nameof(OutputRecurrentCases))]
    public void OutputRecurrent_Train_EqualsSequencesAlone(SequenceLoss loss, int input, TrainingSchedule schedule)
    {
        using var network = PaddedBatches.OutputRecurrent(loss, input, Backend);
        Assert.That(network.OpsName, Does.StartWith("ilgpu-"));
        PaddedBatches.CheckTrainEqualsSequencesAlone(network, loss, schedule);
    }

    [TestCaseSource(nameof(OutputRecurrentCases))]
    public void OutputRecurrent_LengthsOfAllSteps_EqualNoLengths(SequenceLoss loss, int input, TrainingSchedule schedule)
    {
        using var network = PaddedBatches.OutputRecurrent(loss, input, Backend);
        PaddedBatches.CheckAllStepsEqualNoLengths(network, loss, schedule);
    }

    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 0)]
    [TestCase(SequenceLoss.SquaredError, 2)]
    public void OutputRecurrent_TeacherForcedOutputs_AreThoseOfSequencesAlone_ZeroPastEnds(SequenceLoss loss, int input)
    {
        using var network = PaddedBatches.OutputRecurrent(loss, input, Backend);
        PaddedBatches.CheckOutputsEqualSequencesAlone(network, loss);
    }
}

/// <summary>On ILGPU's CPU accelerator: runs everywhere.</summary>
[TestFixture]
public sealed class IlgpuCpuSequenceLengthsTests() : IlgpuSequenceLengthsTests(IlgpuDevice.Cpu);

/// <summary>On a CUDA GPU; ignored with the reason where there is none.</summary>
[TestFixture]
[Category("Cuda")]
public sealed class IlgpuCudaSequenceLengthsTests() : IlgpuSequenceLengthsTests(IlgpuDevice.Cuda);

/// <summary>
/// Either sequence model behind one face, and the checks of a padded batch against its sequences alone. The batch:
/// T = 5, N = 3, lengths [3, 5, 1] (unsorted, with 1 and T); O = 4, so the output-recurrent network without input takes
/// its per-token step on the batch (O + 1 &lt; T·N) and the plain one on a sequence of one step.
/// </summary>
internal static class PaddedBatches
{
    public const int Steps = 5, Output = 4;
    public static readonly int[] Lengths = [3, 5, 1];
    public static readonly CellKind[] Cells = [CellKind.Lstm, CellKind.GruResetBefore];

    /// <summary>One model under test: train, teacher-forced outputs, its gradients by name, zeroing them.</summary>
    public sealed class Model(string name, int inputSize, int outputSize, Func<FloatTensor?, SequenceTargets, TrainingSchedule, float> train,
        Func<FloatTensor?, SequenceTargets, FloatTensor> outputs, Func<IEnumerable<(string Name, float[] Grad)>> gradients, Action zeroGrad, IDisposable? owner)
        : IDisposable
    {
        public int InputSize => inputSize;
        public int OutputSize => outputSize;
        public string OpsName => name;
        public OutputRecurrentNetwork? Network { get; init; }
        public float Train(FloatTensor? x, SequenceTargets targets, TrainingSchedule schedule) => train(x, targets, schedule);
        public FloatTensor TeacherForcedOutputs(FloatTensor? x, SequenceTargets targets) => outputs(x, targets);
        public (string Name, float[] Grad)[] Gradients() => gradients().Select(g => (g.Name, (float[])g.Grad.Clone())).ToArray();
        public void ZeroGrad() => zeroGrad();
        public void Dispose() => owner?.Dispose();
    }

    /// <summary>The language model (I = 3, H = 5, two layers, O = 4, a start token for tokens) with its stack on <paramref name="backend"/>.</summary>
    public static Model LanguageModel(CellKind cell, SequenceLoss loss, IRnnBackend? backend)
    {
        var layer = TestLayers.Create(new RnnConfig(cell, 3, 5, numLayers: 2), backend, seed: 5);
        var model = new RecurrentSequenceModel(layer, Output, loss, loss == SequenceLoss.SoftmaxCrossEntropy ? Output - 1 : null, seed: 5);
        return new Model(model.OpsName, 0, Output, (_, targets, schedule) => model.Train(targets, schedule), (_, targets) => model.TeacherForcedOutputs(targets),
            () => model.Parameters.All.Select(p => (p.Name, p.Grad.ToArray())),
            model.ZeroGrad, model);
    }

    /// <summary>The output-recurrent network (I = <paramref name="inputSize"/>, H = 6, O = 4, tanh) on the CPU or <paramref name="device"/>.</summary>
    public static Model OutputRecurrent(SequenceLoss loss, int inputSize, IlgpuBackend? device)
    {
        var network = new OutputRecurrentNetwork(inputSize, 6, Output, loss, startToken: loss == SequenceLoss.SoftmaxCrossEntropy ? 1 : null, seed: 7, device: device);
        return new Model(network.OpsName, inputSize, Output, network.Train, network.TeacherForcedOutputs,
            () => network.Parameters.All.Select(p => (p.Name, p.Grad.ToArray())), network.ZeroGrad, network) { Network = network };
    }

    /// <summary>x [T, N, I] for an output-recurrent network with input (null without): random everywhere, past the ends too.</summary>
    public static FloatTensor? Input(int inputSize, Random random) =>
        inputSize == 0 ? null : new FloatTensor(TestData.UniformSingle(random, Steps * Lengths.Length * inputSize), Steps, Lengths.Length, inputSize);

    /// <summary>
    /// Random targets [T, N] or [T, N, O] with <paramref name="lengths"/> (or none); past each end they hold what must not be
    /// read: ids outside the vocabulary (negative and too large) or NaN.
    /// </summary>
    public static SequenceTargets Targets(SequenceLoss loss, int outputSize, int[]? lengths, Random random)
    {
        int batch = Lengths.Length;
        bool Past(int t, int n) => lengths is not null && t >= lengths[n];
        if (loss == SequenceLoss.SoftmaxCrossEntropy)
        {
            var ids = new int[Steps * batch];
            for (int t = 0; t < Steps; t++)
                for (int n = 0; n < batch; n++) ids[t * batch + n] = Past(t, n) ? (n % 2 == 0 ? -5 : outputSize + 7) : random.Next(outputSize);
            return SequenceTargets.Tokens(ids, Steps, batch, lengths);
        }
        var values = new FloatTensor(TestData.UniformSingle(random, Steps * batch * outputSize), Steps, batch, outputSize);
        for (int t = 0; t < Steps; t++)
            for (int n = 0; n < batch; n++)
                if (Past(t, n))
                    for (int o = 0; o < outputSize; o++) values[t, n, o] = float.NaN;
        return SequenceTargets.Real(values, lengths);
    }

    /// <summary>Sequence n of <paramref name="targets"/> alone, its first <paramref name="length"/> steps: a batch of one.</summary>
    public static SequenceTargets Truncated(SequenceTargets targets, int n, int length)
    {
        int batch = targets.Batch;
        if (targets.TokenIds is { } ids)
            return SequenceTargets.Tokens(Enumerable.Range(0, length).Select(t => ids[t * batch + n]).ToArray(), length, 1);
        return SequenceTargets.Real(Truncated(targets.Values, n, length)!);
    }

    /// <summary>Rows [0, length) of sequence n of a [T, N, F] tensor, as [length, 1, F]; null for null.</summary>
    public static FloatTensor? Truncated(FloatTensor? padded, int n, int length)
    {
        if (padded is null) return null;
        int batch = padded.Shape[1], features = padded.Shape[2];
        var data = new float[length * features];
        for (int t = 0; t < length; t++) padded.Span.Slice((t * batch + n) * features, features).CopyTo(data.AsSpan(t * features));
        return new FloatTensor(data, length, 1, features);
    }

    /// <summary>
    /// The padded batch's loss and every gradient against Σ_n (length_n / Σ lengths) · those of sequence n trained alone:
    /// the mean over the real tokens, to <see cref="Tolerances.Float32"/>.
    /// </summary>
    public static void CheckTrainEqualsSequencesAlone(Model model, SequenceLoss loss, TrainingSchedule schedule)
    {
        var random = new Random(23);
        var x = Input(model.InputSize, random);
        var targets = Targets(loss, model.OutputSize, Lengths, random);
        model.ZeroGrad();
        float batchLoss = model.Train(x, targets, schedule);
        var batchGrads = model.Gradients();

        double total = Lengths.Sum(), expectedLoss = 0;
        var expectedGrads = batchGrads.Select(g => new double[g.Grad.Length]).ToArray();
        for (int n = 0; n < Lengths.Length; n++)
        {
            int length = Lengths[n];
            model.ZeroGrad();
            expectedLoss += (double)model.Train(Truncated(x, n, length), Truncated(targets, n, length), schedule) * length / total;
            var grads = model.Gradients();
            for (int p = 0; p < grads.Length; p++)
                for (int i = 0; i < grads[p].Grad.Length; i++) expectedGrads[p][i] += (double)grads[p].Grad[i] * length / total;
        }
        Assert.That(float.IsFinite(batchLoss), Is.True, $"loss {batchLoss}: a target past an end was read");
        Assertions.AllClose([batchLoss], [expectedLoss], Tolerances.Float32, "loss");
        for (int p = 0; p < batchGrads.Length; p++)
            Assertions.AllClose(batchGrads[p].Grad, expectedGrads[p], Tolerances.Float32, batchGrads[p].Name);
    }

    /// <summary>Lengths that are all T describe the dense batch: the same loss and gradients as no lengths.</summary>
    public static void CheckAllStepsEqualNoLengths(Model model, SequenceLoss loss, TrainingSchedule schedule)
    {
        var random = new Random(29);
        var x = Input(model.InputSize, random);
        var dense = Targets(loss, model.OutputSize, null, random);
        var full = dense.TokenIds is { } ids
            ? SequenceTargets.Tokens(ids, dense.Steps, dense.Batch, Enumerable.Repeat(Steps, dense.Batch).ToArray())
            : SequenceTargets.Real(dense.Values!, Enumerable.Repeat(Steps, dense.Batch).ToArray());
        model.ZeroGrad();
        float expected = model.Train(x, dense, schedule);
        var expectedGrads = model.Gradients();
        model.ZeroGrad();
        float actual = model.Train(x, full, schedule);
        Assertions.AllClose([actual], [expected], Tolerances.Float32, "loss");
        foreach (var ((name, grad), (_, want)) in model.Gradients().Zip(expectedGrads))
            Assertions.AllClose(grad, Array.ConvertAll(want, v => (double)v), Tolerances.Float32, name);
    }

    /// <summary>Teacher-forced outputs of a padded batch: those of each sequence alone within its length, zero past it.</summary>
    public static void CheckOutputsEqualSequencesAlone(Model model, SequenceLoss loss)
    {
        var random = new Random(31);
        var x = Input(model.InputSize, random);
        var targets = Targets(loss, model.OutputSize, Lengths, random);
        var outputs = model.TeacherForcedOutputs(x, targets);
        for (int n = 0; n < Lengths.Length; n++)
        {
            var alone = model.TeacherForcedOutputs(Truncated(x, n, Lengths[n]), Truncated(targets, n, Lengths[n]));
            var ours = Truncated(outputs, n, Steps)!;
            int within = Lengths[n] * model.OutputSize;
            Assertions.AllClose(ours.Span[..within], Array.ConvertAll(alone.ToArray(), v => (double)v), Tolerances.Float32, $"sequence {n}");
            Assert.That(ours.Span[within..].ToArray(), Is.All.EqualTo(0f), $"sequence {n} past its end");
        }
    }
}
