using NUnit.Framework;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>The backends every layer-level reliability test runs on.</summary>
public abstract class EveryBackendFixture
{
    private IlgpuBackend? _ilgpu;

    protected static readonly string[] BackendNames = ["reference", "native-fused", "native-unfused", "ilgpu-cpu"];

    [OneTimeTearDown]
    public void DisposeIlgpu() => _ilgpu?.Dispose();

    protected IRnnBackend Backend(string name) => name switch
    {
        "reference" => ReferenceBackend.Instance,
        "native-fused" => new NativeCpuBackend(fused: true),
        "native-unfused" => new NativeCpuBackend(fused: false),
        "ilgpu-cpu" => _ilgpu ??= new IlgpuBackend(IlgpuDevice.Cpu),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };
}

/// <summary>
/// What a forward pass keeps for backward is its own: the example of x changed after Forward, and replacing the
/// parameters in between is refused (as PyTorch's version counter does). Overwriting every argument of a dense or table
/// pass after forward is the backend contract's (BackendContractTests).
/// </summary>
[TestFixture]
public class ForwardKeepsItsOwnInputsTests : EveryBackendFixture
{
    private static IEnumerable<TestCaseData> BackendCases() => BackendNames.Select(b => new TestCaseData(b).SetArgDisplayNames(b));

    [TestCaseSource(nameof(BackendCases))]
    public void Backward_DifferentiatesThePassThatRan_WhenXIsChangedAfterForward(string backend)
    {
        // The example: dW_ih = (1 − tanh²(0.5)) · 0.5 = 0.39322 for the pass that ran with x = 0.5.
        var rnn = new ElmanRnn(1, 1, backend: Backend(backend));
        foreach (var p in rnn.Parameters.All) p.Value.Span.Clear();
        rnn.Parameters["weight_ih_l0"].Value.Span[0] = 1;
        var x = new FloatTensor([0.5f], 1, 1, 1);
        using var forward = rnn.Forward(x, keepForBackward: true);
        x.Span[0] = 0;
        rnn.Backward(forward, new FloatTensor([1f], 1, 1, 1));
        double expected = (1 - Math.Pow(Math.Tanh(0.5), 2)) * 0.5;
        Assert.That(rnn.Parameters["weight_ih_l0"].Grad.Span[0], Is.EqualTo(expected).Within(1e-5));
    }

