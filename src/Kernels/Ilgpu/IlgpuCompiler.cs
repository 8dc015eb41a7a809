using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// Compiles kernels to a GPU's code without the GPU: ILGPU's backends need only a context, so CI on a machine without
/// CUDA still proves that every kernel compiles to PTX (a kernel using something CUDA cannot do fails here).
/// </summary>
/// <remarks>Thread-safety: not safe; compile from one thread at a time. Lifetime: owns an ILGPU context (no device), freed by <see cref="Dispose"/>.</remarks>
public sealed class IlgpuCompiler : IDisposable
{
    private readonly Context _context = Context.Create(builder => builder.EnableAlgorithms());

    /// <summary>
    /// PTX for <paramref name="kernel"/> as ILGPU's own code generator writes it for <paramref name="architecture"/>
    /// (default SM 8.0, Ampere, which Hopper also runs) and PTX ISA 8.0, the driver-side JIT's input.
    /// </summary>
    public string CompileToPtx(IlgpuKernels.KernelMethod kernel, CudaArchitecture? architecture = null)
    {
        var arch = architecture ?? CudaArchitecture.SM_80;
        using var backend = new PTXBackend(_context, new CudaCapabilityContext(arch), arch, CudaInstructionSet.ISA_80, nvvmAPI: null);
        var compiled = (PTXCompiledKernel)backend.Compile(Describe(kernel), KernelSpecialization.Empty);
        return compiled.PTXAssembly;
    }

    /// <summary>OpenCL C 2.0 source for <paramref name="kernel"/>, as ILGPU would hand it to an OpenCL driver.</summary>
    public string CompileToOpenCL(IlgpuKernels.KernelMethod kernel)
    {
        using var backend = new CLBackend(_context, new CLCapabilityContext(float16: false, float64: false, genericAddressSpace: true, int64_Atomics: false, subGroups: false), CLDeviceVendor.Other, CLCVersion.CL20);
        var compiled = (CLCompiledKernel)backend.Compile(Describe(kernel), KernelSpecialization.Empty);
        return compiled.Source;
    }

    private static EntryPointDescription Describe(IlgpuKernels.KernelMethod kernel) => kernel.ExplicitlyGrouped
        ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method)
        : EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method);

    /// <inheritdoc />
    public void Dispose() => _context.Dispose();
}
