using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Recurrent.Onnx.Protobuf;

namespace Recurrent.Onnx;

/// <summary>
/// Reads the values of an ONNX <c>TensorProto</c> (onnx.proto3: dims, data_type, raw_data little-endian or the typed
/// repeated fields) with every count checked; external and string data are refused.
/// </summary>
internal static class OnnxTensors
{
    public static string TypeName(int dataType) =>
        Enum.IsDefined(typeof(TensorProto.Types.DataType), dataType) ? ((TensorProto.Types.DataType)dataType).ToString().ToUpperInvariant() : $"type {dataType}";

    /// <summary>The dimensions, checked: none negative, and the element count fits one array.</summary>
    /// <param name="tensor">The tensor.</param>
    /// <param name="fail">Makes the exception for a problem (the caller knows which node and tensor this is).</param>
    public static int[] Dims(TensorProto tensor, Func<string, Exception> fail)
    {
        var dims = new int[tensor.Dims.Count];
        long count = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            long d = tensor.Dims[i];
            if (d < 0 || d > Array.MaxLength) throw fail($"dimension {i} is {d}");
            dims[i] = (int)d;
            count *= d;
            if (count > Array.MaxLength) throw fail($"shape {FloatTensor.FormatShape(dims[..(i + 1)])} has more elements than one array holds");
        }
        return dims;
    }

    public static long Count(int[] dims) => dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>The values of a FLOAT tensor.</summary>
    public static float[] Floats(TensorProto tensor, Func<string, Exception> fail)
    {
        RequireInternal(tensor, fail);
        if (tensor.DataType != (int)TensorProto.Types.DataType.Float)
            throw fail($"its data type is {TypeName(tensor.DataType)}; expected FLOAT (float32)");
        long count = Count(Dims(tensor, fail));
        if (!tensor.RawData.IsEmpty)
        {
            if (tensor.FloatData.Count != 0) throw fail("it holds both raw_data and float_data");
            if (tensor.RawData.Length != count * sizeof(float))
                throw fail($"raw_data has {tensor.RawData.Length} bytes; its shape needs {count} × 4");
            var values = new float[count];
            var bytes = tensor.RawData.Span;
            if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
            return values;
        }
        if (tensor.FloatData.Count != count) throw fail($"it holds {tensor.FloatData.Count} values; its shape needs {count}");
        return [.. tensor.FloatData];
    }

    /// <summary>Whether a tensor holds integers (INT64 or INT32).</summary>
    public static bool IsInteger(TensorProto tensor) =>
        tensor.DataType is (int)TensorProto.Types.DataType.Int64 or (int)TensorProto.Types.DataType.Int32;

    /// <summary>The values of an INT64 or INT32 tensor.</summary>
    public static long[] Integers(TensorProto tensor, Func<string, Exception> fail)
    {
        RequireInternal(tensor, fail);
        long count = Count(Dims(tensor, fail));
        bool int64 = tensor.DataType == (int)TensorProto.Types.DataType.Int64;
        if (!int64 && tensor.DataType != (int)TensorProto.Types.DataType.Int32)
            throw fail($"its data type is {TypeName(tensor.DataType)}; expected INT64 or INT32");
        int size = int64 ? 8 : 4;
        if (!tensor.RawData.IsEmpty)
        {
            if (tensor.RawData.Length != count * size) throw fail($"raw_data has {tensor.RawData.Length} bytes; its shape needs {count} × {size}");
            var bytes = tensor.RawData.Span;
            var values = new long[count];
            for (int i = 0; i < values.Length; i++)
                values[i] = int64 ? BinaryPrimitives.ReadInt64LittleEndian(bytes[(i * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * 4)..]);
            return values;
        }
        var data = int64 ? tensor.Int64Data.ToArray() : tensor.Int32Data.Select(v => (long)v).ToArray();
        if (data.Length != count) throw fail($"it holds {data.Length} values; its shape needs {count}");
        return data;
    }

    private static void RequireInternal(TensorProto tensor, Func<string, Exception> fail)
    {
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External || tensor.ExternalData.Count > 0)
            throw fail("its data is stored outside the model (external data); Recurrent reads models whose tensors are inside the file");
        if (tensor.Segment is not null) throw fail("it is segmented; Recurrent reads whole tensors");
    }
}
