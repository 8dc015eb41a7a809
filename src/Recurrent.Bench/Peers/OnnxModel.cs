using System.Runtime.InteropServices;
using System.Text;

namespace Recurrent.Bench.Peers;

/// <summary>
/// Writes an ONNX model (opset 14) with a single <c>LSTM</c>, <c>GRU</c> or <c>RNN</c> node, its weights as
/// initializers, so that ONNX Runtime runs exactly one fused recurrent operator. Only the handful of protobuf
/// fields a model needs are written (field numbers from onnx.proto3), so no onnx package is needed.
/// </summary>
/// <remarks>
/// ONNX layouts: X [T, N, I]; W [D, G·H, I]; R [D, G·H, H]; B [D, 2·G·H] = (W biases, R biases); Y [T, D, N, H].
/// Gate orders: LSTM i, o, f, c; GRU z, r, h; RNN one block. GRU's linear_before_reset = 1 is PyTorch's
/// reset-after form and 0 the reset-before form with the R bias outside the product, as in <see cref="CellKind"/>.
/// </remarks>
internal static class OnnxModel
{
    public const int Opset = 14;
    public const string InputName = "X", OutputName = "Y";

    /// <summary>For each of ONNX's gate blocks, the index of PyTorch's gate block it is (see <see cref="CellKind"/>).</summary>
    public static int[] GateOrder(CellKind cell) => cell switch
    {
        CellKind.Lstm => [0, 3, 1, 2],                                  // i, o, f, c  =  i, o, f, g
        CellKind.GruResetAfter or CellKind.GruResetBefore => [1, 0, 2], // z, r, h  =  z, r, n
        CellKind.RnnTanh or CellKind.RnnRelu => [0],
        _ => throw new NotSupportedException($"ONNX has no {cell} cell."),
    };

    /// <summary>The serialized model for one layer of <paramref name="parameters"/> run over x [T, N, I].</summary>
    public static byte[] SingleLayer(RnnParameters parameters, int steps, int batch)
    {
        var config = parameters.Config;
        if (config.NumLayers != 1)
            throw new NotSupportedException($"one ONNX {OperatorName(config.Cell)} node is one layer; the configuration has {config.NumLayers}.");
        int directions = config.Directions, input = config.InputSize, hidden = config.HiddenSize, gh = config.GateCount * hidden;
        var order = GateOrder(config.Cell);
        var w = new float[directions * gh * input];
        var r = new float[directions * gh * hidden];
        var b = new float[directions * 2 * gh];
        for (int d = 0; d < directions; d++)
        {
            GateBlocks.Permute(parameters[0, d, ParameterSpec.WeightIH].Value.Span, hidden * input, order, w.AsSpan(d * gh * input, gh * input));
            GateBlocks.Permute(parameters[0, d, ParameterSpec.WeightHH].Value.Span, hidden * hidden, order, r.AsSpan(d * gh * hidden, gh * hidden));
            GateBlocks.Permute(parameters[0, d, ParameterSpec.BiasIH].Value.Span, hidden, order, b.AsSpan(d * 2 * gh, gh));
            GateBlocks.Permute(parameters[0, d, ParameterSpec.BiasHH].Value.Span, hidden, order, b.AsSpan(d * 2 * gh + gh, gh));
        }

        var graph = new ProtoWriter();
        graph.Message(1, node =>                                       // GraphProto.node
        {
            foreach (var name in new[] { InputName, "W", "R", "B" }) node.String(1, name);
            node.String(2, OutputName);
            node.String(3, "rnn");
            node.String(4, OperatorName(config.Cell));
            node.Message(5, a => { a.String(1, "hidden_size"); a.Int64(3, hidden); a.Int64(20, 2); });          // INT
            node.Message(5, a => { a.String(1, "direction"); a.Bytes(4, Encoding.UTF8.GetBytes(config.Bidirectional ? "bidirectional" : "forward")); a.Int64(20, 3); }); // STRING
            if (config.Cell.IsGru())
                node.Message(5, a => { a.String(1, "linear_before_reset"); a.Int64(3, config.Cell == CellKind.GruResetAfter ? 1 : 0); a.Int64(20, 2); });
            if (config.Cell is CellKind.RnnTanh or CellKind.RnnRelu)
                node.Message(5, a =>                                   // one activation a direction, STRINGS
                {
                    a.String(1, "activations");
                    for (int d = 0; d < directions; d++) a.Bytes(9, Encoding.UTF8.GetBytes(config.Cell == CellKind.RnnRelu ? "Relu" : "Tanh"));
                    a.Int64(20, 8);
                });
        });
        graph.String(2, "recurrent_peer");
        Initializer(graph, "W", w, directions, gh, input);
        Initializer(graph, "R", r, directions, gh, hidden);
        Initializer(graph, "B", b, directions, 2 * gh);
        ValueInfo(graph, 11, InputName, steps, batch, input);
        ValueInfo(graph, 12, OutputName, steps, directions, batch, hidden);

        var model = new ProtoWriter();
        model.Int64(1, 7);                                            // ir_version 7 goes with opset 14
        model.String(2, "Recurrent.Bench");
        model.Message(7, graph);
        model.Message(8, opset => { opset.String(1, ""); opset.Int64(2, Opset); });
        return model.ToArray();
    }

    private static string OperatorName(CellKind cell) => cell switch
    {
        CellKind.Lstm => "LSTM",
        CellKind.GruResetAfter or CellKind.GruResetBefore => "GRU",
        CellKind.RnnTanh or CellKind.RnnRelu => "RNN",
        _ => throw new NotSupportedException($"ONNX has no {cell} cell."),
    };

    private static void Initializer(ProtoWriter graph, string name, float[] values, params long[] dims) =>
        graph.Message(5, tensor =>                                     // GraphProto.initializer: TensorProto
        {
            foreach (long d in dims) tensor.Int64(1, d);
            tensor.Int64(2, 1);                                        // FLOAT
            tensor.String(8, name);
            tensor.Bytes(9, MemoryMarshal.AsBytes(values.AsSpan())); // raw_data, little-endian as on x86 and ARM
        });

    private static void ValueInfo(ProtoWriter graph, int field, string name, params long[] dims) =>
        graph.Message(field, info =>                                   // ValueInfoProto
        {
            info.String(1, name);
            info.Message(2, type => type.Message(1, tensor =>          // TypeProto.tensor_type
            {
                tensor.Int64(1, 1);                                    // elem_type FLOAT
                tensor.Message(2, shape =>
                {
                    foreach (long d in dims) shape.Message(1, dim => dim.Int64(1, d));
                });
            }));
        });
}

/// <summary>The few protobuf encodings ONNX models need: varints, length-delimited strings, bytes and messages.</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _stream = new();

    public byte[] ToArray() => _stream.ToArray();

    public void Int64(int field, long value)
    {
        Tag(field, 0);
        Varint((ulong)value);
    }

    public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public void Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        _stream.Write(value);
    }

    public void Message(int field, ProtoWriter message) => Bytes(field, message._stream.GetBuffer().AsSpan(0, (int)message._stream.Length));

    public void Message(int field, Action<ProtoWriter> write)
    {
        var message = new ProtoWriter();
        write(message);
        Message(field, message);
    }

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    private void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _stream.WriteByte((byte)value);
    }
}
