using System.Buffers;

namespace Recurrent.Stacking;

/// <summary>
/// The host half of an <see cref="IDirectionCompute{TBuffer}"/> over managed memory: buffers from the shared array pool
/// (returned when the pass's tape lets go of them) and the packed layout's moves by <see cref="PackedBatch"/>. The native
/// backend (float) and the reference (double) add the one-direction passes.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
internal abstract class HostDirectionCompute<T> : IDirectionCompute<Memory<T>>
{
    /// <inheritdoc />
    /// <remarks>
    /// Pooled: a fresh array of a layer's size costs the kernel a page fault per page on first touch, as much as the pass
    /// that fills it. Exactly <paramref name="elements"/> long (the pool's array may be longer).
    /// </remarks>
    public virtual BufferLease<Memory<T>> Allocate(long elements, string what)
    {
        var array = ArrayPool<T>.Shared.Rent(checked((int)elements));
        return new(array.AsMemory(0, (int)elements), new Returned(array));
    }

    private sealed class Returned(T[] array) : IDisposable
    {
        private T[]? _array = array;

        // Once: a second Dispose must not hand the same array to the pool twice.
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } array) ArrayPool<T>.Shared.Return(array);
        }
    }

    /// <inheritdoc />
    public abstract IDisposable? Forward(in DirectionPass<Memory<T>> pass, bool keepForBackward);

    /// <inheritdoc />
    public abstract void Backward(in DirectionPass<Memory<T>> pass, IDisposable saved);

    /// <inheritdoc />
    public void Pack(PackedBatch layout, Memory<T> padded, Memory<T> packed, int features) => layout.Pack<T>(padded.Span, packed.Span, features);

    /// <inheritdoc />
    public void Unpack(PackedBatch layout, Memory<T> packed, Memory<T> padded, int features) => layout.Unpack<T>(packed.Span, padded.Span, features);

    /// <inheritdoc />
    public void SortStates(PackedBatch layout, Memory<T> states, Memory<T> sorted, long elements, int hidden) =>
        layout.SortStates<T>(states.Span[..(int)elements], sorted.Span[..(int)elements], hidden);

    /// <inheritdoc />
    public void UnsortStates(PackedBatch layout, Memory<T> sorted, Memory<T> states, long elements, int hidden) =>
        layout.UnsortStates<T>(sorted.Span[..(int)elements], states.Span[..(int)elements], hidden);

    /// <summary>The elements of <paramref name="rows"/> from its offset on (empty for a default).</summary>
    protected static Span<T> From(StridedRows<Memory<T>> rows) => rows.Buffer.Span[(int)rows.Offset..];

    /// <summary>One [N, H] state slice of <paramref name="rows"/> (empty for a default).</summary>
    protected static Span<T> State(StridedRows<Memory<T>> rows, int batch, int hidden) =>
        rows.Buffer.IsEmpty ? default : rows.Buffer.Span.Slice((int)rows.Offset, batch * hidden);
}
