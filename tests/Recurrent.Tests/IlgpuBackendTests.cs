using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Tests;

/// <summary>
/// What only <see cref="IlgpuBackend"/> has: device buffers reused between calls, its refusal of another backend's tape,
/// its name and its device errors. Its results against the reference are the backend contract's
/// (IlgpuCpuBackendContractTests, IlgpuCudaBackendContractTests). One body; a derived fixture per accelerator opens its
/// backends once.
/// </summary>
public abstract class IlgpuBackendTests(IlgpuDevice device)
{
    private IlgpuBackend? _fused, _unfused;

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

    /// <summary>
    /// The backend reuses device buffers between calls (device memory is never zeroed): a call after one of another cell
    /// and shape must give bit-identical results, so no kernel may read what it did not write; a variable-length batch too,
    /// whose packed buffers are shorter than the dense ones and whose final states are written a few rows at a time.
    /// </summary>
    [Test]
    public void RepeatedCalls_GiveIdenticalResults_AfterACallOfAnotherShape([Values] bool fused, [Values] bool withLengths)
    {
        var backend = fused ? _fused! : _unfused!;
        int[]? lengths = withLengths ? [1, 3] : null;
        Dictionary<string, float[]> RunCase(CellKind cell, TestData.Shape shape, int[]? lengths = null)
        {
            var config = shape.Config(cell);
            var parameters = new RnnParameters(config);
            parameters.Reset(8);
            var random = new Random(8);
            var state = config.StateShape(shape.Batch);
            FloatTensor Random(params int[] dims) => new(TestData.UniformSingle(random, dims.Aggregate(1, (a, b) => a * b)), dims);
            var c = cell.HasCellState();
            return BackendRuns.ForwardBackward(backend, parameters, Random(shape.Steps, shape.Batch, shape.Input), Random(state), c ? Random(state) : null,
                Random(shape.Steps, shape.Batch, config.OutputSize), Random(state), c ? Random(state) : null, lengths);
        }
        var first = RunCase(CellKind.GruResetBefore, new(3, 2, 3, 5, 2, true), lengths);
        RunCase(CellKind.Lstm, new(4, 3, 5, 17, 1, false));
        var again = RunCase(CellKind.GruResetBefore, new(3, 2, 3, 5, 2, true), lengths);
        foreach (var (name, values) in first)
            Assert.That(again[name], Is.EqualTo(values), name);
    }

    private static IEnumerable<TestCaseData> DeviceEntryCases() =>
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        select new TestCaseData(cell, fused).SetArgDisplayNames(cell.ToString(), fused ? "fused" : "unfused");

