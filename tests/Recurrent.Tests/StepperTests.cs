using NUnit.Framework;
using Recurrent.Kernels.Cpu;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// <see cref="RecurrentLayer.CreateStepper"/> on every backend: T steps equal one whole-sequence forward pass (outputs and
/// final states), generation through it feeds back what it emits, and bad states, stale weights and disposal are refused.
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

    internal static IRnnBackend CreateBackend(string name) => name switch
    {
        "reference" => ReferenceBackend.Instance,
        "native-cpu" => new NativeCpuBackend(fused: true),
        "native-cpu-unfused" => new NativeCpuBackend(fused: false),
        "ilgpu-cpu" => new IlgpuBackend(IlgpuDevice.Cpu, fused: true),
        "ilgpu-cpu-unfused" => new IlgpuBackend(IlgpuDevice.Cpu, fused: false),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static IEnumerable<TestCaseData> StepCases() =>
        from backend in Backends
        from cell in TestData.AllCells
        from layers in new[] { 1, 2 }
        from shape in backend.StartsWith("ilgpu") ? TinyShapes : NativeShapes
        select new TestCaseData(backend, cell, layers, shape).SetName($"Steps_MatchWholeSequenceForward_{backend}_{cell}_L{layers}_{shape}");

    [TestCaseSource(nameof(StepCases))]
    public void Steps_MatchWholeSequenceForward(string backendName, CellKind cell, int layers, Shape shape)
    {
        var backend = CreateBackend(backendName);
        try
        {
            var config = new RnnConfig(cell, shape.Input, shape.Hidden, layers);
            var layer = TestLayers.Create(config, backend, seed: 4);
            var random = new Random(shape.GetHashCode() ^ (int)cell);
            int[] state = config.StateShape(shape.Batch);
            int ni = shape.Batch * shape.Input, nh = shape.Batch * shape.Hidden;
            var x = new Tensor(TestData.UniformSingle(random, shape.Steps * ni), shape.Steps, shape.Batch, shape.Input);
            var h0 = new Tensor(TestData.UniformSingle(random, layers * nh), state);
            var c0 = cell.HasCellState() ? new Tensor(TestData.UniformSingle(random, layers * nh), state) : null;
            using var whole = layer.Forward(x, h0, c0);

            using var stepper = layer.CreateStepper();
            Assert.That(stepper.HasResidentWeights, Is.EqualTo(backend is NativeCpuBackend));
            var current = stepper.InitialState(shape.Batch, h0, c0);
            for (int t = 0; t < shape.Steps; t++)
            {
                var xt = new Tensor(x.Data.AsSpan(t * ni, ni).ToArray(), shape.Batch, shape.Input);
                var (output, next) = stepper.Step(xt, current);
                Assert.That(output.Shape, Is.EqualTo(new[] { shape.Batch, shape.Hidden }));
                Assertions.AllClose(output.Data, Widen(whole.Output.Data.AsSpan(t * nh, nh)), Tolerances.Float32, $"y[{t}]");
                current = next;
            }
            Assertions.AllClose(current.Hidden.Data, Widen(whole.HiddenState.Data), Tolerances.Float32, "hN");
            if (c0 is not null) Assertions.AllClose(current.Cell!.Data, Widen(whole.CellState!.Data), Tolerances.Float32, "cN");
            else Assert.That(current.Cell, Is.Null);
        }
        finally
        {
            (backend as IDisposable)?.Dispose();
        }
    }

    [Test]
    public void Step_DoesNotChangeTheStateItIsGiven()
    {
        var layer = new Lstm(3, 5, numLayers: 2, seed: 1);
        using var stepper = layer.CreateStepper();
        var start = stepper.InitialState(2);
        var xt = new Tensor(TestData.UniformSingle(new Random(1), 6), 2, 3);
        var (first, _) = stepper.Step(xt, start);
        Assert.That(start.Hidden.Data.All(v => v == 0) && start.Cell!.Data.All(v => v == 0), Is.True, "start state");
        var (again, _) = stepper.Step(xt, start);
        Assert.That(again.Data, Is.EqualTo(first.Data), "same state, same input");
    }

    private static IEnumerable<TestCaseData> GenerateCases() =>
        from backend in new[] { "reference", "native-cpu", "native-cpu-unfused" }
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
        foreach (var p in model.Parameters)
            for (int i = 0; i < p.Value.Length; i++) p.Value.Data[i] *= 4;
        var generated = model.Generate(steps, batch);
        var own = loss == SequenceLoss.SoftmaxCrossEntropy ? SequenceTargets.Tokens(generated.Tokens!, steps, batch) : SequenceTargets.Real(generated.Outputs);
        Assertions.AllClose(generated.Outputs.Data, Widen(model.TeacherForcedOutputs(own).Data), Tolerances.Float32, "generated vs teacher-forced");

        // An SGD step between two generations replaces the stack's weights: the next generation must use the new ones.
        model.Train(own);
        model.SgdStep(0.5f);
        var after = model.Generate(steps, batch);
        var ownAfter = loss == SequenceLoss.SoftmaxCrossEntropy ? SequenceTargets.Tokens(after.Tokens!, steps, batch) : SequenceTargets.Real(after.Outputs);
        Assertions.AllClose(after.Outputs.Data, Widen(model.TeacherForcedOutputs(ownAfter).Data), Tolerances.Float32, "after an SGD step");
    }

    public static IEnumerable<string> AllBackends => Backends;

    [TestCaseSource(nameof(AllBackends))]
    public void Step_RefusesStatesOfAnotherStepperLayerOrBatch(string backendName)
    {
        var backend = CreateBackend(backendName);
        try
        {
            var layer = new Gru(3, 4, GruVariant.ResetAfter, numLayers: 2, backend: backend);
            var other = new Gru(3, 4, GruVariant.ResetAfter, numLayers: 2, backend: backend);
            using var stepper = layer.CreateStepper();
            using var sibling = layer.CreateStepper();
            using var foreign = other.CreateStepper();
            var xt = new Tensor(2, 3);
            AssertNames(() => stepper.Step(xt, sibling.InitialState(2)), "state", "another stepper");
            AssertNames(() => stepper.Step(xt, foreign.InitialState(2)), "state", "another layer");
            AssertNames(() => stepper.Step(xt, stepper.InitialState(3)), "state", "3 rows");
            AssertNames(() => stepper.Step(new Tensor(2, 4), stepper.InitialState(2)), "xt", "[2, 4]");
            AssertNames(() => stepper.Step(new Tensor(1, 2, 3), stepper.InitialState(2)), "xt", "[1, 2, 3]");
            AssertNames(() => stepper.InitialState(2, new Tensor(1, 2, 4)), "h0", "[1, 2, 4]");
            AssertNames(() => stepper.InitialState(2, null, new Tensor(2, 2, 4)), "c0", "no cell state");
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
            var xt = new Tensor(1, 3);
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
            Assert.Throws<ObjectDisposedException>(() => stepper.Step(new Tensor(1, 2), state));
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
        using var step = NativeRnnStep.Create(CellKind.Lstm, true, 2, 3, p["weight_ih_l0"].Value.Data, p["weight_hh_l0"].Value.Data,
            p["bias_ih_l0"].Value.Data, p["bias_hh_l0"].Value.Data);
        Assert.That(step.Bytes, Is.GreaterThan(0));
        var error = Assert.Throws<ArgumentException>(() => step.Forward(1, new float[2], new float[3], new float[2], new float[3], new float[3]))!;
        Assert.That(error.ParamName, Is.EqualTo("c"));
        Assert.Throws<ArgumentException>(() => NativeRnnStep.Create(CellKind.Lstm, true, 2, 3, new float[5], p["weight_hh_l0"].Value.Data,
            p["bias_ih_l0"].Value.Data, p["bias_hh_l0"].Value.Data));
        step.Dispose();
        Assert.Throws<ObjectDisposedException>(() => step.Forward(1, new float[2], new float[3], new float[3], new float[3], new float[3]));
    }

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
