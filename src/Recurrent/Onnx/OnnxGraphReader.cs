using System.Text;
using Recurrent.Onnx.Protobuf;

namespace Recurrent.Onnx;

/// <summary>What the import found in a graph: the stack, and for a sequence model its embedding and output layer.</summary>
internal sealed record RecognisedGraph(
    RnnConfig Config,
    IReadOnlyList<RecognisedLayer> Layers,
    RecognisedEmbedding? Embedding,
    float[]? OutputWeight,
    float[]? OutputBias,
    int OutputSize);

/// <summary>One recurrent node's parameters in ONNX's layout: W [D, G·H, I_k], R [D, G·H, H], B [D, 2·G·H] (null: zeros).</summary>
internal sealed record RecognisedLayer(float[] W, float[] R, float[]? B);

/// <summary>The stack's input: rows of a table [Rows, I] selected by token ids, or values [T, N, Rows] times the table.</summary>
internal sealed record RecognisedEmbedding(bool Tokens, float[] Table, int Rows);

/// <summary>
/// Reads an ONNX graph as a recurrent stack (and, around it, a sequence model) by following what every value means:
/// the stack's input, rows of a state input, a layer's Y in one of its three layouts, the layers' final states, zeros,
/// shape integers, constants. Every operator and attribute is checked against the forms that have this meaning; anything
/// else (an operator, an attribute value, a shape) is refused with the node and attribute named, so a graph is read only
/// when it computes exactly what the stack (or the model) computes. See <see cref="OnnxImport"/> for the forms.
/// </summary>
internal sealed class OnnxGraphReader
{
    /// <summary>The default-domain opsets read: LSTM, GRU and RNN are the same operators from 7 on (14 added layout, 22 types).</summary>
    public const int MinOpset = 7, MaxOpset = 27;

    private readonly string _source;
    private readonly GraphProto _graph;
    private readonly Dictionary<string, Meaning> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ValueInfoProto> _inputs = new(StringComparer.Ordinal);

    // Found in the first pass over the recurrent nodes.
    private CellKind _cell;
    private int _hidden, _directions, _layers;

    // Found in the second pass.
    private readonly List<RecognisedLayer> _recognised = [];
    private readonly List<(NodeProto Node, string? Input)> _lengths = [];
    private readonly List<(NodeProto Node, InputRows? Rows)> _initialHidden = [], _initialCell = [];
    private RecognisedEmbedding? _embedding;
    private string? _sequenceInput;
    private float[]? _outputWeight, _outputBias;
    private int _outputSize;

    private OnnxGraphReader(string source, GraphProto graph) => (_source, _graph) = (source, graph);

    /// <summary>Reads a model's graph.</summary>
    /// <exception cref="InvalidDataException">The model is not one the import reads; the message names the node and attribute.</exception>
    public static RecognisedGraph Read(string source, ModelProto model)
    {
        // Protobuf reads almost any bytes as some message; no graph is the sign that these were not a model.
        var graph = model.Graph ?? throw new InvalidDataException($"{source}: not an ONNX model: it has no graph.");
        if (model.IrVersion < 3 || model.IrVersion > (long)Protobuf.Version.IrVersion)
            throw new InvalidDataException($"{source}: ir_version is {model.IrVersion}; Recurrent reads IR versions 3 to {(long)Protobuf.Version.IrVersion}.");
        var opsets = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").ToList();
        if (opsets.Count != 1)
            throw new InvalidDataException($"{source}: opset_import names the default ONNX domain {opsets.Count} times; expected once.");
        if (opsets[0].Version < MinOpset || opsets[0].Version > MaxOpset)
            throw new InvalidDataException($"{source}: opset_import: the default domain's opset is {opsets[0].Version}; Recurrent reads opsets {MinOpset} to {MaxOpset}.");
        if (graph.SparseInitializer.Count > 0)
            throw new InvalidDataException($"{source}: sparse initializer '{graph.SparseInitializer[0].Values?.Name}': sparse tensors are not read; store weights as dense initializers.");
        return new OnnxGraphReader(source, graph).Read();
    }