    /// <summary>
    /// The device-level entry the sequence models chain (<see cref="IlgpuBackend.ForwardOnDevice"/>,
    /// <see cref="IlgpuBackend.BackwardOnDevice"/>), packing and sorting on the device, against the host entry, which packs
    /// and sorts on the host, with the same lengths: three chained passes, dense then two variable-length ones whose
    /// lengths sort the batch differently (with ties), so each hands its final state on in batch order and takes the next
    /// one's dh0 back the same way. Two layers, both directions, so the reverse direction starts sequences at several steps
    /// and the second layer reads packed rows. The same kernels run on the same values in the same order: bit for bit.
    /// </summary>
    [TestCaseSource(nameof(DeviceEntryCases))]
    public void DeviceEntry_WithLengths_EqualsTheHostEntry_OverChainedPasses(CellKind cell, bool fused)
    {
        var backend = fused ? _fused! : _unfused!;
        const int steps = 4, batch = 4;
        // Sorted orders [1, 3, 0, 2] and [2, 1, 3, 0]: neither is its own inverse, so a sort in place of an unsort shows.
        int[]?[] lengths = [null, [2, 4, 2, 3], [1, 3, 4, 3]];
        var config = new RnnConfig(cell, 3, 5, 2, bidirectional: true);
        var onHost = new RnnParameters(config);
        var onDevice = new RnnParameters(config);
        onHost.Reset(21);
        onDevice.Reset(21);
        var random = new Random(22);
        var state = config.StateShape(batch);
        bool lstm = cell.HasCellState();
        FloatTensor Random(params int[] dims) => new(TestData.UniformSingle(random, dims.Aggregate(1, (a, b) => a * b)), dims);
        var xs = lengths.Select(_ => Random(steps, batch, config.InputSize)).ToArray();
        var dys = lengths.Select(_ => Random(steps, batch, config.OutputSize)).ToArray();

        // The host entry, chained by hand: each pass starts from the previous one's final state, and back.
        var expected = new Dictionary<string, float[]>();
        var tapes = new IRnnTape[lengths.Length];
        FloatTensor h = new(state), c = new(state);
        for (int pass = 0; pass < lengths.Length; pass++)
        {
            FloatTensor y = new(steps, batch, config.OutputSize), hN = new(state), cN = new(state);
            tapes[pass] = backend.Forward(onHost, xs[pass], h, lstm ? c : null, y, hN, lstm ? cN : null, keepForBackward: true, lengths[pass])!;
            expected[$"y{pass}"] = y.ToArray();
            (h, c) = (hN, cN);
        }
        expected["hN"] = h.ToArray();
        if (lstm) expected["cN"] = c.ToArray();
        FloatTensor dh = new(state), dc = new(state);
        for (int pass = lengths.Length - 1; pass >= 0; pass--)
        {
            FloatTensor dx = new(steps, batch, config.InputSize), dh0 = new(state), dc0 = new(state);
            backend.Backward(onHost, tapes[pass], dys[pass], dh, lstm ? dc : null, dx, dh0, lstm ? dc0 : null);
            tapes[pass].Dispose();
            expected[$"dx{pass}"] = dx.ToArray();
            (dh, dc) = (dh0, dc0);
        }
        expected["dh0"] = dh.ToArray();
        if (lstm) expected["dc0"] = dc.ToArray();

        var gpu = backend.Accelerator.Accelerator;
        using var buffers = new DisposableList();
        ArrayView<float> Upload(FloatTensor t)
        {
            var buffer = buffers.Add(gpu.Allocate1D<float>(t.Length));
            buffer.View.CopyFromCPU(t.ToArray());
            return buffer.View;
        }
        static float[] Download(ArrayView<float> view, int length)
        {
            var data = new float[length];
            view.SubView(0, length).CopyToCPU(data);
            return data;
        }
        var passes = new IlgpuBackend.DevicePass[lengths.Length];
        var actual = new Dictionary<string, float[]>();
        try
        {
            for (int pass = 0; pass < lengths.Length; pass++)
            {
                passes[pass] = backend.ForwardOnDevice(onDevice, Upload(xs[pass]), steps, batch, pass == 0 ? null : passes[pass - 1], keepForBackward: true, lengths[pass]);
                actual[$"y{pass}"] = Download(passes[pass].Output, steps * batch * config.OutputSize);
            }
            var last = passes[^1];
            actual["hN"] = Download(last.HN.View, h.Length);
            if (lstm) actual["cN"] = Download(last.CN!.View, c.Length);
            for (int pass = lengths.Length - 1; pass >= 0; pass--)
            {
                var dx = backend.BackwardOnDevice(onDevice, passes[pass], Upload(dys[pass]), pass == lengths.Length - 1 ? null : passes[pass + 1]);
                actual[$"dx{pass}"] = Download(dx, steps * batch * config.InputSize);
            }
            actual["dh0"] = Download(passes[0].Dh0!.View, h.Length);
            if (lstm) actual["dc0"] = Download(passes[0].Dc0!.View, c.Length);
        }
        finally
        {
            foreach (var pass in passes) pass?.Dispose();
        }

        Assert.Multiple(() =>
        {
            foreach (var (name, values) in expected)
                Assert.That(actual[name], Is.EqualTo(values), name);
            for (int i = 0; i < onHost.All.Count; i++)
                Assert.That(onDevice.All[i].Grad.ToArray(), Is.EqualTo(onHost.All[i].Grad.ToArray()), "grad " + onHost.All[i].Name);
        });
    }

    /// <summary>Device buffers a test allocates itself, freed together.</summary>
    private sealed class DisposableList : IDisposable
    {
        private readonly List<IDisposable> _items = [];

        public T Add<T>(T item) where T : IDisposable
        {
            _items.Add(item);
            return item;
        }

        public void Dispose()
        {
            foreach (var item in _items) item.Dispose();
        }
    }

    [Test]
    public void Backward_RejectsATapeOfAnotherBackend()
    {
        var config = new RnnConfig(CellKind.RnnTanh, 1, 1);
        var parameters = new RnnParameters(config);
        var state = config.StateShape(1);
        using var tape = ReferenceBackend.Instance.Forward(parameters, new FloatTensor(1, 1, 1), new FloatTensor(state), null, new FloatTensor(1, 1, 1), new FloatTensor(state), null, true)!;
        var e = Assert.Throws<ArgumentException>(() =>
            _fused!.Backward(parameters, tape, new FloatTensor(1, 1, 1), new FloatTensor(state), null, new FloatTensor(1, 1, 1), new FloatTensor(state), null))!;
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
