using System.Reflection;
using Google.Protobuf;
using Recurrent.Onnx.Protobuf;
using Recurrent.Sequence;

namespace Recurrent.Onnx;

/// <summary>What an exported graph takes besides its sequence input. Thread-safety: immutable, so safe.</summary>
/// <remarks>Lifetime: nothing to free.</remarks>
public sealed record OnnxExportOptions
{
    /// <summary>
    /// Give the graph inputs <see cref="OnnxNames.InitialHidden"/> (and, for LSTM, <see cref="OnnxNames.InitialCell"/>)
    /// [L·D, N, H], as <see cref="RecurrentLayer.Forward"/>'s h0 and c0, so that a runtime can carry the state from one
    /// call to the next (generation a step at a time). Without them the initial states are zeros and ONNX Runtime needs
    /// only the sequence input. Default false.
    /// </summary>
    public bool InitialStates { get; init; }

    /// <summary>
    /// Give the graph the input <see cref="OnnxNames.SequenceLengths"/> [N] (int32), fed to every recurrent node's
    /// <c>sequence_lens</c>: as <see cref="RecurrentLayer.Forward"/>'s <c>lengths</c>, sequence n runs over its first
    /// lengths[n] steps, y is zero past its end, hn (and cn) hold its state at its own end, and the reverse direction
    /// starts at its own last step (ONNX Runtime computes exactly this; the tests check it). Default false.
    /// </summary>
    public bool SequenceLengths { get; init; }
}

/// <summary>
/// Graph input and output names of the ONNX files <see cref="OnnxExport"/> writes (shapes with the letters of
/// <see cref="RnnConfig"/>: T steps and N batch are symbolic dimensions, the others fixed).
/// </summary>
/// <remarks>Thread-safety: constants only, so safe. Lifetime: nothing to free.</remarks>
public static class OnnxNames
{
    /// <summary>A layer's input x [T, N, I], float.</summary>
    public const string Input = "x";
    /// <summary>Per-sequence lengths [N], int32 (with <see cref="OnnxExportOptions.SequenceLengths"/>).</summary>
    public const string SequenceLengths = "sequence_lens";
    /// <summary>h0 [L·D, N, H], float (with <see cref="OnnxExportOptions.InitialStates"/>).</summary>
    public const string InitialHidden = "h0";
    /// <summary>c0 [L·D, N, H], float, LSTM only (with <see cref="OnnxExportOptions.InitialStates"/>).</summary>
    public const string InitialCell = "c0";
    /// <summary>A layer's output y [T, N, D·H], float: the last layer's hidden state at every step, forward direction first.</summary>
    public const string Output = "y";
    /// <summary>hN [L·D, N, H], float.</summary>
    public const string FinalHidden = "hn";
    /// <summary>cN [L·D, N, H], float, LSTM only.</summary>
    public const string FinalCell = "cn";
    /// <summary>A token model's fed-back tokens [T, N], int64: x_t = E[tokens[t]]; −1 selects the zero row (the start value of a model without a start token).</summary>
    public const string Tokens = "tokens";
    /// <summary>A real-valued model's fed-back values [T, N, O], float: x_t = values[t]·E.</summary>
    public const string Values = "values";
    /// <summary>A sequence model's outputs o [T, N, O], float: logits or values.</summary>
    public const string Outputs = "outputs";
}

