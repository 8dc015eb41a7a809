using System.Numerics.Tensors;
using System.Text;

namespace Recurrent;

/// <summary>
/// A dense, row-major float32 tensor that carries its shape. The last dimension is contiguous,
/// as in PyTorch, so a [T,N,H] tensor stores element (t, n, h) at <c>(t·N + n)·H + h</c>.
/// Its elements are a contiguous run of a float array: the whole array (<see cref="FloatTensor(float[], int[])"/>) or part of
/// a larger one (<see cref="View(float[], int, int[])"/>, <see cref="Reshape"/>; a parameter's value and gradient are views
/// of its set's flat storage), reached through <see cref="Span"/> and <see cref="Memory"/>.
/// Thread-safety: its shape never changes; its elements are plain memory, safe to read from several threads and
/// to write from one thread while no other thread reads them.
/// </summary>
/// <remarks>Lifetime: managed memory only (not IDisposable); a view keeps its whole array alive, and a parameter's view is stale once its set's storage moves (see <see cref="Sequence.RecurrentSequenceModel.Parameters"/>).</remarks>
public sealed class FloatTensor
{
    private readonly int[] _shape;
    private readonly int _length;
    // Not readonly: a parameter set adopted into a model's flat storage moves its tensors there (ParameterSet.Adopt),
    // so that what users hold of the parameters stays live.
    private float[] _storage;
    private int _offset;

    /// <summary>A tensor of zeros with the given shape.</summary>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The shape has more elements than one array holds (<see cref="Array.MaxLength"/>).</exception>
    public FloatTensor(params int[] shape) : this(new float[ElementCount(shape)], shape) { }

    /// <summary>Wraps <paramref name="data"/> (not copied) as a tensor of the given shape.</summary>
    /// <exception cref="ArgumentException">The data length is not the product of the shape, or a dimension is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The shape has more elements than one array holds.</exception>
    public FloatTensor(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        long count = ElementCount(shape);
        if (data.Length != count)
            throw new ArgumentException($"data has {data.Length} elements, but shape {FormatShape(shape)} needs {count}.", nameof(data));
        (_storage, _offset, _length, _shape) = (data, 0, data.Length, (int[])shape.Clone());
    }

    private FloatTensor(float[] storage, int offset, int length, int[] shape) => (_storage, _offset, _length, _shape) = (storage, offset, length, shape);

