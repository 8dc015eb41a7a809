using System.Runtime.Intrinsics.X86;
using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

[TestFixture]
public class NativeLibraryTests
{
    [Test]
    public void Library_LoadsAndReportsItsVersion() => Assert.That(NativeLibrary.Version, Is.EqualTo(1));

    [Test]
    public void CpuFeatures_AgreeWithTheRuntimesDetection()
    {
        var features = NativeLibrary.CpuFeatures;
        Assert.That(features.HasFlag(CpuFeatures.Avx2Fma), Is.EqualTo(Avx2.IsSupported && Fma.IsSupported));
        Assert.That(features.HasFlag(CpuFeatures.Avx512F), Is.EqualTo(Avx512F.IsSupported));
    }

    [Test]
    public void Isa_CanBeNarrowedAndRestored()
    {
        try
        {
            NativeLibrary.Isa = NativeIsa.Portable;
            Assert.That(NativeLibrary.Isa, Is.EqualTo(NativeIsa.Portable));
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
        var widest = NativeLibrary.CpuFeatures.HasFlag(CpuFeatures.Avx512F) ? NativeIsa.Avx512
            : NativeLibrary.CpuFeatures.HasFlag(CpuFeatures.Avx2Fma) ? NativeIsa.Avx2 : NativeIsa.Portable;
        Assert.That(NativeLibrary.Isa, Is.EqualTo(widest));
    }

    [Test]
    public void NativeFailure_SurfacesAsManagedExceptionWithTheNativeMessage()
    {
        var e = Assert.Throws<NativeException>(() => NativeLibrary.Isa = (NativeIsa)7)!;
        Assert.That(e.Status, Is.EqualTo(NativeStatus.InvalidArgument));
        Assert.That(e.Message, Does.Contain("isa: expected 0 (auto)").And.Contain("got 7"));
    }
}