    [TestCaseSource(nameof(BackendCases))]
    public void Backward_Throws_WhenParametersWereReplacedAfterForward(string backend)
    {
        var path = Path.Combine(Path.GetTempPath(), $"recurrent-version-{Guid.NewGuid():N}.safetensors");
        try
        {
            var gru = new Gru(2, 3, variant: GruVariant.ResetAfter, backend: Backend(backend));
            gru.Save(path);
            var x = new FloatTensor(TestData.UniformSingle(new Random(1), 2 * 2 * 2), 2, 2, 2);
            using var forward = gru.Forward(x, keepForBackward: true);
            gru.Load(path);
            Assert.That(() => gru.Backward(forward, null), Throws.InvalidOperationException.With.Message.Contains("replaced"));
            using var reset = gru.Forward(x, keepForBackward: true);
            gru.Parameters.Reset(seed: 2);
            Assert.That(() => gru.Backward(reset, null), Throws.InvalidOperationException);
            Assert.That(gru.Parameters.All.SelectMany(p => p.Grad.ToArray()), Is.All.EqualTo(0f), "a refused backward adds nothing");
            using var fresh = gru.Forward(x, keepForBackward: true);
            Assert.That(() => gru.Backward(fresh, null), Throws.Nothing);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>
/// Every size product is checked in 64-bit before anything is allocated: an impossible size is an
/// <see cref="ArgumentOutOfRangeException"/> naming the sizes, never a wrapped product (an empty weight) or an
/// <see cref="OverflowException"/>.
/// </summary>
[TestFixture]
public class SizeOverflowTests
{
    [Test]
    public void Lstm_Throws_WhenGateRowsOverflowInt()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Lstm(1, 1 << 30))!;
        Assert.That(e.ParamName, Is.EqualTo("hiddenSize"));
        Assert.That(e.Message, Does.Contain("G·H·H").And.Contain("4·1073741824·1073741824"));
    }

    private static IEnumerable<TestCaseData> ImpossibleLayers()
    {
        yield return new TestCaseData((Func<object>)(() => new Gru(1 << 30, 16, variant: GruVariant.ResetBefore)), "inputSize").SetArgDisplayNames("GRU G·H·I");
        yield return new TestCaseData((Func<object>)(() => new ElmanRnn(1, 40_000, numLayers: 2, bidirectional: true)), "hiddenSize").SetArgDisplayNames("RNN G·H·D·H");
        yield return new TestCaseData((Func<object>)(() => new ElmanRnn(1, 50_000)), "hiddenSize").SetArgDisplayNames("RNN H·H");
        yield return new TestCaseData((Func<object>)(() => new Lstm(1, 1 << 20, numLayers: 1 << 10, bidirectional: true)), "numLayers").SetArgDisplayNames("LSTM L·D·H");
        yield return new TestCaseData((Func<object>)(() => new OutputRecurrentNetwork(50000, 50000, 10, SequenceLoss.SquaredError)), "inputSize").SetArgDisplayNames("output-recurrent I·H");
        yield return new TestCaseData((Func<object>)(() => new OutputRecurrentNetwork(0, 50000, 50000, SequenceLoss.SoftmaxCrossEntropy)), "outputSize").SetArgDisplayNames("output-recurrent O·H");
        yield return new TestCaseData((Func<object>)(() => new RecurrentSequenceModel(new ElmanRnn(60_000, 2), 60_000, SequenceLoss.SoftmaxCrossEntropy)), "outputSize").SetArgDisplayNames("language model O·I");
        yield return new TestCaseData((Func<object>)(() => new FloatTensor(1 << 16, 1 << 16)), "shape").SetArgDisplayNames("tensor");
        yield return new TestCaseData((Func<object>)(() => new ElmanRnn(1, 1, numLayers: 1 << 27)), "numLayers").SetArgDisplayNames("RNN total parameters");
        yield return new TestCaseData((Func<object>)(() => new Lstm(40_000, 12_000)), "hiddenSize").SetArgDisplayNames("LSTM total parameters, one layer");
    }

    [TestCaseSource(nameof(ImpossibleLayers))]
    public void Constructor_ThrowsArgumentOutOfRange_NamingTheSize(Func<object> create, string argument)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => create())!;
        Assert.That(e.ParamName, Is.EqualTo(argument));
    }

    [Test]
    public void Tensor_WithAnEmptyDimension_IsEmpty_WhateverTheOrder()
    {
        Assert.That(new FloatTensor(int.MaxValue, 0).Length, Is.Zero);
        Assert.That(new FloatTensor(0, int.MaxValue).Length, Is.Zero);
        Assert.That(new FloatTensor(65536, 65536, 0).Length, Is.Zero);
        Assert.That(() => new RnnParameters(null!), Throws.ArgumentNullException);
        Assert.That(() => new FloatTensor(2, 2)[null!], Throws.ArgumentNullException);
    }

    [Test]
    public void Sgemm_Throws_WhenAnOperandOverlapsC()
    {
        var buffer = new float[8];
        Assert.That(() => Kernels.Cpu.NativeGemm.Sgemm(false, false, 2, 2, 2, 1, buffer.AsSpan(0, 4), 2, buffer.AsSpan(4, 4), 2, 0, buffer.AsSpan(2, 4), 2),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("a"));
        Assert.That(() => Kernels.Cpu.NativeGemm.Sgemm(false, false, 2, 2, 2, 1, new float[4], 2, buffer.AsSpan(0, 4), 2, 0, buffer.AsSpan(3, 4), 2),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("b"));
    }

    [Test]
    public void Forward_Throws_WhenTheOutputWouldOverflow()
    {
        // x [1000, 1000, 1] is 4 MB; y [1000, 1000, 2·1100] would be 2.2e9 elements.
        var rnn = new ElmanRnn(1, 1100, bidirectional: true);
        var x = new FloatTensor(1000, 1000, 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => rnn.Forward(x))!;
        Assert.That(e.ParamName, Is.EqualTo("x"));
        Assert.That(e.Message, Does.Contain("T·N·D·H"));
        var ids = new int[1000 * 1000];
        Assert.That(() => rnn.ForwardFromTable(new FloatTensor(3, 1), ids, 1000, 1000),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ids"));
    }

    [Test]
    public void NativeRnnForward_RefusesBuffersTooShortForAHugeHiddenSize_InsteadOfWrappingGH()
    {
        // G·H = 4·2³⁰ wrapped to 0 in int, so empty weights passed the length checks and the native code ran on them.
        var small = new float[16];
        var e = Assert.Throws<ArgumentException>(() => Kernels.Cpu.NativeRnn.Forward(CellKind.Lstm, true, 1, 1, 1, 1 << 30, false,
            small, small, small, small, Kernels.Cpu.RnnInputRows.Dense(small), small, small, small, small, small, keepForBackward: false))!;
        Assert.That(e.ParamName, Is.EqualTo("weightIH"));
        Assert.That(e.Message, Does.Contain("4294967296"));
    }

    [Test]
    public void SequenceModels_Throw_WhenABatchBufferWouldOverflow()
    {
        var model = new RecurrentSequenceModel(new ElmanRnn(4, 4), 3000, SequenceLoss.SoftmaxCrossEntropy);
        var targets = SequenceTargets.Tokens(new int[1000 * 1000], 1000, 1000);   // T·N·O = 3e9
        Assert.That(() => model.Train(targets), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("targets"));
        Assert.That(() => model.Generate(1000, 1000), Throws.TypeOf<ArgumentOutOfRangeException>());
        using var network = new OutputRecurrentNetwork(0, 4, 3000, SequenceLoss.SoftmaxCrossEntropy);
        Assert.That(() => network.Train(null, targets), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("targets"));
        Assert.That(() => network.Generate(null, 1 << 16, 1 << 16), Throws.TypeOf<ArgumentOutOfRangeException>());
    }
}