    /// <summary>
    /// A tensor over elements [offset, offset + count) of <paramref name="storage"/> (not copied), count being the product of
    /// the shape: writes through either are seen by the other.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="storage"/> or <paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is outside [0, storage length], or the shape's elements
    /// run past the end of <paramref name="storage"/> (ParamName "shape"); the message gives the range.</exception>
    public static FloatTensor View(float[] storage, int offset, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(storage);
        int count = ElementCount(shape);
        if ((uint)offset > (uint)storage.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset: expected a start in [0, {storage.Length}] (the storage's length), got {offset}.");
        if (count > storage.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(shape),
                $"shape: {FormatShape(shape)} needs {count} elements from offset {offset}, but the storage has {storage.Length - offset} there (length {storage.Length}).");
        return new FloatTensor(storage, offset, count, (int[])shape.Clone());
    }

    /// <summary>The elements, row-major: a span over the storage, not a copy.</summary>
    public Span<float> Span => new(_storage, _offset, _length);

    /// <summary>The elements as memory (for what outlives a call, such as an upload); over the storage, not a copy.</summary>
    public Memory<float> Memory => new(_storage, _offset, _length);

    /// <summary>A copy of the elements, row-major.</summary>
    public float[] ToArray() => Span.ToArray();

    /// <summary>
    /// The elements as a <see cref="TensorSpan{T}"/> of <c>System.Numerics.Tensors</c> with this shape, dense and
    /// row-major: over the same memory, not a copy (writes through either are seen by the other).
    /// </summary>
    public TensorSpan<float> AsTensorSpan() => new(Span, Lengths());

    /// <summary>As <see cref="AsTensorSpan"/>, read-only.</summary>
    public ReadOnlyTensorSpan<float> AsReadOnlyTensorSpan() => new(Span, Lengths());

    /// <summary>
    /// A new tensor with the shape and elements (row-major) of <paramref name="source"/>, from <c>System.Numerics.Tensors</c>
    /// (a <see cref="Tensor{T}"/> converts implicitly). One copy, whatever the source's strides: a tensor owns a plain
    /// float array, which a tensor span cannot lend.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension or the element count does not fit an <see cref="int"/> (one array).</exception>
    public static FloatTensor From(in ReadOnlyTensorSpan<float> source)
    {
        var lengths = source.Lengths;
        var shape = new int[lengths.Length];
        for (int i = 0; i < shape.Length; i++)
            shape[i] = lengths[i] <= int.MaxValue ? (int)lengths[i]
                : throw new ArgumentOutOfRangeException(nameof(source), $"source: dimension {i} is {lengths[i]}; at most {int.MaxValue}.");
        var result = new FloatTensor(shape);
        source.FlattenTo(result.Span);
        return result;
    }

    private nint[] Lengths()
    {
        var lengths = new nint[_shape.Length];
        for (int i = 0; i < lengths.Length; i++)
            lengths[i] = _shape[i];
        return lengths;
    }

    /// <summary>The dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape => _shape;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The number of elements.</summary>
    public int Length => _length;

    /// <summary>The element at the given indices (one per dimension).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="index"/> is null.</exception>
    /// <exception cref="ArgumentException">The number of indices is not the rank.</exception>
    /// <exception cref="IndexOutOfRangeException">An index is outside its dimension.</exception>
    public float this[params int[] index]
    {
        get => _storage[_offset + Offset(index)];
        set => _storage[_offset + Offset(index)] = value;
    }

    /// <summary>A deep copy, with storage of its own.</summary>
    public FloatTensor Clone() => new(ToArray(), _shape);

    /// <summary>The same elements (not copied) under another shape of as many elements, as PyTorch's <c>view</c>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension is negative, or the shape has another number of elements (ParamName "shape").</exception>
    public FloatTensor Reshape(params int[] shape)
    {
        int count = ElementCount(shape);
        if (count != _length)
            throw new ArgumentException($"shape: {FormatShape(shape)} has {count} elements; this tensor {FormatShape(_shape)} has {_length}.", nameof(shape));
        return new FloatTensor(_storage, _offset, _length, (int[])shape.Clone());
    }

    /// <summary>Moves the tensor onto <paramref name="storage"/> from <paramref name="offset"/>; the caller copied the elements there.</summary>
    internal void Rebind(float[] storage, int offset)
    {
        if ((uint)offset > (uint)storage.Length || _length > storage.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "the new storage is too short");
        (_storage, _offset) = (storage, offset);
    }

    /// <summary>Whether the shape equals <paramref name="shape"/>.</summary>
    public bool HasShape(params int[] shape) => _shape.AsSpan().SequenceEqual(shape);

    /// <summary>The shape written as <c>[2, 3, 4]</c>.</summary>
    public override string ToString() => $"FloatTensor{FormatShape(_shape)}";

    /// <summary>Writes a shape as <c>[2, 3, 4]</c>.</summary>
    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <paramref name="argumentName"/>, the expected and the
    /// actual shape unless <paramref name="tensor"/> has shape <paramref name="expected"/>.
    /// </summary>
    public static void RequireShape(FloatTensor tensor, string argumentName, params int[] expected)
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        if (!tensor.HasShape(expected))
            throw new ArgumentException($"{argumentName}: expected shape {FormatShape(expected)}, got {FormatShape(tensor._shape)}.", argumentName);
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the argument if any element is NaN or infinite.</summary>
    public static void RequireFinite(FloatTensor tensor, string argumentName)
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        var values = tensor.Span;
        int bad = IndexOfNonFinite(values);
        if (bad >= 0)
            throw new ArgumentException($"{argumentName}: element {bad} is {values[bad]}; expected finite values.", argumentName);
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
