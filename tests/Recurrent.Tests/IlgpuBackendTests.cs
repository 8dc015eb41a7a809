using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Tests;

/// <summary>
/// <see cref="IlgpuBackend"/> end to end against <see cref="ReferenceBackend"/>: outputs, final states, dx, dh0, dc0 and
/// every parameter gradient, fused and unfused, every cell. One body; a derived fixture per accelerator opens its
/// backends once.
/// </summary>
public abstract class IlgpuBackendTests(IlgpuDevice device)
{
    private IlgpuBackend? _fused, _unfused;

    /// <summary>
    /// Tiny shapes (the CPU accelerator simulates a GPU slowly): T=1 N=1 H=1, two bidirectional layers, H=17 with I≠H,
    /// and T·N = 72 rows, above which bias gradients take the two-pass column sum.
    /// </summary>
    public static readonly TestData.Shape[] Shapes =
    [
        new(1, 1, 1, 1, 1, false),
        new(3, 2, 3, 5, 2, true),
        new(4, 3, 5, 17, 1, false),
        new(9, 8, 2, 3, 1, false),
    ];

    [OneTimeSetUp]
    public void OpenBackends()
    {
        IlgpuFixtures.OpenOrIgnore(device).Dispose();
        _fused = new IlgpuBackend(device, fused: true);
        _unfused = new IlgpuBackend(device, fused: false);
    }

    [OneTimeTearDown]
    public void CloseBackends()
    {
        _fused?.Dispose();
        _unfused?.Dispose();
    }

    private static IEnumerable<TestCaseData> Cases() =>
        from cell in TestData.AllCells
        from shape in Shapes
        from fused in new[] { true, false }
        select new TestCaseData(cell, shape, fused).SetArgDisplayNames(cell.ToString(), shape.ToString(), fused ? "fused" : "unfused");

    [TestCaseSource(nameof(Cases))]
    public void ForwardAndBackward_MatchReference(CellKind cell, TestData.Shape shape, bool fused)
    {
        var backend = fused ? _fused! : _unfused!;
        var config = shape.Config(cell);
        var random = new Random(4321 + (int)cell * 7 + shape.Hidden);
        int steps = shape.Steps, batch = shape.Batch;
        var parameters = new RnnParameters(config);
        parameters.Reset(17 + (int)cell);
        var stateShape = config.StateShape(batch);
        int stateLength = stateShape.Aggregate(1, (a, b) => a * b);
        bool lstm = cell.HasCellState();
        var x = new Tensor(TestData.UniformSingle(random, steps * batch * shape.Input), steps, batch, shape.Input);
        var h0 = new Tensor(TestData.UniformSingle(random, stateLength, 0.5), stateShape);
        var c0 = lstm ? new Tensor(TestData.UniformSingle(random, stateLength, 0.5), stateShape) : null;
        var dy = new Tensor(TestData.UniformSingle(random, steps * batch * config.OutputSize), steps, batch, config.OutputSize);
        var dhN = new Tensor(TestData.UniformSingle(random, stateLength), stateShape);
        var dcN = lstm ? new Tensor(TestData.UniformSingle(random, stateLength), stateShape) : null;

        var expected = Recurrent.Bench.IlgpuGpuCheck.ForwardBackward(ReferenceBackend.Instance, parameters, x, h0, c0, dy, dhN, dcN);
        var actual = Recurrent.Bench.IlgpuGpuCheck.ForwardBackward(backend, parameters, x, h0, c0, dy, dhN, dcN);

        foreach (var (name, values) in expected)
            Assertions.AllClose(actual[name], Array.ConvertAll(values, v => (double)v), Tolerances.Float32, $"{backend.Name} {name}");
    }

    [Test]
    public void InferenceForward_MatchesTrainingForward([Values] bool fused)
    {
        var backend = fused ? _fused! : _unfused!;
        var config = new RnnConfig(CellKind.Lstm, 3, 4, 2, bidirectional: true);
        var parameters = new RnnParameters(config);
        parameters.Reset(3);
        var random = new Random(9);
        var x = new Tensor(TestData.UniformSingle(random, 3 * 2 * 3), 3, 2, 3);
        var state = config.StateShape(2);
        Tensor h0 = new(state), c0 = new(state);
        Tensor y1 = new(3, 2, 8), y2 = new(3, 2, 8), h1 = new(state), h2 = new(state), cell1 = new(state), cell2 = new(state);
        Assert.That(backend.Forward(parameters, x, h0, c0, y1, h1, cell1, keepForBackward: false), Is.Null);
        using (backend.Forward(parameters, x, h0, c0, y2, h2, cell2, keepForBackward: true)) { }
        Assert.That(y1.Data, Is.EqualTo(y2.Data));
        Assert.That(h1.Data, Is.EqualTo(h2.Data));
        Assert.That(cell1.Data, Is.EqualTo(cell2.Data));
    }