/// <summary>
/// Concurrent use: backward passes of one layer from several threads add up to the serial sum; replacing parameters
/// while a pass runs, and a second call into a sequence model, are refused with <see cref="InvalidOperationException"/>.
/// </summary>
[TestFixture]
public class ConcurrencyTests : EveryBackendFixture
{
    private static IEnumerable<TestCaseData> ConcurrentCases()
    {
        // The example on the native backend; smaller where a backend is slow.
        yield return new TestCaseData("native-fused", 64, 384).SetArgDisplayNames("native-fused", "I64_H384");
        yield return new TestCaseData("native-unfused", 64, 384).SetArgDisplayNames("native-unfused", "I64_H384");
        yield return new TestCaseData("reference", 8, 24).SetArgDisplayNames("reference", "I8_H24");
        yield return new TestCaseData("ilgpu-cpu", 4, 8).SetArgDisplayNames("ilgpu-cpu", "I4_H8");
    }

    [TestCaseSource(nameof(ConcurrentCases))]
    public void ConcurrentBackward_AccumulatesTheSumOfSerialGradients(string backend, int input, int hidden)
    {
        const int threads = 8, steps = 8, batch = 8;
        var inputs = Enumerable.Range(0, threads).Select(k =>
        {
            var random = new Random(100 + k);
            return (X: new FloatTensor(TestData.UniformSingle(random, steps * batch * input), steps, batch, input),
                    Dy: new FloatTensor(TestData.UniformSingle(random, steps * batch * hidden), steps, batch, hidden));
        }).ToArray();

        var serial = new Lstm(input, hidden, backend: Backend(backend), seed: 9);
        var expected = serial.Parameters.All.Select(p => new double[p.Grad.Length]).ToArray();
        foreach (var (x, dy) in inputs)
        {
            serial.ZeroGrad();
            using var forward = serial.Forward(x, keepForBackward: true);
            serial.Backward(forward, dy);
            for (int p = 0; p < expected.Length; p++)
                for (int i = 0; i < expected[p].Length; i++) expected[p][i] += serial.Parameters.All[p].Grad.Span[i];
        }

        var shared = new Lstm(input, hidden, backend: Backend(backend), seed: 9);
        using var start = new Barrier(threads);
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, k =>
        {
            start.SignalAndWait();
            using var forward = shared.Forward(inputs[k].X, keepForBackward: true);
            shared.Backward(forward, inputs[k].Dy);
        });
        for (int p = 0; p < expected.Length; p++)
            Assertions.AllClose(shared.Parameters.All[p].Grad.ToArray(), expected[p], Tolerances.SummationOrder, shared.Parameters.All[p].Name);
    }

    [Test]
    public void Load_Throws_WhileAPassRunsOnAnotherThread_AndPassesResumeAfterwards()
    {
        using var gate = new BlockingBackend(ReferenceBackend.Instance);
        var rnn = new ElmanRnn(2, 3, backend: gate);
        var path = Path.Combine(Path.GetTempPath(), $"recurrent-busy-{Guid.NewGuid():N}.safetensors");
        try
        {
            rnn.Save(path);
            var before = rnn.Parameters.All.Select(p => p.Value.ToArray()).ToArray();
            var pass = Task.Run(() => rnn.Forward(new FloatTensor(2, 1, 2)).Dispose());
            gate.WaitUntilInside();
            Assert.That(() => rnn.Load(path), Throws.InvalidOperationException.With.Message.Contains("running on other threads"));
            Assert.That(() => rnn.Parameters.Reset(3), Throws.InvalidOperationException);
            gate.Release();
            pass.Wait();
            for (int p = 0; p < before.Length; p++) Assert.That(rnn.Parameters.All[p].Value.ToArray(), Is.EqualTo(before[p]));
            Assert.That(() => rnn.Load(path), Throws.Nothing);
        }
        finally
        {
            gate.Release();
            File.Delete(path);
        }
    }

    [Test]
    public void SequenceModel_RefusesASecondCall_WhileOneRunsOnAnotherThread()
    {
        using var gate = new BlockingBackend(ReferenceBackend.Instance);
        var model = new RecurrentSequenceModel(new ElmanRnn(3, 4, backend: gate), 5, SequenceLoss.SoftmaxCrossEntropy);
        var targets = SequenceTargets.Tokens([1, 2, 3, 4], 2, 2);
        var first = Task.Run(() => model.Train(targets));
        gate.WaitUntilInside();
        Assert.That(() => model.Train(targets), Throws.InvalidOperationException.With.Message.Contains("not thread-safe"));
        Assert.That(() => model.Generate(2, 2), Throws.InvalidOperationException);
        Assert.That(() => model.SgdStep(0.1f), Throws.InvalidOperationException);
        Assert.That(() => model.ZeroGrad(), Throws.InvalidOperationException);
        gate.Release();
        Assert.That(float.IsFinite(first.Result), "the first call completes");
        Assert.That(() => model.Train(targets), Throws.Nothing);
    }

    [Test]
    public void OutputRecurrentNetwork_RefusesASecondCall_WhileOneRuns()
    {
        using var network = new OutputRecurrentNetwork(0, 64, 32, SequenceLoss.SoftmaxCrossEntropy);
        var random = new Random(4);
        var targets = SequenceTargets.Tokens(Enumerable.Range(0, 64 * 64).Select(_ => random.Next(32)).ToArray(), 64, 64);
        int refused = 0, completed = 0;
        Parallel.For(0, 4, _ =>
        {
            for (int i = 0; i < 20; i++)
            {
                try
                {
                    network.Train(null, targets, TrainingSchedule.StepByStep);
                    Interlocked.Increment(ref completed);
                }
                catch (InvalidOperationException)
                {
                    Interlocked.Increment(ref refused);
                }
            }
        });
        Assert.That(completed + refused, Is.EqualTo(80));
        Assert.That(completed, Is.GreaterThan(0));
    }
}

