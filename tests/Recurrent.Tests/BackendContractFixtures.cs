using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

// One fixture per backend for the one contract body in Recurrent.Testing (BackendContractTests).

/// <summary>The reference backend: the layer API's float rounding around the double reference.</summary>
[TestFixture]
public sealed class ReferenceBackendContractTests : BackendContractTests
{
    protected override IRnnBackend CreateBackend() => ReferenceBackend.Instance;
}

/// <summary>
/// The native CPU backend on each instruction-set path, fused and unfused. The level is process-wide, so these
/// fixtures run alone and restore the default afterwards; a level this CPU lacks is ignored with the reason.
/// </summary>
[TestFixture(NativeIsa.Avx512, true)]
[TestFixture(NativeIsa.Avx512, false)]
[TestFixture(NativeIsa.Avx2, true)]
[TestFixture(NativeIsa.Avx2, false)]
[TestFixture(NativeIsa.Portable, true)]
[TestFixture(NativeIsa.Portable, false)]
[NonParallelizable]
public sealed class NativeBackendContractTests(NativeIsa isa, bool fused) : BackendContractTests
{
    protected override IRnnBackend CreateBackend()
    {
        NativeLibrary.Isa = isa;
        if (NativeLibrary.Isa != isa)
        {
            var active = NativeLibrary.Isa;
            NativeLibrary.Isa = NativeIsa.Auto;
            Assert.Ignore($"This CPU cannot run the {isa} kernels (its features: {NativeLibrary.CpuFeatures}; the widest level it runs is {active}).");
        }
        return new NativeCpuBackend(fused);
    }

    protected override void CloseBackend() => NativeLibrary.Isa = NativeIsa.Auto;
}

/// <summary>ILGPU's kernels on its CPU accelerator, which runs everywhere but slowly: the tiny shapes only.</summary>
[TestFixture(true)]
[TestFixture(false)]
public sealed class IlgpuCpuBackendContractTests(bool fused) : BackendContractTests
{
    private static new IEnumerable<TestCaseData> Cases() => CasesOf(TinyShapes);

    // The simulator's time goes mostly to launches, one set per step, layer and direction: the properties tested once
    // per cell keep two layers and both directions but only two steps.
    protected override TestData.Shape PerCellShape => new(2, 2, 3, 4, 2, true);

    protected override IRnnBackend CreateBackend() => new IlgpuBackend(IlgpuDevice.Cpu, fused);
}

/// <summary>ILGPU on a CUDA GPU; ignored with the reason where there is none.</summary>
[TestFixture(true)]
[TestFixture(false)]
[Category("Cuda")]
public sealed class IlgpuCudaBackendContractTests(bool fused) : BackendContractTests
{
    protected override IRnnBackend CreateBackend()
    {
        IlgpuFixtures.OpenOrIgnore(IlgpuDevice.Cuda).Dispose();
        return new IlgpuBackend(IlgpuDevice.Cuda, fused);
    }
}
