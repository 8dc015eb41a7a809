using System.Text;

namespace Recurrent;

/// <summary>
/// A dense, row-major float32 tensor that carries its shape. The last dimension is contiguous,
/// as in PyTorch, so a [T,N,H] tensor stores element (t, n, h) at <c>(t·N + n)·H + h</c>.
/// Thread-safety: its shape never changes; its elements are a plain array, safe to read from several threads and
/// to write from one thread while no other thread reads them.
/// </summary>
public sealed class Tensor
{
    private readonly int[] _shape;

    /// <summary>A tensor of zeros with the given shape.</summary>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The shape has more elements than one array holds (<see cref="Array.MaxLength"/>).</exception>
    public Tensor(params int[] shape) : this(new float[ElementCount(shape)], shape) { }

    /// <summary>Wraps <paramref name="data"/> (not copied) as a tensor of the given shape.</summary>
    /// <exception cref="ArgumentException">The data length is not the product of the shape, or a dimension is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The shape has more elements than one array holds.</exception>
    public Tensor(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        long count = ElementCount(shape);
        if (data.Length != count)
            throw new ArgumentException($"data has {data.Length} elements, but shape {FormatShape(shape)} needs {count}.", nameof(data));
        Data = data;
        _shape = (int[])shape.Clone();
    }

    /// <summary>The elements, row-major.</summary>
    public float[] Data { get; }

    /// <summary>The dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape => _shape;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The number of elements.</summary>
    public int Length => Data.Length;

    /// <summary>The elements as a span.</summary>
    public Span<float> AsSpan() => Data;

    /// <summary>The element at the given indices (one per dimension).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="index"/> is null.</exception>
    /// <exception cref="ArgumentException">The number of indices is not the rank.</exception>
    /// <exception cref="IndexOutOfRangeException">An index is outside its dimension.</exception>
    public float this[params int[] index]
    {
        get => Data[Offset(index)];
        set => Data[Offset(index)] = value;
    }

    /// <summary>A deep copy.</summary>
    public Tensor Clone() => new((float[])Data.Clone(), _shape);

    /// <summary>Whether the shape equals <paramref name="shape"/>.</summary>
    public bool HasShape(params int[] shape) => _shape.AsSpan().SequenceEqual(shape);

    /// <summary>The shape written as <c>[2, 3, 4]</c>.</summary>
    public override string ToString() => $"Tensor{FormatShape(_shape)}";

    /// <summary>Writes a shape as <c>[2, 3, 4]</c>.</summary>
    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <paramref name="argumentName"/>, the expected and the
    /// actual shape unless <paramref name="tensor"/> has shape <paramref name="expected"/>.
    /// </summary>
    public static void RequireShape(Tensor tensor, string argumentName, params int[] expected)
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        if (!tensor.HasShape(expected))
            throw new ArgumentException($"{argumentName}: expected shape {FormatShape(expected)}, got {FormatShape(tensor._shape)}.", argumentName);
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the argument if any element is NaN or infinite.</summary>
    public static void RequireFinite(Tensor tensor, string argumentName)
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        int bad = IndexOfNonFinite(tensor.Data);
        if (bad >= 0)
            throw new ArgumentException($"{argumentName}: element {bad} is {tensor.Data[bad]}; expected finite values.", argumentName);
    }

    internal static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        // x − x is 0 for every finite x and NaN for NaN and ±∞: one subtraction and compare per lane, so the
        // check costs a small fraction of any recurrent pass over the same data.
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var vectors = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(values);
            for (int v = 0; v < vectors.Length; v++)
            {
                var difference = vectors[v] - vectors[v];
                if (!System.Numerics.Vector.EqualsAll(difference, System.Numerics.Vector<float>.Zero))
                    break;
                i += System.Numerics.Vector<float>.Count;
            }
        }
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    private int Offset(int[] index)
    {
        ArgumentNullException.ThrowIfNull(index);
        if (index.Length != _shape.Length)
            throw new ArgumentException($"index has {index.Length} components; tensor has rank {_shape.Length}.", nameof(index));
        int offset = 0;
        for (int d = 0; d < index.Length; d++)
        {
            if ((uint)index[d] >= (uint)_shape[d])
                throw new IndexOutOfRangeException($"index {index[d]} is outside dimension {d} of size {_shape[d]}.");
            offset = offset * _shape[d] + index[d];
        }
        return offset;
    }

    private static int ElementCount(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        foreach (int d in shape)
            if (d < 0) throw new ArgumentException($"shape {FormatShape(shape)} has a negative dimension.", nameof(shape));
        // An empty dimension anywhere makes an empty tensor, whatever the order of the others.
        if (shape.Contains(0)) return 0;
        long count = 1;
        foreach (int d in shape)
        {
            count *= d;
            if (count > Array.MaxLength)
                throw new ArgumentOutOfRangeException(nameof(shape), $"shape {FormatShape(shape)} has more elements than one array holds ({Array.MaxLength}).");
        }
        return (int)count;
    }
}