    private RecognisedGraph Read()
    {
        foreach (var input in _graph.Input)
        {
            if (!_inputs.TryAdd(input.Name, input)) throw Graph($"graph input '{input.Name}' is declared twice");
            _values[input.Name] = new GraphInput(input.Name);
        }
        // An initializer that is also a graph input is a default a runtime may override; Recurrent takes the default.
        foreach (var initializer in _graph.Initializer)
        {
            if (_values.TryGetValue(initializer.Name, out var existing) && existing is Known)
                throw Graph($"initializer '{initializer.Name}' is given twice");
            _values[initializer.Name] = new Known(initializer, $"initializer '{initializer.Name}'");
            _inputs.Remove(initializer.Name);
        }
        FindRecurrentNodes();
        for (int i = 0; i < _graph.Node.Count; i++) Interpret(_graph.Node[i], i);
        return Finish();
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Pass 1: the recurrent nodes fix the cell, H, D and L.
    // ---------------------------------------------------------------------------------------------------------------

    private void FindRecurrentNodes()
    {
        NodeProto? first = null;
        int firstIndex = -1;
        for (int i = 0; i < _graph.Node.Count; i++)
        {
            var node = _graph.Node[i];
            if (!IsRecurrent(node)) continue;
            var (cell, hidden, directions) = RecurrentAttributes(node, i);
            if (first is null)
            {
                (first, firstIndex, _cell, _hidden, _directions) = (node, i, cell, hidden, directions);
            }
            else
            {
                string FirstHas(object value) => $"(node '{NodeName(first, firstIndex)}' has {value})";
                if (node.OpType != first.OpType)
                    throw Fail(node, i, null, $"every recurrent node of a stack has one operator; {FirstHas(first.OpType)}");
                if (cell != _cell)
                    throw Fail(node, i, cell.IsGru() ? "linear_before_reset" : "activations", $"computes {cell}, another cell than the stack's first layer {FirstHas(_cell)}");
                if (hidden != _hidden)
                    throw Fail(node, i, "hidden_size", $"is {hidden}; every layer of a stack has one hidden size {FirstHas(_hidden)}");
                if (directions != _directions)
                    throw Fail(node, i, "direction", $"differs from the first layer's; every layer of a stack runs the same directions {FirstHas(_directions == 2 ? "bidirectional" : "forward")}");
            }
            _layers++;
        }
        if (first is null)
            throw Graph("it has no LSTM, GRU or RNN node; Recurrent imports recurrent stacks");
    }

    private static bool IsRecurrent(NodeProto node) => node.Domain is "" or "ai.onnx" && node.OpType is "LSTM" or "GRU" or "RNN";

    /// <summary>Checks every attribute of a recurrent node (ONNX operator specification: LSTM, GRU, RNN).</summary>
    private (CellKind Cell, int Hidden, int Directions) RecurrentAttributes(NodeProto node, int index)
    {
        long? hidden = null;
        int directions = 1;
        bool linearBeforeReset = false;
        string[]? activations = null;
        foreach (var a in node.Attribute)
        {
            switch (a.Name)
            {
                case "hidden_size":
                    hidden = Int(node, index, a);
                    if (hidden < 1 || hidden > Array.MaxLength) throw Fail(node, index, a.Name, $"is {hidden}; expected a positive size");
                    break;
                case "direction":
                    string direction = Str(node, index, a);
                    directions = direction switch
                    {
                        "forward" => 1,
                        "bidirectional" => 2,
                        "reverse" => throw Fail(node, index, a.Name, "is \"reverse\": a layer that runs only backwards has no Recurrent equivalent (a bidirectional layer's reverse half does)"),
                        _ => throw Fail(node, index, a.Name, $"is \"{direction}\"; expected forward or bidirectional"),
                    };
                    break;
                case "activations":
                    RequireType(node, index, a, AttributeProto.Types.AttributeType.Strings);
                    activations = [.. a.Strings.Select(s => s.ToStringUtf8())];
                    break;
                case "linear_before_reset" when node.OpType == "GRU":
                    linearBeforeReset = Int(node, index, a) != 0;   // "when linear_before_reset != 0"
                    break;
                case "input_forget" when node.OpType == "LSTM":
                    if (Int(node, index, a) != 0) throw Fail(node, index, a.Name, "is 1 (coupled input and forget gates); Recurrent's LSTM has separate gates");
                    break;
                case "layout":
                    if (Int(node, index, a) != 0) throw Fail(node, index, a.Name, $"is {a.I} (batch first); Recurrent reads layout 0 (sequence first)");
                    break;
                case "clip":
                    throw Fail(node, index, a.Name, "clips the cell's pre-activations; Recurrent's cells do not clip");
                case "activation_alpha" or "activation_beta":
                    throw Fail(node, index, a.Name, "parameterises the activations; Recurrent's cells use the plain ones");
                default:
                    throw Fail(node, index, a.Name, $"is not an attribute Recurrent reads on {node.OpType}");
            }
        }
        if (hidden is null) throw Fail(node, index, "hidden_size", "is missing; Recurrent needs it");
        CellKind cell = node.OpType switch
        {
            "LSTM" => CellKind.Lstm,
            "GRU" => linearBeforeReset ? CellKind.GruResetAfter : CellKind.GruResetBefore,
            _ => CellKind.RnnTanh,
        };
        // Defaults: LSTM f, g, h = Sigmoid, Tanh, Tanh; GRU f, g = Sigmoid, Tanh; RNN Tanh; one list per direction.
        string[] defaults = node.OpType switch { "LSTM" => ["Sigmoid", "Tanh", "Tanh"], "GRU" => ["Sigmoid", "Tanh"], _ => ["Tanh"] };
        if (activations is not null)
        {
            if (activations.Length != defaults.Length * directions)
                throw Fail(node, index, "activations", $"has {activations.Length} entries; {node.OpType} with {directions} direction(s) takes {defaults.Length * directions}");
            if (node.OpType == "RNN" && activations.All(s => s.Equals("Relu", StringComparison.OrdinalIgnoreCase)))
                cell = CellKind.RnnRelu;
            else
                for (int i = 0; i < activations.Length; i++)
                    if (!activations[i].Equals(defaults[i % defaults.Length], StringComparison.OrdinalIgnoreCase))
                        throw Fail(node, index, "activations", $"is [{string.Join(", ", activations)}]; Recurrent computes " +
                            (node.OpType == "RNN" ? "Tanh or Relu, the same in both directions" : $"[{string.Join(", ", defaults)}] in each direction"));
        }
        return (cell, (int)hidden, directions);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Pass 2: what every value means.
    // ---------------------------------------------------------------------------------------------------------------

    private abstract record Meaning;
    /// <summary>A constant: an initializer, a Constant node's value.</summary>
    private sealed record Known(TensorProto Tensor, string What) : Meaning;
    /// <summary>Integers computed at run time from shapes (Shape and what follows it): fit only to size zeros.</summary>
    private sealed record SomeInts : Meaning;
    /// <summary>A float tensor of zeros whose shape is known at run time.</summary>
    private sealed record Zeros : Meaning;
    /// <summary>A graph input, whole.</summary>
    private sealed record GraphInput(string Name) : Meaning;
    /// <summary>Rows [Start, End) of a graph input along axis 0 (End may run past the end).</summary>
    private sealed record InputRows(string Name, long Start, long End) : Meaning;
    /// <summary>
    /// The stack's input x made from a graph input (an embedding's Gather or MatMul): [T, N, I], or [N, T, I] when the
    /// graph's input is batch first (<see cref="Transposed"/>: a Transpose by [1, 0, 2] has made it [T, N, I]).
    /// </summary>
    private sealed record StackInput(bool Transposed = false) : Meaning;
    /// <summary>A batch-first graph input [N, T, I] transposed by [1, 0, 2] into the stack's x [T, N, I].</summary>
    private sealed record TransposedInput(string Name) : Meaning;
    /// <summary>Layer k's output sequence: Y [T, D, N, H], transposed [T, N, D, H], flat [T, N, D·H], or flat batch first [N, T, D·H].</summary>
    private sealed record LayerSequence(int Layer, SequenceForm Form) : Meaning;
    /// <summary>The final states (Y_h, or Y_c when <see cref="Cell"/>) of layers [First, End), rows in layer order.</summary>
    private sealed record LayerStates(bool Cell, int First, int End) : Meaning;
    /// <summary>The stack's output times the output weight V.</summary>
    private sealed record Projected : Meaning;
    /// <summary>The sequence model's outputs: y·V + c.</summary>
    private sealed record ModelOutputs : Meaning;

    private enum SequenceForm { Y, Transposed, Flat, FlatBatchFirst }

    private void Interpret(NodeProto node, int index)
    {
        if (node.Domain is not ("" or "ai.onnx"))
            throw Fail(node, index, null, $"its domain '{node.Domain}' is not the default ONNX domain; Recurrent reads ONNX's own operators only");
        var inputs = node.Input.Select(name => name == "" ? null : Lookup(node, index, name)).ToArray();
        Meaning[] outputs = node.OpType switch
        {
            "LSTM" or "GRU" or "RNN" => Recurrent(node, index, inputs),
            "Constant" => [ConstantNode(node, index)],
            "Identity" => [Require(node, index, inputs, 1)[0]!],
            "Cast" => [Cast(node, index, inputs)],
            "Shape" => [Shape(node, index, inputs)],
            "Gather" => [Gather(node, index, inputs)],
            "Unsqueeze" => [Unsqueeze(node, index, inputs)],
            "Squeeze" => [Squeeze(node, index, inputs)],
            "Concat" => [Concat(node, index, inputs)],
            "ConstantOfShape" => [ConstantOfShape(node, index, inputs)],
            "Expand" => [Expand(node, index, inputs)],
            "Slice" => [Slice(node, index, inputs)],
            "Transpose" => [Transpose(node, index, inputs)],
            "Reshape" => [Reshape(node, index, inputs)],
            "MatMul" => [MatMul(node, index, inputs)],
            "Add" => [Add(node, index, inputs)],
            _ => throw Fail(node, index, null, $"the operator {node.OpType} is not one Recurrent reads (it reads LSTM, GRU, RNN, the " +
                "shape operators around them that torch.onnx.export and Recurrent write, and a language model's Gather, MatMul and Add)"),
        };
        if (node.Output.Count > outputs.Length)
            throw Fail(node, index, null, $"it has {node.Output.Count} outputs; {node.OpType} has at most {outputs.Length}");
        for (int i = 0; i < node.Output.Count; i++)
        {
            string name = node.Output[i];
            if (name == "") continue;
            if (!_values.TryAdd(name, outputs[i])) throw Fail(node, index, null, $"its output '{name}' is already defined (a graph assigns each name once)");
        }
    }

    private Meaning Lookup(NodeProto node, int index, string name) =>
        _values.TryGetValue(name, out var meaning) ? meaning
            : throw Fail(node, index, null, $"its input '{name}' is neither a graph input, an initializer nor an output of an earlier node");

    /// <summary>Checks that the first <paramref name="count"/> inputs are given and that the node has no attribute but <paramref name="attributes"/>; returns the inputs.</summary>
    private Meaning?[] Require(NodeProto node, int index, Meaning?[] inputs, int count, params string[] attributes)
    {
        if (inputs.Length < count || inputs.Take(count).Any(m => m is null))
            throw Fail(node, index, null, $"it has {inputs.Length} input(s); {node.OpType} needs {count}");
        OnlyAttributes(node, index, attributes);
        return inputs;
    }

    private void OnlyAttributes(NodeProto node, int index, params string[] known)
    {
        foreach (var a in node.Attribute)
            if (!known.Contains(a.Name)) throw Fail(node, index, a.Name, $"is not an attribute Recurrent reads on {node.OpType}");
    }

    private Meaning ConstantNode(NodeProto node, int index)
    {
        if (node.Input.Count != 0 || node.Attribute.Count != 1) throw Fail(node, index, null, "a Constant has no inputs and one value attribute");
        var a = node.Attribute[0];
        var tensor = a.Name switch
        {
            "value" => Typed(node, index, a, AttributeProto.Types.AttributeType.Tensor).T ?? throw Fail(node, index, a.Name, "holds no tensor"),
            "value_float" => Scalar(TensorProto.Types.DataType.Float, t => t.FloatData.Add(Typed(node, index, a, AttributeProto.Types.AttributeType.Float).F), []),
            "value_floats" => Scalar(TensorProto.Types.DataType.Float, t => t.FloatData.AddRange(Typed(node, index, a, AttributeProto.Types.AttributeType.Floats).Floats), [a.Floats.Count]),
            "value_int" => Scalar(TensorProto.Types.DataType.Int64, t => t.Int64Data.Add(Typed(node, index, a, AttributeProto.Types.AttributeType.Int).I), []),
            "value_ints" => Scalar(TensorProto.Types.DataType.Int64, t => t.Int64Data.AddRange(Typed(node, index, a, AttributeProto.Types.AttributeType.Ints).Ints), [a.Ints.Count]),
            _ => throw Fail(node, index, a.Name, "is not a Constant value Recurrent reads (value, value_float(s), value_int(s))"),
        };
        return new Known(tensor, $"Constant '{NodeName(node, index)}'");

        static TensorProto Scalar(TensorProto.Types.DataType type, Action<TensorProto> fill, long[] dims)
        {
            var t = new TensorProto { DataType = (int)type };
            t.Dims.AddRange(dims);
            fill(t);
            return t;
        }
    }

    private Meaning Cast(NodeProto node, int index, Meaning?[] inputs)
    {
        var input = Require(node, index, inputs, 1, "to", "saturate")[0];
        long to = node.Attribute.FirstOrDefault(a => a.Name == "to") is { } a ? Int(node, index, a) : throw Fail(node, index, "to", "is missing");
        if (IsInts(input) && IsIntegerType(to)) return new SomeInts();
        if (IsZeros(input) && to == (int)TensorProto.Types.DataType.Float) return new Zeros();
        // A graph's own lengths input cast to int32 for sequence_lens.
        if (input is GraphInput g && IsIntegerType(to) && IsIntegerType(ElementType(g.Name))) return input;
        throw Fail(node, index, "to", $"casts {Describe(input)} to {OnnxTensors.TypeName((int)to)}; Recurrent reads casts of shape integers, zeros and the lengths input only");
    }

    private static bool IsIntegerType(long type) => type is (int)TensorProto.Types.DataType.Int64 or (int)TensorProto.Types.DataType.Int32;

    private Meaning Shape(NodeProto node, int index, Meaning?[] inputs)
    {
        Require(node, index, inputs, 1, "start", "end");
        return new SomeInts();
    }

    private Meaning Gather(NodeProto node, int index, Meaning?[] inputs)
    {
        var (data, indices) = (Require(node, index, inputs, 2, "axis")[0], inputs[1]);
        long axis = node.Attribute.FirstOrDefault(a => a.Name == "axis") is { } a ? Int(node, index, a) : 0;
        if (IsInts(data) && IsInts(indices)) return new SomeInts();
        if (data is Known table && indices is GraphInput ids)
        {
            if (axis != 0) throw Fail(node, index, "axis", $"is {axis}; an embedding lookup gathers rows (axis 0)");
            if (!IsIntegerType(ElementType(ids.Name)))
                throw Fail(node, index, null, $"its indices, graph input '{ids.Name}', are {OnnxTensors.TypeName(ElementType(ids.Name))}; token ids are INT64 or INT32");
            return Embedding(node, index, table, ids.Name, tokens: true);
        }
        throw Fail(node, index, null, $"gathers {Describe(indices)} from {Describe(data)}; Recurrent reads Gather of shape integers and an embedding's Gather of a table initializer by a graph input of token ids");
    }

    private Meaning Embedding(NodeProto node, int index, Known table, string input, bool tokens)
    {
        if (_embedding is not null) throw Fail(node, index, null, "a second embedding; a sequence model has one");
        var dims = OnnxTensors.Dims(table.Tensor, p => Fail(node, index, null, $"{table.What}: {p}"));
        if (dims.Length != 2) throw Fail(node, index, null, $"{table.What} has shape {FloatTensor.FormatShape(dims)}; an embedding is a matrix [O, I]");
        if (dims[0] < 1 || dims[1] < 1) throw Fail(node, index, null, $"{table.What} has shape {FloatTensor.FormatShape(dims)}; expected at least one row and column");
        _embedding = new RecognisedEmbedding(tokens, FiniteFloats(node, index, table), dims[0]);
        _embeddingColumns = dims[1];
        _sequenceInput = input;
        return new StackInput();
    }

    private int _embeddingColumns;

    private Meaning Unsqueeze(NodeProto node, int index, Meaning?[] inputs)
    {
        var data = Require(node, index, inputs, 1, "axes")[0];
        if (IsInts(data)) return new SomeInts();
        if (IsZeros(data)) return new Zeros();
        throw Fail(node, index, null, $"unsqueezes {Describe(data)}; Recurrent reads Unsqueeze of shape integers and zeros only");
    }

    private Meaning Squeeze(NodeProto node, int index, Meaning?[] inputs)
    {
        var data = Require(node, index, inputs, 1, "axes")[0];
        if (IsInts(data)) return new SomeInts();
        if (IsZeros(data)) return new Zeros();
        if (data is LayerSequence { Form: not SequenceForm.Flat } sequence)
        {
            long[]? axes = Axes(node, index, inputs.Length > 1 ? inputs[1] : null);
            // Squeezing the direction axis of a one-way layer's Y [T, 1, N, H] (or of [T, N, 1, H]) gives [T, N, H].
            long expected = sequence.Form == SequenceForm.Y ? 1 : 2;
            if (_directions == 1 && axes is [var axis] && (axis == expected || axis == expected - 4))
                return sequence with { Form = SequenceForm.Flat };
            throw Fail(node, index, "axes", $"squeezes axes [{(axes is null ? "all of size 1" : string.Join(", ", axes))}] of layer {sequence.Layer}'s Y; " +
                $"Recurrent reads the squeeze of the direction axis ({expected}) of a one-way layer");
        }
        throw Fail(node, index, null, $"squeezes {Describe(data)}; Recurrent reads Squeeze of shape integers, zeros and a one-way layer's Y");
    }

    /// <summary>Squeeze's axes: the attribute (before opset 13) or the second input (from 13); null when absent.</summary>
    private long[]? Axes(NodeProto node, int index, Meaning? input)
    {
        if (node.Attribute.FirstOrDefault(a => a.Name == "axes") is { } attribute)
            return [.. Typed(node, index, attribute, AttributeProto.Types.AttributeType.Ints).Ints];
        if (input is null) return null;
        return KnownInts(node, index, input, "axes");
    }

    private Meaning Concat(NodeProto node, int index, Meaning?[] inputs)
    {
        OnlyAttributes(node, index, "axis");
        if (inputs.Length == 0 || inputs.Any(m => m is null)) throw Fail(node, index, null, "a Concat needs one input or more");
        long axis = node.Attribute.FirstOrDefault(a => a.Name == "axis") is { } a ? Int(node, index, a) : throw Fail(node, index, "axis", "is missing");
        if (inputs.All(IsInts)) return new SomeInts();
        if (inputs.All(IsZeros)) return new Zeros();
        if (inputs.All(m => m is LayerStates))
        {
            var states = inputs.Cast<LayerStates>().ToArray();
            if (axis is not (0 or -3))
                throw Fail(node, index, "axis", $"is {axis}; the layers' final states [D, N, H] stack along axis 0 into [L·D, N, H]");
            for (int i = 1; i < states.Length; i++)
                if (states[i].Cell != states[0].Cell || states[i].First != states[i - 1].End)
                    throw Fail(node, index, null, "concatenates final states out of layer order, or hidden with cell states; hn (cn) holds layer 0's, then layer 1's, …");
            return new LayerStates(states[0].Cell, states[0].First, states[^1].End);
        }
        throw Fail(node, index, null, $"concatenates {string.Join(", ", inputs.Select(Describe))}; Recurrent reads Concat of shape integers, of zeros and of the layers' final states");
    }

    private Meaning ConstantOfShape(NodeProto node, int index, Meaning?[] inputs)
    {
        var shape = Require(node, index, inputs, 1, "value")[0];
        if (!IsInts(shape)) throw Fail(node, index, null, $"its shape is {Describe(shape)}; expected integers");
        if (node.Attribute.FirstOrDefault(a => a.Name == "value") is { } a)
        {
            var t = Typed(node, index, a, AttributeProto.Types.AttributeType.Tensor).T ?? throw Fail(node, index, a.Name, "holds no tensor");
            // The default value is float 0; a zero of another type would be a tensor of another type.
            if (t.DataType != (int)TensorProto.Types.DataType.Float || OnnxTensors.Floats(t, p => Fail(node, index, a.Name, p)) is not [0f])
                throw Fail(node, index, a.Name, "is not the float zero; Recurrent reads ConstantOfShape only as the zero initial state");
        }
        return new Zeros();
    }

    private Meaning Expand(NodeProto node, int index, Meaning?[] inputs)
    {
        var (data, shape) = (Require(node, index, inputs, 2)[0], inputs[1]);
        if (IsZeros(data) && IsInts(shape)) return new Zeros();
        throw Fail(node, index, null, $"expands {Describe(data)}; Recurrent reads Expand of zeros only");
    }

    private Meaning Slice(NodeProto node, int index, Meaning?[] inputs)
    {
        var data = Require(node, index, inputs, 1, "starts", "ends", "axes")[0];
        if (IsZeros(data)) return new Zeros();
        if (IsInts(data)) return new SomeInts();
        var (name, from, to) = data switch
        {
            InputRows rows => (rows.Name, rows.Start, rows.End),
            GraphInput g => (g.Name, 0L, long.MaxValue),
            _ => throw Fail(node, index, null, $"slices {Describe(data)}; Recurrent reads Slice of a state input, of shape integers and of zeros"),
        };
        if (ElementType(name) != (int)TensorProto.Types.DataType.Float)
            throw Fail(node, index, null, $"slices graph input '{name}', which is {OnnxTensors.TypeName(ElementType(name))}; a state input is FLOAT");
        // Slice-1 has starts, ends, axes attributes; Slice-10 on, inputs (data, starts, ends, axes, steps).
        bool attributes = node.Attribute.Count > 0;
        long[] starts = attributes ? AttributeInts(node, index, "starts") : KnownInts(node, index, inputs.ElementAtOrDefault(1), "starts");
        long[] ends = attributes ? AttributeInts(node, index, "ends") : KnownInts(node, index, inputs.ElementAtOrDefault(2), "ends");
        long[]? axes = attributes ? node.Attribute.Any(a => a.Name == "axes") ? AttributeInts(node, index, "axes") : null
            : inputs.ElementAtOrDefault(3) is { } a ? KnownInts(node, index, a, "axes") : null;
        long[]? steps = !attributes && inputs.ElementAtOrDefault(4) is { } s ? KnownInts(node, index, s, "steps") : null;
        if (starts is not [var start] || ends is not [var end] || axes is not (null or [0] or [-3]) || steps is not (null or [1]) || start < 0 || end < start)
            throw Fail(node, index, null, $"slices [{string.Join(", ", starts)}] to [{string.Join(", ", ends)}] on axes [{string.Join(", ", axes ?? [0])}] " +
                $"with steps [{string.Join(", ", steps ?? [1])}]; Recurrent reads a state input's slice of rows along axis 0 with step 1");
        // An end past the rows (torch writes INT64_MAX for "to the end") stays past them.
        return new InputRows(name, from + start, end >= long.MaxValue - from ? to : Math.Min(to, from + end));
    }

    private Meaning Transpose(NodeProto node, int index, Meaning?[] inputs)
    {
        var data = Require(node, index, inputs, 1, "perm")[0];
        if (IsZeros(data)) return new Zeros();
        long[] perm = node.Attribute.Any(a => a.Name == "perm") ? AttributeInts(node, index, "perm") : [];
        if (data is LayerSequence { Form: SequenceForm.Y } sequence && perm is [0, 2, 1, 3])
            return sequence with { Form = SequenceForm.Transposed };
        // Batch first (PyTorch's batch_first=True): the graph's input [N, T, I] and output [N, T, ·] are transposed around the stack.
        if (perm is [1, 0, 2])
        {
            switch (data)
            {
                case GraphInput g when ElementType(g.Name) == (int)TensorProto.Types.DataType.Float: return new TransposedInput(g.Name);
                case StackInput { Transposed: false }: return new StackInput(Transposed: true);
                case LayerSequence { Form: SequenceForm.Flat } flat: return flat with { Form = SequenceForm.FlatBatchFirst };
            }
        }
        throw Fail(node, index, "perm", $"transposes {Describe(data)} by [{string.Join(", ", perm)}]; Recurrent reads a layer's Y [T, D, N, H] transposed by [0, 2, 1, 3], " +
            "and a batch-first input or output transposed by [1, 0, 2]");
    }

    private Meaning Reshape(NodeProto node, int index, Meaning?[] inputs)
    {
        var (data, shape) = (Require(node, index, inputs, 2, "allowzero")[0], inputs[1]);
        if (IsZeros(data)) return new Zeros();
        if (data is LayerSequence { Form: SequenceForm.Transposed } sequence)
        {
            if (node.Attribute.FirstOrDefault(a => a.Name == "allowzero") is { } a && Int(node, index, a) != 0)
                throw Fail(node, index, a.Name, "is 1: the 0s of the target shape would be sizes, not copies of the input's");
            var target = KnownInts(node, index, shape, "shape");
            // [T, N, D, H] → [T, N, D·H]: 0 copies T and N, and the last is −1 or D·H.
            if (target is [0, 0, var last] && (last == -1 || last == (long)_directions * _hidden))
                return sequence with { Form = SequenceForm.Flat };
            throw Fail(node, index, null, $"reshapes layer {sequence.Layer}'s transposed Y to [{string.Join(", ", target)}]; Recurrent reads [0, 0, −1] or [0, 0, {_directions * _hidden}]");
        }
        throw Fail(node, index, null, $"reshapes {Describe(data)}; Recurrent reads the reshape of a layer's transposed Y [T, N, D, H] into [T, N, D·H]");
    }

    private Meaning MatMul(NodeProto node, int index, Meaning?[] inputs)
    {
        var (a, b) = (Require(node, index, inputs, 2)[0], inputs[1]);
        if (a is GraphInput values && b is Known projection && ElementType(values.Name) == (int)TensorProto.Types.DataType.Float)
            return Embedding(node, index, projection, values.Name, tokens: false);
        if (a is LayerSequence { Form: SequenceForm.Flat or SequenceForm.FlatBatchFirst } sequence && sequence.Layer == _layers - 1 && b is Known weight)
        {
            if (_outputWeight is not null) throw Fail(node, index, null, "a second output layer; a sequence model has one");
            var dims = OnnxTensors.Dims(weight.Tensor, p => Fail(node, index, null, $"{weight.What}: {p}"));
            if (dims is not [var rows, var columns] || rows != _directions * _hidden || columns < 1)
                throw Fail(node, index, null, $"{weight.What} has shape {FloatTensor.FormatShape(dims)}; the output layer's V is [H, O] = [{_directions * _hidden}, O ≥ 1]");
            _outputWeight = FiniteFloats(node, index, weight);
            _outputSize = columns;
            return new Projected();
        }
        throw Fail(node, index, null, $"multiplies {Describe(a)} by {Describe(b)}; Recurrent reads a real-valued model's input projection (a graph input times an initializer) " +
            "and the output layer (the stack's output times an initializer)");
    }

    private Meaning Add(NodeProto node, int index, Meaning?[] inputs)
    {
        var (a, b) = (Require(node, index, inputs, 2)[0], inputs[1]);
        var (projected, bias) = a is Projected ? (a, b) : (b, a);
        if (projected is Projected && bias is Known c)
        {
            if (_outputBias is not null) throw Fail(node, index, null, "a second output bias");
            var dims = OnnxTensors.Dims(c.Tensor, p => Fail(node, index, null, $"{c.What}: {p}"));
            if (dims is not [var length] || length != _outputSize)
                throw Fail(node, index, null, $"{c.What} has shape {FloatTensor.FormatShape(dims)}; the output bias is [O] = [{_outputSize}]");
            _outputBias = FiniteFloats(node, index, c);
            return new ModelOutputs();
        }
        throw Fail(node, index, null, $"adds {Describe(a)} and {Describe(b)}; Recurrent reads the output layer's bias (the projected output plus an initializer [O])");
    }

    /// <summary>A recurrent node, layer k = the number met so far: its X, weights, lengths and initial states.</summary>
    private Meaning[] Recurrent(NodeProto node, int index, Meaning?[] inputs)
    {
        int layer = _recognised.Count, gates = _cell.GateCount(), d = _directions, h = _hidden;
        string[] slots = node.OpType == "LSTM" ? ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"] : ["X", "W", "R", "B", "sequence_lens", "initial_h"];
        if (inputs.Length > slots.Length) throw Fail(node, index, null, $"it has {inputs.Length} inputs; {node.OpType} takes at most {slots.Length}");
        Meaning? Slot(int i) => i < inputs.Length ? inputs[i] : null;

        // X: the stack's input for the first layer, the layer below's output [T, N, D·H] above it.
        var x = Slot(0) ?? throw Fail(node, index, null, "input X is missing");
        if (layer == 0)
        {
            if (x is GraphInput or TransposedInput)
            {
                var g = x as GraphInput ?? new GraphInput(((TransposedInput)x).Name);
                if (ElementType(g.Name) != (int)TensorProto.Types.DataType.Float)
                    throw Fail(node, index, null, $"input X, graph input '{g.Name}', is {OnnxTensors.TypeName(ElementType(g.Name))}; expected FLOAT");
                if (_sequenceInput is not null && _sequenceInput != g.Name) throw Fail(node, index, null, $"input X is graph input '{g.Name}'; the stack's input is '{_sequenceInput}'");
                _sequenceInput = g.Name;
            }
            else if (x is not StackInput)
                throw Fail(node, index, null, $"input X is {Describe(x)}; the first layer reads a graph input [T, N, I] (or an embedding of one)");
        }
        else if (x is not LayerSequence { Form: SequenceForm.Flat } below || below.Layer != layer - 1)
            throw Fail(node, index, null, $"input X is {Describe(x)}; layer {layer} reads layer {layer - 1}'s Y as [T, N, D·H] (Transpose [0, 2, 1, 3] and Reshape [0, 0, −1], or Squeeze of axis 1 for one direction)");

        var w = Weight(node, index, Slot(1), "W", [d, gates * h, -1]);
        int input = w.Dims[2];
        if (input < 1) throw Fail(node, index, null, $"input W has shape {FloatTensor.FormatShape(w.Dims)}; expected I ≥ 1 columns");
        if (layer > 0 && input != d * h)
            throw Fail(node, index, null, $"input W has shape {FloatTensor.FormatShape(w.Dims)}; layer {layer} reads the layer below's D·H = {d * h} features");
        var r = Weight(node, index, Slot(2), "R", [d, gates * h, h]);
        float[]? b = Slot(3) is null ? null : Weight(node, index, Slot(3), "B", [d, 2 * gates * h]).Values;

        _lengths.Add((node, Slot(4) switch
        {
            null => null,
            GraphInput g when ElementType(g.Name) is (int)TensorProto.Types.DataType.Int32 or (int)TensorProto.Types.DataType.Int64 => g.Name,
            var other => throw Fail(node, index, null, $"input sequence_lens is {Describe(other)}; Recurrent reads a graph input [N] of lengths"),
        }));
        _initialHidden.Add((node, InitialState(node, index, Slot(5), "initial_h")));
        if (node.OpType == "LSTM")
        {
            _initialCell.Add((node, InitialState(node, index, Slot(6), "initial_c")));
            if (Slot(7) is { } p && !IsZeros(p))
                throw Fail(node, index, null, "input P (peephole weights) is given; Recurrent's LSTM has no peepholes yet");
        }
        _recognised.Add(new RecognisedLayer(w.Values, r.Values, b));
        return node.OpType == "LSTM"
            ? [new LayerSequence(layer, SequenceForm.Y), new LayerStates(false, layer, layer + 1), new LayerStates(true, layer, layer + 1)]
            : [new LayerSequence(layer, SequenceForm.Y), new LayerStates(false, layer, layer + 1)];
    }

    /// <summary>A weight input: an initializer of float32 values of the expected shape (−1: any size).</summary>
    private (int[] Dims, float[] Values) Weight(NodeProto node, int index, Meaning? meaning, string slot, int[] expected)
    {
        if (meaning is not Known known) throw Fail(node, index, null, $"input {slot} is {Describe(meaning)}; Recurrent reads weights from initializers and Constant nodes");
        var dims = OnnxTensors.Dims(known.Tensor, p => Fail(node, index, null, $"input {slot} ({known.What}): {p}"));
        bool fits = dims.Length == expected.Length && dims.Zip(expected).All(p => p.Second < 0 || p.First == p.Second);
        if (!fits)
        {
            string gates = expected.Length > 1 && dims.Length == expected.Length && dims[1] % _hidden == 0 && dims[1] != expected[1]
                ? $" ({dims[1] / _hidden}·hidden_size rows: a wrong gate count for {node.OpType}, which has {_cell.GateCount()})" : "";
            throw Fail(node, index, null, $"input {slot} ({known.What}) has shape {FloatTensor.FormatShape(dims)}; expected " +
                $"[{string.Join(", ", expected.Select(e => e < 0 ? "I" : e.ToString(System.Globalization.CultureInfo.InvariantCulture)))}] for hidden_size {_hidden} and {_directions} direction(s){gates}");
        }
        return (dims, FiniteFloats(node, index, known, $"input {slot} "));
    }

    private InputRows? InitialState(NodeProto node, int index, Meaning? meaning, string slot) => meaning switch
    {
        null => null,
        _ when IsZeros(meaning) => null,
        GraphInput g => new InputRows(g.Name, 0, long.MaxValue),
        InputRows rows => rows,
        _ => throw Fail(node, index, null, $"input {slot} is {Describe(meaning)}; Recurrent reads zeros or rows of a state input [L·D, N, H]"),
    };

    // ---------------------------------------------------------------------------------------------------------------
    // After the nodes: the states, lengths and outputs must be the stack's, whole.
    // ---------------------------------------------------------------------------------------------------------------

    private RecognisedGraph Finish()
    {
        int states = _layers * _directions;
        CheckStateInput(_initialHidden, "initial_h", states);
        CheckStateInput(_initialCell, "initial_c", states);
        var lengthInputs = _lengths.Select(l => l.Input).Distinct().ToList();
        if (lengthInputs.Count > 1)
        {
            var odd = _lengths.First(l => l.Input != _lengths[0].Input);
            throw Fail(odd.Node, _graph.Node.IndexOf(odd.Node), null, $"input sequence_lens is {(odd.Input is null ? "absent" : $"'{odd.Input}'")}, unlike layer 0's; every layer runs with the same lengths");
        }
        // ONNX's sequence_lens is int32; a graph may take int64 lengths and Cast them.
        if (lengthInputs[0] is { } lengths)
            RequireDeclared(lengths, "sequence lengths", null, [null]);

        bool anyOutput = false, modelOutput = false;
        foreach (var output in _graph.Output)
        {
            var meaning = _values.GetValueOrDefault(output.Name)
                ?? throw Graph($"graph output '{output.Name}' is not computed by any node");
            bool ok = meaning switch
            {
                LayerSequence s => s.Layer == _layers - 1,
                LayerStates s => s.First == 0 && s.End == _layers,
                Projected or ModelOutputs => true,
                _ => false,
            };
            if (!ok)
                throw Graph($"graph output '{output.Name}' is {Describe(meaning)}; Recurrent reads graphs whose outputs are the stack's (the last layer's Y, hn, cn) or the model's outputs");
            anyOutput = true;
            modelOutput |= meaning is Projected or ModelOutputs;
        }
        if (!anyOutput) throw Graph("it has no outputs");
        // An output layer whose result no output shows computes nothing the graph gives; it is not the model's.
        if (_outputWeight is not null && !modelOutput)
            throw Graph("its output layer (a MatMul after the stack) feeds no graph output");

        int input = _recognised[0].W.Length / (_directions * _cell.GateCount() * _hidden);
        if (_embedding is null)
            RequireDeclared(_sequenceInput!, "the stack's input x", (int)TensorProto.Types.DataType.Float, [null, null, input]);
        else
        {
            if (_embeddingColumns != input)
                throw Graph($"the embedding has {_embeddingColumns} columns; the first layer's W reads I = {input}");
            if (_embedding.Tokens) RequireDeclared(_sequenceInput!, "the token ids", null, [null, null]);
            else RequireDeclared(_sequenceInput!, "the fed-back values", (int)TensorProto.Types.DataType.Float, [null, null, _embedding.Rows]);
        }

        RnnConfig config;
        try { config = new RnnConfig(_cell, input, _hidden, _layers, _directions == 2); }
        catch (ArgumentException e) { throw Graph($"a stack of {_layers} {_cell} layer(s) with I = {input}, H = {_hidden} is beyond Recurrent's sizes ({e.Message})"); }
        return new RecognisedGraph(config, _recognised, _embedding, _outputWeight, _outputBias, _outputSize);
    }

    /// <summary>Either no layer reads a state input, or each layer k reads rows [k·D, (k+1)·D) of one graph input [L·D, N, H].</summary>
    private void CheckStateInput(List<(NodeProto Node, InputRows? Rows)> uses, string slot, int states)
    {
        if (uses.All(u => u.Rows is null)) return;
        string name = uses.First(u => u.Rows is not null).Rows!.Name;
        for (int k = 0; k < uses.Count; k++)
        {
            var (node, rows) = uses[k];
            long start = k * _directions, end = start + _directions;
            if (rows is null || rows.Name != name || rows.Start != start || Math.Min(rows.End, states) != end)
                throw Fail(node, _graph.Node.IndexOf(node), null, $"input {slot} is {(rows is null ? "zeros" : $"rows [{rows.Start}, {(rows.End == long.MaxValue ? "end" : rows.End)}) of '{rows.Name}'")}; " +
                    $"Recurrent reads either zeros for every layer or, for layer {k}, rows [{start}, {end}) of one state input [L·D, N, H] = [{states}, N, {_hidden}] ('{name}')");
        }
        RequireDeclared(name, slot == "initial_c" ? "the initial cell state" : "the initial hidden state", (int)TensorProto.Types.DataType.Float, [states, null, _hidden]);
    }

    /// <summary>Checks what a graph input declares (element type, rank, fixed sizes) against what the stack reads there.</summary>
    private void RequireDeclared(string name, string role, int? elementType, int?[] dims)
    {
        if (!_inputs.TryGetValue(name, out var info)) return;
        var tensor = info.Type?.TensorType;
        if (tensor is null) throw Graph($"graph input '{name}' ({role}) is not declared as a tensor");
        if (elementType is int type && tensor.ElemType != type)
            throw Graph($"graph input '{name}' ({role}) is {OnnxTensors.TypeName(tensor.ElemType)}; expected {OnnxTensors.TypeName(type)}");
        if (tensor.Shape is null) return;
        if (tensor.Shape.Dim.Count != dims.Length)
            throw Graph($"graph input '{name}' ({role}) has rank {tensor.Shape.Dim.Count}; expected {dims.Length}");
        for (int i = 0; i < dims.Length; i++)
        {
            var dim = tensor.Shape.Dim[i];
            if (dims[i] is int size && dim.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && dim.DimValue != size)
                throw Graph($"graph input '{name}' ({role}) has size {dim.DimValue} in dimension {i}; the stack reads {size} there");
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------------------------

    private int ElementType(string input) => _inputs.TryGetValue(input, out var info) ? info.Type?.TensorType?.ElemType ?? 0 : 0;

    private static bool IsInts(Meaning? m) => m is SomeInts || m is Known k && OnnxTensors.IsInteger(k.Tensor);

    private static bool IsZeros(Meaning? m) =>
        m is Zeros || m is Known k && k.Tensor.DataType == (int)TensorProto.Types.DataType.Float && TryFloats(k.Tensor) is { } v && v.All(x => x == 0);

    private static float[]? TryFloats(TensorProto tensor)
    {
        try { return OnnxTensors.Floats(tensor, p => new InvalidDataException(p)); }
        catch (InvalidDataException) { return null; }
    }

    private float[] FiniteFloats(NodeProto node, int index, Known known, string slot = "")
    {
        var values = OnnxTensors.Floats(known.Tensor, p => Fail(node, index, null, $"{slot}({known.What}): {p}"));
        int bad = FloatTensor.IndexOfNonFinite(values);
        if (bad >= 0) throw Fail(node, index, null, $"{slot}({known.What}): element {bad} is {values[bad]}; expected finite values");
        return values;
    }

    private long[] KnownInts(NodeProto node, int index, Meaning? meaning, string slot)
    {
        if (meaning is not Known known || !OnnxTensors.IsInteger(known.Tensor))
            throw Fail(node, index, null, $"input {slot} is {Describe(meaning)}; expected constant integers");
        return OnnxTensors.Integers(known.Tensor, p => Fail(node, index, null, $"input {slot} ({known.What}): {p}"));
    }

    private long[] AttributeInts(NodeProto node, int index, string name)
    {
        var a = node.Attribute.FirstOrDefault(x => x.Name == name) ?? throw Fail(node, index, name, "is missing");
        return [.. Typed(node, index, a, AttributeProto.Types.AttributeType.Ints).Ints];
    }

    private long Int(NodeProto node, int index, AttributeProto a) => Typed(node, index, a, AttributeProto.Types.AttributeType.Int).I;

    private string Str(NodeProto node, int index, AttributeProto a) => Typed(node, index, a, AttributeProto.Types.AttributeType.String).S.ToStringUtf8();

    private void RequireType(NodeProto node, int index, AttributeProto a, AttributeProto.Types.AttributeType type) => Typed(node, index, a, type);

    private AttributeProto Typed(NodeProto node, int index, AttributeProto a, AttributeProto.Types.AttributeType type)
    {
        if (a.RefAttrName != "") throw Fail(node, index, a.Name, "refers to a function's attribute; Recurrent reads main graphs");
        if (a.Type != type) throw Fail(node, index, a.Name, $"has type {a.Type.ToString().ToUpperInvariant()}; expected {type.ToString().ToUpperInvariant()}");
        return a;
    }

    private static string Describe(Meaning? m) => m switch
    {
        null => "absent",
        Known k => k.What,
        SomeInts => "shape integers",
        Zeros => "zeros",
        GraphInput g => $"graph input '{g.Name}'",
        InputRows r => $"rows of graph input '{r.Name}'",
        StackInput => "the embedded input",
        TransposedInput t => $"graph input '{t.Name}' transposed",
        LayerSequence s => $"layer {s.Layer}'s Y ({s.Form switch { SequenceForm.Y => "[T, D, N, H]", SequenceForm.Transposed => "[T, N, D, H]", SequenceForm.Flat => "[T, N, D·H]", _ => "[N, T, D·H]" }})",
        LayerStates s => $"the final {(s.Cell ? "cell" : "hidden")} states of layers {s.First} to {s.End - 1}",
        Projected => "the output layer's product",
        ModelOutputs => "the model's outputs",
        _ => m.GetType().Name,
    };

    private static string NodeName(NodeProto node, int index) => node.Name != "" ? node.Name : $"#{index}";

    private InvalidDataException Fail(NodeProto node, int index, string? attribute, string problem)
    {
        var message = new StringBuilder($"{_source}: node '{NodeName(node, index)}' ({node.OpType})");
        if (attribute is not null) message.Append($": attribute '{attribute}'");
        message.Append($": {problem}.");
        return new InvalidDataException(message.ToString());
    }

    private InvalidDataException Graph(string problem) => new($"{_source}: graph '{_graph.Name}': {problem}.");
}
