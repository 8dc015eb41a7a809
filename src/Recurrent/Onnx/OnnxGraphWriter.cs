using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Recurrent.Onnx.Protobuf;

namespace Recurrent.Onnx;

/// <summary>Builds an ONNX graph: initializers, nodes (named, with their outputs), graph inputs and outputs.</summary>
internal sealed class OnnxGraphWriter(string name)
{
    private readonly HashSet<string> _constants = new(StringComparer.Ordinal);

    public GraphProto Graph { get; } = new() { Name = name };

    /// <summary>A float32 initializer; returns its name.</summary>
    public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        // raw_data is little-endian whatever the machine (onnx.proto3, TensorProto.raw_data).
        if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(values).CopyTo(bytes);
        else for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        Graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>A 1-D int64 initializer (shapes, axes, slice bounds), written once however often it is asked for.</summary>
    public string Constant(string name, long[] values)
    {
        if (!_constants.Add(name)) return name;
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(values.Length);
        tensor.Int64Data.AddRange(values);
        Graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>A node with one output, named after the node; returns the output's name.</summary>
    public string Node(string op, string name, string[] inputs, params AttributeProto[] attributes) =>
        Node(op, name, inputs, [$"{name}_out"], attributes)[0];

    /// <summary>A node with the given outputs; returns them.</summary>
    public string[] Node(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return outputs;
    }

    /// <summary>A graph input; each dimension is a size (int) or a symbolic name (string).</summary>
    public void Input(string name, TensorProto.Types.DataType type, params object[] dims) => Graph.Input.Add(ValueInfo(name, type, dims));

    /// <summary>A graph output; each dimension is a size (int) or a symbolic name (string).</summary>
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => Graph.Output.Add(ValueInfo(name, type, dims));

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string symbol ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Strings(string name, IEnumerable<string> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Strings };
        attribute.Strings.AddRange(values.Select(ByteString.CopyFromUtf8));
        return attribute;
    }
}