    /// <summary>
    /// The backend reuses device buffers between calls (device memory is never zeroed): a call after one of another cell
    /// and shape must give bit-identical results, so no kernel may read what it did not write.
    /// </summary>
    [Test]
    public void RepeatedCalls_GiveIdenticalResults_AfterACallOfAnotherShape([Values] bool fused)
    {
        var backend = fused ? _fused! : _unfused!;
        Dictionary<string, float[]> RunCase(CellKind cell, TestData.Shape shape)
        {
            var config = shape.Config(cell);
            var parameters = new RnnParameters(config);
            parameters.Reset(8);
            var random = new Random(8);
            var state = config.StateShape(shape.Batch);
            int stateLength = state.Aggregate(1, (a, b) => a * b);
            Tensor Random(params int[] dims) => new(TestData.UniformSingle(random, dims.Aggregate(1, (a, b) => a * b)), dims);
            var c = cell.HasCellState();
            return Recurrent.Bench.IlgpuGpuCheck.ForwardBackward(backend, parameters, Random(shape.Steps, shape.Batch, shape.Input), Random(state), c ? Random(state) : null,
                Random(shape.Steps, shape.Batch, config.OutputSize), Random(state), c ? Random(state) : null);
        }
        var first = RunCase(CellKind.GruResetBefore, Shapes[1]);
        RunCase(CellKind.Lstm, Shapes[2]);
        var again = RunCase(CellKind.GruResetBefore, Shapes[1]);
        foreach (var (name, values) in first)
            Assert.That(again[name], Is.EqualTo(values), name);
    }

    [Test]
    public void LayerApi_RunsOnTheBackend_AndMatchesReference()
    {
        var gru = new Gru(3, 5, GruVariant.ResetBefore, numLayers: 2, bidirectional: true, backend: _fused, seed: 5);
        var reference = new Gru(3, 5, GruVariant.ResetBefore, numLayers: 2, bidirectional: true, seed: 5);
        var x = new Tensor(TestData.UniformSingle(new Random(2), 4 * 2 * 3), 4, 2, 3);
        using var actual = gru.Forward(x, keepForBackward: true);
        using var expected = reference.Forward(x, keepForBackward: true);
        Assertions.AllClose(actual.Output.Data, Array.ConvertAll(expected.Output.Data, v => (double)v), Tolerances.Float32, "y");
        var dActual = gru.Backward(actual, actual.Output);
        var dExpected = reference.Backward(expected, expected.Output);
        Assertions.AllClose(dActual.Input.Data, Array.ConvertAll(dExpected.Input.Data, v => (double)v), Tolerances.Float32, "dx");
        Assertions.AllClose(gru.Parameters["weight_hh_l1_reverse"].Grad.Data,
            Array.ConvertAll(reference.Parameters["weight_hh_l1_reverse"].Grad.Data, v => (double)v), Tolerances.Float32, "dW_hh l1 reverse");
    }

    [Test]
    public void Backward_RejectsATapeOfAnotherBackend()
    {
        var config = new RnnConfig(CellKind.RnnTanh, 1, 1);
        var parameters = new RnnParameters(config);
        var state = config.StateShape(1);
        using var tape = ReferenceBackend.Instance.Forward(parameters, new Tensor(1, 1, 1), new Tensor(state), null, new Tensor(1, 1, 1), new Tensor(state), null, true)!;
        var e = Assert.Throws<ArgumentException>(() =>
            _fused!.Backward(parameters, tape, new Tensor(1, 1, 1), new Tensor(state), null, new Tensor(1, 1, 1), new Tensor(state), null))!;
        Assert.That(e.ParamName, Is.EqualTo("tape"));
    }
}

/// <summary>The backend on ILGPU's CPU accelerator: runs everywhere.</summary>
[TestFixture]
public sealed class IlgpuCpuBackendTests() : IlgpuBackendTests(IlgpuDevice.Cpu)
{
    [Test]
    public void Name_SaysAcceleratorAndFusion()
    {
        using var fused = new IlgpuBackend(IlgpuDevice.Cpu);
        using var unfused = new IlgpuBackend(IlgpuDevice.Cpu, fused: false);
        Assert.That(fused.Name, Is.EqualTo("ilgpu-cpu"));
        Assert.That(unfused.Name, Is.EqualTo("ilgpu-cpu-unfused"));
        Assert.That(fused.GemmDescription, Is.EqualTo("simple kernel"));
    }

    [Test]
    public void Cuda_WithoutGpu_ThrowsDeviceExceptionSayingSo()
    {
        try
        {
            using var probe = IlgpuAccelerator.Create(IlgpuDevice.Cuda);
            Assert.Ignore($"This machine has a CUDA device ({probe.Accelerator.Name}); the no-GPU error cannot be provoked.");
        }
        catch (IlgpuDeviceException e)
        {
            Assert.That(e.Message, Does.Contain("CUDA"));
            Assert.Throws<IlgpuDeviceException>(() => new IlgpuBackend(IlgpuDevice.Cuda).Dispose());
        }
    }
}

/// <summary>The backend on a CUDA GPU: the parity check of the GPU machine; ignored with the reason elsewhere.</summary>
[TestFixture]
[Category("Cuda")]
public sealed class IlgpuCudaBackendTests() : IlgpuBackendTests(IlgpuDevice.Cuda);
