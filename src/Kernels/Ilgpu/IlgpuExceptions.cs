namespace Recurrent.Kernels.Ilgpu;

/// <summary>The requested ILGPU accelerator is not present or its driver does not load.</summary>
/// <remarks>Thread-safety: immutable, so safe. Lifetime: nothing to free.</remarks>
public sealed class IlgpuDeviceException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// An operation on an ILGPU accelerator failed: a kernel launch, a copy, or an allocation (out of device memory).
/// The message names the operation and its sizes; the inner exception is ILGPU's or the driver's.
/// </summary>
/// <remarks>Thread-safety: immutable, so safe. Lifetime: nothing to free.</remarks>
public sealed class IlgpuOperationException(string message, Exception? inner = null) : Exception(message, inner);
