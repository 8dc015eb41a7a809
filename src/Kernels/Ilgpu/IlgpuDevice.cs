namespace Recurrent;

/// <summary>Which ILGPU accelerator runs the kernels.</summary>
public enum IlgpuDevice
{
    /// <summary>The first CUDA GPU when one is present and its driver loads, else ILGPU's CPU accelerator.</summary>
    Auto,

    /// <summary>
    /// ILGPU's CPU accelerator: a simulator of a GPU (groups of threads with barriers and shared memory),
    /// far slower than the native CPU backend; meant for testing the GPU kernels on machines without a GPU.
    /// </summary>
    Cpu,

    /// <summary>The first CUDA GPU. Creating it fails with <see cref="Kernels.Ilgpu.IlgpuDeviceException"/> when none is usable.</summary>
    Cuda,

    /// <summary>
    /// The first OpenCL device that ILGPU accepts (it needs OpenCL's generic address space; Debian's PoCL 3.1 lacks it).
    /// Creating it fails with <see cref="Kernels.Ilgpu.IlgpuDeviceException"/> when none is usable.
    /// </summary>
    OpenCL,
}