/// <summary>The example at the layer API: a NaN parameter gives NaN outputs on every backend, as PyTorch does.</summary>
[TestFixture]
public class NaNParameterAtTheLayerTests : EveryBackendFixture
{
    private static IEnumerable<TestCaseData> Cases() =>
        from activation in Enum.GetValues<RnnActivation>()
        from backend in BackendNames
        select new TestCaseData(activation, backend).SetArgDisplayNames(activation.ToString(), backend);

    [TestCaseSource(nameof(Cases))]
    public void Forward_GivesNaN_WhenTheOnlyInputWeightIsNaN(RnnActivation activation, string backend)
    {
        var rnn = new ElmanRnn(1, 1, activation: activation, backend: Backend(backend));
        foreach (var p in rnn.Parameters.All) p.Value.Span.Clear();
        rnn.Parameters["weight_ih_l0"].Value.Span[0] = float.NaN;
        using var result = rnn.Forward(new FloatTensor([1f], 1, 1, 1), keepForBackward: true);
        Assert.That(result.Output.Span[0], Is.NaN, "y");
        Assert.That(result.HiddenState.Span[0], Is.NaN, "hN");
        rnn.Backward(result, new FloatTensor([1f], 1, 1, 1));
        // tanh′ = 1 − h² is NaN; relu′ passes the gradient at a NaN h (PyTorch's threshold_backward: h ≤ 0 ? 0 : dy), so dW_ih = dy·x = 1.
        float dW = rnn.Parameters["weight_ih_l0"].Grad.Span[0];
        if (activation == RnnActivation.Tanh) Assert.That(dW, Is.NaN, "dW_ih");
        else Assert.That(dW, Is.EqualTo(1f), "dW_ih");
    }
}