/// <summary>
/// Writes recurrent stacks and language models as ONNX files (opset <see cref="Opset"/>) that ONNX Runtime runs and
/// <see cref="OnnxImport"/> reads back with the same parameters, bit for bit.
/// </summary>
/// <remarks>
/// <para>The graph of a stack (ONNX operator specification, docs/Operators.md: LSTM, GRU, RNN, Transpose, Reshape,
/// Slice, Concat): one <c>LSTM</c>, <c>GRU</c> or <c>RNN</c> node per layer, <c>direction</c> "forward" or
/// "bidirectional", layout 0; between layers a <c>Transpose</c> (perm 0, 2, 1, 3) and a <c>Reshape</c> (0, 0, −1) turn
/// the node's Y [T, D, N, H] into the next layer's X [T, N, D·H], the same two nodes make the graph's y, and the layers'
/// Y_h (Y_c) are concatenated into hn (cn). With initial states, layer k's initial_h is rows [k·D, (k+1)·D) of h0
/// (<c>Slice</c>).</para>
/// <para>Parameters (ONNX's W [D, G·H, I_k], R [D, G·H, H], B [D, 2·G·H] = W biases then R biases) are PyTorch's
/// weight_ih, weight_hh, bias_ih and bias_hh with the gate blocks reordered, in this one place (for each ONNX block, the
/// index of Recurrent's block): LSTM ONNX i, o, f, c ← Recurrent i, f, g, o (map 0, 3, 1, 2); GRU ONNX z, r, h ← Recurrent
/// r, z, n (map 1, 0, 2); RNN one block. GRU reset-after is <c>linear_before_reset</c> = 1 (r multiplies R_h·h + Rb_h),
/// reset-before is 0 (r multiplies h before R_h, and Rb_h is added outside); RNN's <c>activations</c> are Tanh or Relu.
/// The LSTM nodes have no peepholes (no P input), input_forget 0 and no clip.</para>
/// <para>Opset 14: the first opset whose LSTM, GRU and RNN are today's (version 14 added <c>layout</c>; version 22 only
/// adds bfloat16 types), so the files run on every runtime that has these operators as they are now — ONNX Runtime
/// since 1.8 — and it is what <c>torch.onnx.export</c> of PyTorch 1.13 writes by default.</para>
/// <para>Thread-safety: the export reads the parameters inside a pass, as a forward pass does, so a concurrent
/// <see cref="RecurrentLayer.Load"/> or SGD step is refused (<see cref="InvalidOperationException"/>) rather than giving a
/// file of two weight sets; concurrent exports and forward passes are fine.</para>
/// <para>Lifetime: holds nothing; the model it reads stays the caller's.</para>
/// </remarks>
public static class OnnxExport
{
    /// <summary>The default-domain opset the files import.</summary>
    public const int Opset = 14;

    /// <summary>The IR version written: 7, the version that goes with opset 14 (ONNX 1.9).</summary>
    public const int IrVersion = 7;

