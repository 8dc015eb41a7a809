using ILGPU;
using ILGPU.Runtime;
using System.Runtime.InteropServices;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Ilgpu;

/// <summary>
/// Device buffers kept for reuse, by exact length. Allocating and freeing device memory is slow on CUDA (cuMemFree
/// waits for the whole device), so a backend rents its scratch and tape buffers here and repeated calls with the same
/// shapes allocate nothing. A buffer returned while kernels still use it is safe to rent again: every user enqueues
/// on the accelerator's one stream, in order. Thread-safety: safe; buffers come back when tapes are disposed, on whatever
/// thread that happens, while the backend may be renting for another call.
/// </summary>
internal sealed class DeviceBufferPool(IlgpuAccelerator gpu) : IDisposable
{
    private readonly Dictionary<long, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> _free = [];
    private readonly Lock _gate = new();
    private bool _disposed;

    /// <summary>A buffer of exactly <paramref name="length"/> floats (at least one), reused when one is free.</summary>
    /// <exception cref="IlgpuOperationException">The device has no room even after freeing the pooled buffers.</exception>
    public PooledBuffer Rent(long length, string what)
    {
        lock (_gate) return RentLocked(length, what);
    }

    private PooledBuffer RentLocked(long length, string what)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        length = Math.Max(length, 1);
        if (_free.TryGetValue(length, out var stack) && stack.Count > 0) return new PooledBuffer(this, stack.Pop());
        try
        {
            return new PooledBuffer(this, gpu.Allocate(length, what));
        }
        catch (IlgpuOperationException) when (_free.Count > 0)
        {
            // Buffers of other lengths may be what fills the device: free them and try once more.
            TrimLocked();
            return new PooledBuffer(this, gpu.Allocate(length, what));
        }
    }

    internal void Return(MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                buffer.Dispose();
                return;
            }
            if (!_free.TryGetValue(buffer.Length, out var stack)) _free[buffer.Length] = stack = new();
            stack.Push(buffer);
        }
    }

    /// <summary>Frees every buffer not rented.</summary>
    public void Trim()
    {
        lock (_gate) TrimLocked();
    }

    private void TrimLocked()
    {
        foreach (var stack in _free.Values)
            foreach (var buffer in stack) buffer.Dispose();
        _free.Clear();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            TrimLocked();
            _disposed = true;
        }
    }
}

/// <summary>A buffer rented from a <see cref="DeviceBufferPool"/>; disposing returns it.</summary>
internal sealed class PooledBuffer(DeviceBufferPool pool, MemoryBuffer1D<float, Stride1D.Dense> buffer) : IDisposable
{
    private int _returned;

    /// <summary>The whole buffer as a view.</summary>
    public ArrayView<float> View => buffer.View;

    /// <summary>Its length in floats.</summary>
    public long Length => buffer.Length;

    /// <summary>The view from <paramref name="offset"/> to the end.</summary>
    public ArrayView<float> At(long offset) => buffer.View.SubView(offset, buffer.Length - offset);

    /// <summary>Copies <paramref name="source"/> into the start of the buffer.</summary>
    public void Upload(ReadOnlyMemory<float> source)
    {
        if (source.Length > 0) buffer.View.SubView(0, source.Length).CopyFromCPU(ref MemoryMarshal.GetReference(source.Span), source.Length);
    }

    /// <summary>Copies the start of the buffer into <paramref name="destination"/>.</summary>
    public void Download(Memory<float> destination)
    {
        if (destination.Length > 0) buffer.View.SubView(0, destination.Length).CopyToCPU(ref MemoryMarshal.GetReference(destination.Span), destination.Length);
    }

    /// <summary>Sets every element to zero.</summary>
    public void Clear() => buffer.View.MemSetToZero();

    /// <inheritdoc />
    public void Dispose()
    {
        // A tape disposed twice at once, from two threads, must still return its buffers once.
        if (Interlocked.Exchange(ref _returned, 1) != 0) return;
        pool.Return(buffer);
    }
}