/// <summary>A sequence model never returns a finite loss while its gradients hold NaN or ∞.</summary>
[TestFixture]
public class SequenceModelNonFiniteTests
{
    [Test]
    public void Train_ReturnsNaN_WhenBackwardMakesANonFiniteGradient()
    {
        var poison = new PoisoningBackend(ReferenceBackend.Instance);
        var model = new RecurrentSequenceModel(new Lstm(3, 4, backend: poison), 5, SequenceLoss.SoftmaxCrossEntropy);
        float loss = model.Train(SequenceTargets.Tokens([1, 2, 3, 4, 0, 1], 3, 2));
        Assert.That(loss, Is.NaN);
    }

    private static IEnumerable<TestCaseData> NaNParameterCases() =>
        from cell in TestData.AllCells
        from schedule in Enum.GetValues<TrainingSchedule>()
        from name in new[] { "weight_hh_l0", "bias_ih_l0", "embedding", "output_weight" }
        select new TestCaseData(cell, schedule, name).SetArgDisplayNames(cell.ToString(), schedule.ToString(), name);

    [TestCaseSource(nameof(NaNParameterCases))]
    public void Train_ReturnsNaN_WhenAParameterIsNaN(CellKind cell, TrainingSchedule schedule, string name)
    {
        var layer = PyTorchData.CreateLayer(new RnnConfig(cell, 3, 4), new NativeCpuBackend());
        var model = new RecurrentSequenceModel(layer, 5, SequenceLoss.SoftmaxCrossEntropy);
        var values = (model.Parameters.TryGet(name, out var own) ? own : layer.Parameters[name]).Value;
        values.Span[1] = float.NaN;
        float loss = model.Train(SequenceTargets.Tokens([1, 2, 3, 4, 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 0, 0, 0], 6, 3), schedule);
        Assert.That(loss, Is.NaN);
    }

    [TestCase(TrainingSchedule.ParallelOverTime, 0)]
    [TestCase(TrainingSchedule.StepByStep, 0)]
    [TestCase(TrainingSchedule.ParallelOverTime, 2)]
    [TestCase(TrainingSchedule.StepByStep, 2)]
    public void OutputRecurrentNetwork_ReturnsNaN_WhenAParameterIsNaN(TrainingSchedule schedule, int inputSize)
    {
        using var network = new OutputRecurrentNetwork(inputSize, 4, 5, SequenceLoss.SoftmaxCrossEntropy);
        foreach (var parameter in network.Parameters.All.Where(p => p.Value.Length > 1))
        {
            network.ZeroGrad();
            float saved = parameter.Value.Span[1];
            parameter.Value.Span[1] = float.NaN;
            var x = inputSize == 0 ? null : new FloatTensor(TestData.UniformSingle(new Random(3), 6 * 3 * inputSize), 6, 3, inputSize);
            float loss = network.Train(x, SequenceTargets.Tokens([1, 2, 3, 4, 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 0, 0, 0], 6, 3), schedule);
            Assert.That(loss, Is.NaN, parameter.Name);
            parameter.Value.Span[1] = saved;
        }
    }

    /// <summary>Targets over tokens 0..3 of a vocabulary of 5, start token 0: token 4 is never fed back.</summary>
    private static SequenceTargets TargetsWithoutToken4() =>
        SequenceTargets.Tokens(Enumerable.Range(0, 6 * 4).Select(i => i * 7 % 4).ToArray(), 6, 4);

    private static IEnumerable<TestCaseData> UnusedRowCases() =>
        from cell in TestData.AllCells
        from value in new[] { float.NaN, float.PositiveInfinity }
        select new TestCaseData(cell, value).SetArgDisplayNames(cell.ToString(), value.ToString());

