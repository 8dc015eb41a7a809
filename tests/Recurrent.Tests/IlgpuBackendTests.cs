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
            Tensor Random(params int[] dims) => new(TestData.UniformSingle(random, dims.Aggregate(1, (a, b) => a * b)), dims);
            var c = cell.HasCellState();
            return BackendRuns.ForwardBackward(backend, parameters, Random(shape.Steps, shape.Batch, shape.Input), Random(state), c ? Random(state) : null,
                Random(shape.Steps, shape.Batch, config.OutputSize), Random(state), c ? Random(state) : null);
        }
        var first = RunCase(CellKind.GruResetBefore, new(3, 2, 3, 5, 2, true));
        RunCase(CellKind.Lstm, new(4, 3, 5, 17, 1, false));
        var again = RunCase(CellKind.GruResetBefore, new(3, 2, 3, 5, 2, true));
        foreach (var (name, values) in first)
            Assert.That(again[name], Is.EqualTo(values), name);
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
