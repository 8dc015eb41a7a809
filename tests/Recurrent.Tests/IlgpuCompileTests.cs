using NUnit.Framework;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Kernels.Ilgpu.Cells;

namespace Recurrent.Tests;

/// <summary>
/// Every ILGPU kernel compiles to PTX without a GPU, so a change that would break CUDA fails on any machine.
/// </summary>
[TestFixture]
public sealed class IlgpuCompileTests
{
    private IlgpuCompiler _compiler = null!;

    [OneTimeSetUp]
    public void CreateCompiler() => _compiler = new IlgpuCompiler();

    [OneTimeTearDown]
    public void DisposeCompiler() => _compiler.Dispose();

    private static IEnumerable<TestCaseData> Kernels() =>
        IlgpuKernels.All().Select(k => new TestCaseData(k).SetArgDisplayNames(k.Name));

    [TestCaseSource(nameof(Kernels))]
    public void Kernel_CompilesToPtx(IlgpuKernels.KernelMethod kernel)
    {
        string ptx = _compiler.CompileToPtx(kernel);
        Assert.That(ptx, Does.Contain(".entry"), "PTX has no kernel entry");
        Assert.That(ptx, Does.Contain(".target sm_80"));
    }

    /// <summary>
    /// OpenCL is compile-only too: the OpenCL driver on CI machines (Debian's PoCL 3.1) lacks the generic address space
    /// ILGPU requires, so no OpenCL accelerator can run these; the source ILGPU would hand a driver is still generated.
    /// </summary>
    [TestCaseSource(nameof(Kernels))]
    public void Kernel_CompilesToOpenCL(IlgpuKernels.KernelMethod kernel)
    {
        string source = _compiler.CompileToOpenCL(kernel);
        Assert.That(source, Does.Contain("kernel void"), "OpenCL source has no kernel");
    }

    [Test]
    public void Catalogue_HoldsEveryKernelFamily()
    {
        var names = IlgpuKernels.All().Select(k => k.Name).ToArray();
        Assert.That(names, Has.Some.EqualTo("LstmKernels.Forward"));
        Assert.That(names, Has.Some.EqualTo("ElmanKernels.Forward<ReluActivation>"));
        Assert.That(names, Has.Some.EqualTo("GruResetAfterKernels.Backward"));
        Assert.That(names, Has.Some.EqualTo("GruResetBeforeKernels.BackwardReset"));
        Assert.That(names, Has.Some.EqualTo("ElementwiseKernels.Unary<Sigmoid>"));
        Assert.That(names, Has.Some.EqualTo("GemmKernels.TiledSgemm"));
        Assert.That(names, Has.Some.EqualTo("ReductionKernels.ColumnSums"));
        Assert.That(names, Has.Some.EqualTo("SequenceKernels.SoftmaxCrossEntropyRows"));
        Assert.That(names, Has.Some.EqualTo("SequenceKernels.SoftmaxCrossEntropyCountsRows"));
        Assert.That(names, Has.Some.EqualTo("SequenceKernels.ActivationBackwardPartialSums<ReluActivation>"));
        Assert.That(names, Has.Some.EqualTo("PackingKernels.GatherRows"));
        Assert.That(names, Has.Some.EqualTo("PackingKernels.GatherPreviousHidden"));
    }

    [Test]
    public void EveryCellKind_HasADeviceCell([Values] CellKind cell) =>
        Assert.That(DeviceCells.For(cell).GateCount, Is.EqualTo(cell.GateCount()));
}