    [TestCaseSource(nameof(UnusedRowCases))]
    public void Train_SchedulesAgreeAndStayFinite_WhenAnUnusedEmbeddingRowIsNotFinite(CellKind cell, float value)
    {
        // The parallel schedule reads the stack's input from the embedding table; a row no token selects is not a row
        // of the dense input, so it must not reach dW_ih or the loss (0 · NaN would).
        (float Loss, float[][] Grads) Run(TrainingSchedule schedule)
        {
            var layer = PyTorchData.CreateLayer(new RnnConfig(cell, 3, 3), new NativeCpuBackend());
            var model = new RecurrentSequenceModel(layer, 5, SequenceLoss.SoftmaxCrossEntropy, startToken: 0);
            for (int i = 0; i < 3; i++) model.Parameters["embedding"].Value.Span[4 * 3 + i] = value;
            float loss = model.Train(TargetsWithoutToken4(), schedule);
            return (loss, model.Parameters.All.Select(p => p.Grad.ToArray()).ToArray());
        }
        AssertSchedulesAgreeAndStayFinite(Run);
    }

    /// <summary>The parallel step gives the step-by-step loss (finite) and gradients.</summary>
    private static void AssertSchedulesAgreeAndStayFinite(Func<TrainingSchedule, (float Loss, float[][] Grads)> run)
    {
        var parallel = run(TrainingSchedule.ParallelOverTime);
        var stepByStep = run(TrainingSchedule.StepByStep);
        Assert.That(float.IsFinite(stepByStep.Loss), "the step-by-step loss");
        Assert.That(parallel.Loss, Is.EqualTo(stepByStep.Loss).Within(1e-5f));
        for (int p = 0; p < parallel.Grads.Length; p++)
            Assertions.AllClose(parallel.Grads[p], Array.ConvertAll(stepByStep.Grads[p], v => (double)v), Tolerances.Float32, $"gradient {p}");
    }

    private static IEnumerable<TestCaseData> UnusedFeedbackCases() =>
        from device in new[] { "cpu", "ilgpu-cpu" }
        from value in new[] { float.NaN, float.PositiveInfinity }
        select new TestCaseData(device, value).SetArgDisplayNames(device, value.ToString());

    [TestCaseSource(nameof(UnusedFeedbackCases))]
    public void OutputRecurrentNetwork_SchedulesAgree_WhenAnUnusedFeedbackRowIsNotFinite(string device, float value)
    {
        using var gpu = device == "cpu" ? null : new IlgpuBackend(IlgpuDevice.Cpu);
        (float Loss, float[][] Grads) Run(TrainingSchedule schedule)
        {
            using var network = new OutputRecurrentNetwork(0, 3, 5, SequenceLoss.SoftmaxCrossEntropy, startToken: 0, device: gpu);
            var feedback = network.Parameters["feedback_weight"].Value;
            for (int h = 0; h < 3; h++) feedback.Span[4 * 3 + h] = value;
            float loss = network.Train(null, TargetsWithoutToken4(), schedule);
            return (loss, network.Parameters.All.Select(p => p.Grad.ToArray()).ToArray());
        }
        AssertSchedulesAgreeAndStayFinite(Run);
    }

    [Test]
    public void SgdStep_Throws_WhenTheLearningRateIsNotFinite()
    {
        var model = new RecurrentSequenceModel(new ElmanRnn(2, 2), 3, SequenceLoss.SoftmaxCrossEntropy);
        Assert.That(() => model.SgdStep(float.NaN), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("learningRate"));
        using var network = new OutputRecurrentNetwork(0, 2, 3, SequenceLoss.SoftmaxCrossEntropy);
        Assert.That(() => network.SgdStep(float.PositiveInfinity), Throws.TypeOf<ArgumentOutOfRangeException>());
    }
}

/// <summary>A backend that holds its first forward pass until released, so a test can act while a pass is in flight.</summary>
internal sealed class BlockingBackend(IRnnBackend inner) : IRnnBackend, IDisposable
{
    private readonly ManualResetEventSlim _inside = new(), _release = new();

    public string Name => inner.Name;

    public void WaitUntilInside()
    {
        if (!_inside.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("the pass never started");
    }

    public void Release() => _release.Set();

    public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null)
    {
        _inside.Set();
        if (!_release.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("never released");
        return inner.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, lengths);
    }

    public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0) =>
        inner.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);

    public void Dispose()
    {
        _inside.Dispose();
        _release.Dispose();
    }
}

/// <summary>A backend whose backward adds ∞ into one gradient, as an overflow inside backward would.</summary>
internal sealed class PoisoningBackend(IRnnBackend inner) : IRnnBackend
{
    public string Name => inner.Name;

    public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null) =>
        inner.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, lengths);

    public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0)
    {
        inner.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        parameters.All[1].Grad.Span[0] = float.PositiveInfinity;
    }
}