    /// <summary>Writes <paramref name="layer"/> as an ONNX file, atomically (a temporary file beside it, then a rename).</summary>
    /// <param name="layer">The stack; its parameters are written as they are now.</param>
    /// <param name="path">The target; replaced if it exists. Through a symbolic link the link's final target is replaced.</param>
    /// <param name="options">Extra graph inputs; none when null.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or ∞ (<see cref="OnnxImport"/> refuses such files), or another thread is replacing the parameters.</exception>
    /// <exception cref="IOException">The file cannot be written (its folder is missing, the target is a folder, the disk is full); an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    public static void Save(RecurrentLayer layer, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var model = LayerModel(layer.Parameters, options ?? new());
        AtomicFile.Write(path, "an ONNX file", model.WriteTo);
    }

    /// <summary>Writes <paramref name="layer"/> as an ONNX model into <paramref name="stream"/> (at its position; not closed).</summary>
    /// <param name="layer">The stack; its parameters are written as they are now.</param>
    /// <param name="stream">Where the model's bytes go.</param>
    /// <param name="options">Extra graph inputs; none when null.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be written.</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or ∞, or another thread is replacing the parameters.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static void Save(RecurrentLayer layer, Stream stream, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layer);
        RequireWritable(stream);
        LayerModel(layer.Parameters, options ?? new()).WriteTo(stream);
    }

    /// <summary>
    /// Writes a sequence model (a language model) as an ONNX file, atomically: the fed-back input (tokens through a
    /// <c>Gather</c> of the embedding, or values through a <c>MatMul</c> with it), the stack as for a layer, and the output
    /// layer (<c>MatMul</c> by V [H, O], <c>Add</c> of c [O]). The graph's input is what the model feeds back:
    /// <see cref="OnnxNames.Tokens"/> [T, N] with x_t = E[tokens[t]], or <see cref="OnnxNames.Values"/> [T, N, O] with
    /// x_t = values[t]·E, so <see cref="RecurrentSequenceModel.TeacherForcedOutputs"/> of targets y is the graph run on
    /// (start, y_0, …, y_{T−2}): at t = 0 the start token, else −1 (the embedding gets a zero row at its end, which
    /// Gather's negative index −1 selects) or zero values. The start token, which no ONNX operator expresses, is kept in
    /// the model's metadata (<c>recurrent.start_token</c>) for <see cref="OnnxImport.LoadSequenceModel(string, IRnnBackend?)"/>.
    /// </summary>
    /// <param name="model">The model; its parameters (the stack's too) are written as they are now.</param>
    /// <param name="path">The target; replaced if it exists. Through a symbolic link the link's final target is replaced.</param>
    /// <param name="options">Extra graph inputs (initial states, lengths); none when null.</param>
    /// <remarks>With <see cref="OnnxExportOptions.SequenceLengths"/>, the outputs past a sequence's end are the output bias c
    /// (the stack's y is zero there), where <see cref="RecurrentSequenceModel.TeacherForcedOutputs"/> gives zeros; neither is
    /// read by a loss.</remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or ∞, or another thread is replacing the model's parameters.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed (and gave its stack back).</exception>
    /// <exception cref="IOException">The file cannot be written; an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    public static void Save(RecurrentSequenceModel model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var proto = SequenceModel(model, options ?? new());
        AtomicFile.Write(path, "an ONNX file", proto.WriteTo);
    }

    /// <summary>Writes a sequence model as an ONNX model into <paramref name="stream"/> (at its position; not closed); see <see cref="Save(RecurrentSequenceModel, string, OnnxExportOptions?)"/>.</summary>
    /// <param name="model">The model; its parameters (the stack's too) are written as they are now.</param>
    /// <param name="stream">Where the model's bytes go.</param>
    /// <param name="options">Extra graph inputs (initial states, lengths); none when null.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be written.</exception>
    /// <exception cref="InvalidOperationException">A parameter holds NaN or ∞, or another thread is replacing the model's parameters.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed (and gave its stack back).</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static void Save(RecurrentSequenceModel model, Stream stream, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        RequireWritable(stream);
        SequenceModel(model, options ?? new()).WriteTo(stream);
    }

    /// <summary>The serialized model of a stack's parameters (the benchmark's ONNX Runtime peer runs it).</summary>
    internal static byte[] ToBytes(RnnParameters parameters, OnnxExportOptions? options = null) =>
        LayerModel(parameters, options ?? new()).ToByteArray();

    private static void RequireWritable(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("stream: cannot be written.", nameof(stream));
    }

    private static ModelProto LayerModel(RnnParameters parameters, OnnxExportOptions options)
    {
        var config = parameters.Config;
        using var pass = parameters.EnterPass();
        var graph = new OnnxGraphWriter($"recurrent_{config.Cell}");
        graph.Input(OnnxNames.Input, TensorProto.Types.DataType.Float, "T", "N", config.InputSize);
        var stack = Stack(graph, parameters, OnnxNames.Input, options, OnnxNames.Output);
        graph.Output(OnnxNames.Output, TensorProto.Types.DataType.Float, "T", "N", config.OutputSize);
        StateOutputs(graph, config, stack);
        return Model(graph, []);
    }

    private static ModelProto SequenceModel(RecurrentSequenceModel model, OnnxExportOptions options)
    {
        var config = model.Recurrent.Config;
        int outputs = model.OutputSize, input = config.InputSize, hidden = config.HiddenSize;
        bool tokens = model.Loss == SequenceLoss.SoftmaxCrossEntropy;
        var graph = new OnnxGraphWriter("recurrent_sequence_model");
        // Read inside a pass of the model's parameters (which holds its stack's too), so an SGD step or Load is refused
        // meanwhile rather than giving a file of two weight sets.
        using var pass = model.Parameters.EnterPass();
        var embedding = OnnxParameters.Of(model, OnnxParameters.Embedding);
        RequireFinite(OnnxParameters.Embedding, embedding);
        string x;
        if (tokens)
        {
            // One zero row past the vocabulary: Gather's index −1 counts from the end, so −1 is the zero start value, as in
            // RecurrentLayer.ForwardFromTable.
            var table = new float[(outputs + 1) * input];
            embedding.CopyTo(table);
            graph.Initializer(OnnxParameters.Embedding, table, outputs + 1, input);
            graph.Input(OnnxNames.Tokens, TensorProto.Types.DataType.Int64, "T", "N");
            x = graph.Node("Gather", "embedding_gather", [OnnxParameters.Embedding, OnnxNames.Tokens], OnnxGraphWriter.Int("axis", 0));
        }
        else
        {
            graph.Initializer(OnnxParameters.Embedding, embedding, outputs, input);
            graph.Input(OnnxNames.Values, TensorProto.Types.DataType.Float, "T", "N", outputs);
            x = graph.Node("MatMul", "embedding_matmul", [OnnxNames.Values, OnnxParameters.Embedding]);
        }
        var stack = Stack(graph, model.Recurrent.Parameters, x, options, "recurrent_y");
        var weight = OnnxParameters.Of(model, OnnxParameters.OutputWeight);
        var bias = OnnxParameters.Of(model, OnnxParameters.OutputBias);
        RequireFinite(OnnxParameters.OutputWeight, weight);
        RequireFinite(OnnxParameters.OutputBias, bias);
        graph.Initializer(OnnxParameters.OutputWeight, weight, hidden, outputs);
        graph.Initializer(OnnxParameters.OutputBias, bias, outputs);
        string projected = graph.Node("MatMul", "output_matmul", [stack.Output, OnnxParameters.OutputWeight]);
        graph.Node("Add", "output_add", [projected, OnnxParameters.OutputBias], [OnnxNames.Outputs]);
        graph.Output(OnnxNames.Outputs, TensorProto.Types.DataType.Float, "T", "N", outputs);
        StateOutputs(graph, config, stack);
        var metadata = new Dictionary<string, string>();
        if (model.StartToken is int start) metadata[OnnxImport.StartTokenKey] = start.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Model(graph, metadata);
    }

    private static void StateOutputs(OnnxGraphWriter graph, RnnConfig config, StackOutputs stack)
    {
        graph.Output(stack.Hidden, TensorProto.Types.DataType.Float, config.NumLayers * config.Directions, "N", config.HiddenSize);
        if (stack.Cell is not null)
            graph.Output(stack.Cell, TensorProto.Types.DataType.Float, config.NumLayers * config.Directions, "N", config.HiddenSize);
    }

    private static ModelProto Model(OnnxGraphWriter graph, Dictionary<string, string> metadata)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Recurrent",
            ProducerVersion = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "",
            Graph = graph.Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (key, value) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }

    private sealed record StackOutputs(string Output, string Hidden, string? Cell);

    /// <summary>
    /// Writes the stack's nodes reading x [T, N, I] from <paramref name="input"/>: initializers, one recurrent node per
    /// layer, the reshapes between them, hn (cn); the last layer's y [T, N, D·H] is named <paramref name="outputName"/>.
    /// </summary>
    /// <remarks>The caller holds a pass of the stack (<see cref="ParameterSet.EnterPass"/>), so a concurrent Load or SGD step is
    /// refused rather than giving a file of two weight sets.</remarks>
    private static StackOutputs Stack(OnnxGraphWriter graph, RnnParameters parameters, string input, OnnxExportOptions options, string outputName)
    {
        var config = parameters.Config;
        int layers = config.NumLayers, directions = config.Directions, hidden = config.HiddenSize, gates = config.GateCount;
        bool hasCell = config.Cell.HasCellState();
        string? lengths = null, h0 = null, c0 = null;
        if (options.SequenceLengths)
        {
            lengths = OnnxNames.SequenceLengths;
            graph.Input(lengths, TensorProto.Types.DataType.Int32, "N");
        }
        if (options.InitialStates)
        {
            h0 = OnnxNames.InitialHidden;
            graph.Input(h0, TensorProto.Types.DataType.Float, layers * directions, "N", hidden);
            if (hasCell)
            {
                c0 = OnnxNames.InitialCell;
                graph.Input(c0, TensorProto.Types.DataType.Float, layers * directions, "N", hidden);
            }
        }

        var map = OnnxGateOrder.SourceGateOf(config.Cell);
        var finalHidden = new string[layers];
        var finalCell = new string[layers];
        string x = input;
        for (int layer = 0; layer < layers; layer++)
        {
            int layerInput = config.LayerInputSize(layer), gh = gates * hidden;
            var w = new float[directions * gh * layerInput];
            var r = new float[directions * gh * hidden];
            var b = new float[directions * 2 * gh];
            for (int d = 0; d < directions; d++)
            {
                GateBlocks.Permute(Read(parameters, ParameterSpec.WeightIH, layer, d), hidden * layerInput, map, w.AsSpan(d * gh * layerInput, gh * layerInput));
                GateBlocks.Permute(Read(parameters, ParameterSpec.WeightHH, layer, d), hidden * hidden, map, r.AsSpan(d * gh * hidden, gh * hidden));
                GateBlocks.Permute(Read(parameters, ParameterSpec.BiasIH, layer, d), hidden, map, b.AsSpan(d * 2 * gh, gh));
                GateBlocks.Permute(Read(parameters, ParameterSpec.BiasHH, layer, d), hidden, map, b.AsSpan(d * 2 * gh + gh, gh));
            }
            string W = graph.Initializer($"W_l{layer}", w, directions, gh, layerInput);
            string R = graph.Initializer($"R_l{layer}", r, directions, gh, hidden);
            string B = graph.Initializer($"B_l{layer}", b, directions, 2 * gh);

            string? initialH = h0 is null ? null : LayerRows(graph, h0, layer, config);
            string? initialC = c0 is null ? null : LayerRows(graph, c0, layer, config);
            bool last = layer == layers - 1;
            string op = OnnxGateOrder.OperatorName(config.Cell);
            finalHidden[layer] = last && layers == 1 ? OnnxNames.FinalHidden : $"{op}_l{layer}_Y_h";
            finalCell[layer] = last && layers == 1 ? OnnxNames.FinalCell : $"{op}_l{layer}_Y_c";
            // ONNX marks an absent optional input by an empty name and lets trailing ones be left out.
            var inputs = new List<string> { x, W, R, B, lengths ?? "", initialH ?? "", initialC ?? "" };
            while (inputs[^1] == "") inputs.RemoveAt(inputs.Count - 1);
            string y4 = $"{op}_l{layer}_Y";
            List<string> outputs = hasCell ? [y4, finalHidden[layer], finalCell[layer]] : [y4, finalHidden[layer]];
            graph.Node(op, $"{op}_l{layer}", [.. inputs], [.. outputs], RecurrentAttributes(config));
            // Y [T, D, N, H] → [T, N, D, H] → [T, N, D·H]: the next layer's X, or the stack's y.
            string transposed = graph.Node("Transpose", $"Transpose_l{layer}", [y4], OnnxGraphWriter.Ints("perm", 0, 2, 1, 3));
            string shape = graph.Constant("reshape_sequence", [0, 0, -1]);
            x = graph.Node("Reshape", $"Reshape_l{layer}", [transposed, shape], [last ? outputName : $"{op}_l{layer}_y"])[0];
        }
        string hn = layers == 1 ? finalHidden[0] : graph.Node("Concat", "Concat_hn", finalHidden, [OnnxNames.FinalHidden], OnnxGraphWriter.Int("axis", 0))[0];
        string? cn = !hasCell ? null
            : layers == 1 ? finalCell[0] : graph.Node("Concat", "Concat_cn", finalCell, [OnnxNames.FinalCell], OnnxGraphWriter.Int("axis", 0))[0];
        return new StackOutputs(x, hn, cn);
    }

    /// <summary>Rows [k·D, (k+1)·D) of a state input [L·D, N, H]: layer k's initial state; the input itself for one layer.</summary>
    private static string LayerRows(OnnxGraphWriter graph, string state, int layer, RnnConfig config)
    {
        if (config.NumLayers == 1) return state;
        int d = config.Directions;
        return graph.Node("Slice", $"Slice_{state}_l{layer}",
            [state, graph.Constant($"rows_l{layer}_start", [layer * d]), graph.Constant($"rows_l{layer}_end", [(layer + 1) * d]), graph.Constant("axis_0", [0])]);
    }

    private static AttributeProto[] RecurrentAttributes(RnnConfig config)
    {
        var attributes = new List<AttributeProto>
        {
            OnnxGraphWriter.Int("hidden_size", config.HiddenSize),
            OnnxGraphWriter.String("direction", config.Bidirectional ? "bidirectional" : "forward"),
        };
        switch (config.Cell)
        {
            case CellKind.GruResetAfter: attributes.Add(OnnxGraphWriter.Int("linear_before_reset", 1)); break;
            case CellKind.GruResetBefore: attributes.Add(OnnxGraphWriter.Int("linear_before_reset", 0)); break;
            case CellKind.RnnTanh or CellKind.RnnRelu:
                // One activation per direction; written even for Tanh, the default, so the file says what it computes.
                string activation = config.Cell == CellKind.RnnRelu ? "Relu" : "Tanh";
                attributes.Add(OnnxGraphWriter.Strings("activations", Enumerable.Repeat(activation, config.Directions)));
                break;
        }
        return [.. attributes];
    }

    private static ReadOnlySpan<float> Read(RnnParameters parameters, ParameterSpec spec, int layer, int direction)
    {
        var values = OnnxParameters.Read(parameters, spec, layer, direction);
        RequireFinite(spec.Name(layer, direction), values);
        return values;
    }

    private static void RequireFinite(string name, ReadOnlySpan<float> values)
    {
        int bad = FloatTensor.IndexOfNonFinite(values);
        if (bad >= 0)
            throw new InvalidOperationException($"parameter '{name}' element {bad} is {values[bad]}; a model with non-finite values cannot be imported again, so it is not exported.");
    }
}
