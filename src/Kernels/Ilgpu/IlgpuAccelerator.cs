using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// One ILGPU context and accelerator with the library's kernels (loaded once, cached) and its matrix product.
/// Owns them: dispose it to free the device.
/// </summary>
/// <remarks>Thread-safety: kernel loading is locked, but launches and transfers share the accelerator's one stream, so its user serialises them (the ILGPU backend under its lock). Lifetime: owned by its creator (an <c>IlgpuBackend</c>); <see cref="Dispose"/> frees the matrix product (cuBLAS handle), the accelerator with its loaded kernels, and the ILGPU context. Buffers allocated on it must be disposed first and nothing may use it afterwards.</remarks>
public sealed class IlgpuAccelerator : IDisposable
{
    private IlgpuAccelerator(Context context, Accelerator accelerator, IlgpuDevice kind, GemmProvider gemm)
    {
        Context = context;
        Accelerator = accelerator;
        Kind = kind;
        Kernels = new IlgpuKernels(accelerator);
        Gemm = new IlgpuGemm(accelerator, Kernels, gemm);
    }

    /// <summary>The ILGPU context (ILGPU.Algorithms enabled).</summary>
    public Context Context { get; }
    /// <summary>The accelerator.</summary>
    public Accelerator Accelerator { get; }
    /// <summary>What it is: <see cref="IlgpuDevice.Cpu"/>, <see cref="IlgpuDevice.Cuda"/> or <see cref="IlgpuDevice.OpenCL"/>.</summary>
    public IlgpuDevice Kind { get; }
    /// <summary>The kernels, loaded for this accelerator on first use.</summary>
    public IlgpuKernels Kernels { get; }
    /// <summary>The matrix product on this accelerator.</summary>
    public IlgpuGemm Gemm { get; }

    /// <summary>A short lower-case name: <c>cpu</c>, <c>cuda</c> or <c>opencl</c>.</summary>
    public string ShortName => Kind switch { IlgpuDevice.Cuda => "cuda", IlgpuDevice.OpenCL => "opencl", _ => "cpu" };

    /// <summary>
    /// Opens <paramref name="device"/>. <see cref="IlgpuDevice.Auto"/> takes the first CUDA GPU whose driver loads, else
    /// ILGPU's CPU accelerator.
    /// </summary>
    /// <param name="device">Which accelerator.</param>
    /// <param name="gemm">The matrix product to use on it (<see cref="IlgpuGemm"/>).</param>
    /// <exception cref="IlgpuDeviceException">CUDA or OpenCL was asked for and no usable device exists.</exception>
    public static IlgpuAccelerator Create(IlgpuDevice device = IlgpuDevice.Auto, GemmProvider gemm = GemmProvider.Auto)
    {
        switch (device)
        {
            case IlgpuDevice.Cpu:
                return Open(b => b.CPU(), c => c.CreateCPUAccelerator(0), IlgpuDevice.Cpu, gemm);
            case IlgpuDevice.Cuda:
                InstallCudaDriverResolver();
                return Open(b => b.Cuda(), c => c.GetCudaDevices().Count > 0 ? c.CreateCudaAccelerator(0)
                    : throw new IlgpuDeviceException("CUDA was requested, but ILGPU found no CUDA device (no NVIDIA GPU, or libcuda did not load)."),
                    IlgpuDevice.Cuda, gemm);
            case IlgpuDevice.OpenCL:
                return Open(b => b.OpenCL(), c => c.GetCLDevices().Count > 0 ? c.CreateCLAccelerator(0)
                    : throw new IlgpuDeviceException("OpenCL was requested, but ILGPU found no OpenCL device it supports (it needs the generic address space of OpenCL 2.0 or 3.0 with that feature; PoCL 3.1 lacks it)."),
                    IlgpuDevice.OpenCL, gemm);
            case IlgpuDevice.Auto:
                try
                {
                    return Create(IlgpuDevice.Cuda, gemm);
                }
                catch (IlgpuDeviceException)
                {
                    return Create(IlgpuDevice.Cpu, gemm);
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(device), device, "expected Auto, Cpu, Cuda or OpenCL.");
        }
    }

    private static int _resolverInstalled;

    /// <summary>
    /// ILGPU imports the CUDA driver as "cuda", which the loader finds only as <c>libcuda.so</c>: the development
    /// symlink, absent where only the driver is installed (containers get <c>libcuda.so.1</c>). Fall back to that.
    /// </summary>
    private static void InstallCudaDriverResolver()
    {
        if (Interlocked.Exchange(ref _resolverInstalled, 1) != 0 || !OperatingSystem.IsLinux()) return;
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, (name, assembly, searchPath) =>
                name == "cuda" && (NativeLibrary.TryLoad("libcuda.so", assembly, searchPath, out var handle) ||
                                   NativeLibrary.TryLoad("libcuda.so.1", assembly, searchPath, out handle)) ? handle : IntPtr.Zero);
        }
        catch (InvalidOperationException)
        {
            // ILGPU installed its own resolver (it does under WSL); leave it in charge.
        }
    }

    private static IlgpuAccelerator Open(Func<Context.Builder, Context.Builder> devices, Func<Context, Accelerator> create, IlgpuDevice kind, GemmProvider gemm)
    {
        Context? context = null;
        try
        {
            context = Context.Create(builder => devices(builder).EnableAlgorithms());
            var accelerator = create(context);
            return new IlgpuAccelerator(context, accelerator, kind, gemm);
        }
        catch (IlgpuDeviceException)
        {
            context?.Dispose();
            throw;
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            // Driver libraries that fail to load surface as DllNotFoundException, TypeInitializationException or
            // CudaException depending on where they fail; all mean the same to the caller.
            context?.Dispose();
            throw new IlgpuDeviceException($"{kind} was requested, but its accelerator could not be created: {e.GetBaseException().Message}", e);
        }
    }

    /// <summary>Allocates <paramref name="length"/> floats, naming <paramref name="what"/> and the size if the device has no room.</summary>
    /// <exception cref="IlgpuOperationException">Out of device memory, or the allocation failed otherwise.</exception>
    public MemoryBuffer1D<float, Stride1D.Dense> Allocate(long length, string what)
    {
        try
        {
            return Accelerator.Allocate1D<float>(Math.Max(length, 1));
        }
        catch (Exception e)
        {
            throw new IlgpuOperationException(
                $"ilgpu-{ShortName}: allocating {what} ({length} floats, {length * 4.0 / (1 << 20):F1} MiB) failed on {Accelerator.Name}: {e.GetBaseException().Message}", e);
        }
    }

    /// <summary>Waits for every enqueued operation; a failed launch surfaces here as an <see cref="IlgpuOperationException"/>.</summary>
    public void Synchronize(string operation)
    {
        try
        {
            Accelerator.Synchronize();
        }
        catch (Exception e)
        {
            throw new IlgpuOperationException($"ilgpu-{ShortName}: {operation} failed on {Accelerator.Name}: {e.GetBaseException().Message}", e);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Gemm.Dispose();
        Accelerator.Dispose();
        Context.Dispose();
    }
}
