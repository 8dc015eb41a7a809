using Google.Protobuf;
using Recurrent.Onnx.Protobuf;
using Recurrent.Sequence;

namespace Recurrent.Onnx;

/// <summary>
/// Reads recurrent stacks and language models from ONNX files: those <see cref="OnnxExport"/> writes and those
/// <c>torch.onnx.export</c> writes of <c>nn.LSTM</c>, <c>nn.GRU</c> and <c>nn.RNN</c> (and of an Embedding → RNN → Linear
/// model), giving a new layer or model with the file's weights. Thread-safety: safe; it holds no state.
/// </summary>
/// <remarks>
/// <para><b>What is read.</b> A graph is read when it computes exactly what a Recurrent stack computes: its LSTM, GRU or
/// RNN nodes (ONNX operator specification, docs/Operators.md) form one chain, all with the same operator, hidden_size,
/// direction ("forward" or "bidirectional") and cell (GRU <c>linear_before_reset</c> 1 → <see cref="GruVariant.ResetAfter"/>,
/// 0 → <see cref="GruVariant.ResetBefore"/>; RNN activations Tanh or Relu), layout 0, default activations, no clip, no
/// activation_alpha/beta, LSTM input_forget 0 and no peepholes (an all-zero P is accepted); the first reads a graph input
/// x [T, N, I] and each next one the layer below's Y [T, D, N, H] made [T, N, D·H] by Transpose (perm 0, 2, 1, 3) and
/// Reshape (0, 0, −1 or D·H), or, with one direction, Squeeze of axis 1. A batch-first graph (PyTorch's
/// batch_first=True), whose input [N, T, I] and output are transposed by [1, 0, 2] around the stack, is read as the same
/// (sequence-first) stack: its caller transposes x before <see cref="RecurrentLayer.Forward"/>. W, R and B are initializers or Constant nodes
/// of float32 values (raw or typed data; B absent reads as zeros); sequence_lens is absent from every node or one graph
/// input for all; initial_h (initial_c) is absent or zeros (ConstantOfShape, Expand, a zero initializer) for every node,
/// or rows [k·D, (k+1)·D) of one graph input [L·D, N, H] (Slice on axis 0) for layer k. The graph's outputs are the
/// last layer's Y (in any of the three layouts) and the layers' Y_h (Y_c) concatenated in layer order. Shape
/// arithmetic (Shape, Gather, Unsqueeze, Concat, Cast of integers) that sizes zero states is followed, as is Identity.
/// A sequence model adds, before the stack, Gather(table [O or O + 1, I], token ids) or MatMul(values [T, N, O], E [O, I]),
/// and after it MatMul(y, V [H, O]) and Add(c [O]). Default-domain opsets 7 to 27 (LSTM, GRU and RNN are unchanged in
/// meaning across them), IR versions 3 to 14.</para>
/// <para><b>What is refused</b>, as <see cref="InvalidDataException"/> whose message names the file, the node (by name,
/// else #index in the graph) and the attribute or input: any other operator or domain, an unknown attribute, a value
/// outside the forms above (a reverse-only direction, layout 1, clip, another activation, peepholes, coupled gates),
/// a wrong gate count (W with 3·H rows for an LSTM), shapes that do not fit (hidden_size against R, a layer's input
/// width against the layer below, declared input shapes), weights that are not finite float32 or are stored outside
/// the file, graph outputs that are not the stack's, bytes that are not a protobuf model. Nothing is made unless the
/// whole file is read.</para>
/// <para>Lifetime: holds nothing; the layer or model it returns is the caller's (a sequence model is <see cref="IDisposable"/>; a layer on the default backend holds no native memory).</para>
/// </remarks>
public static class OnnxImport
{
    /// <summary>Metadata key of a token model's start token (see <see cref="OnnxExport.Save(RecurrentSequenceModel, string, OnnxExportOptions?)"/>).</summary>
    internal const string StartTokenKey = "recurrent.start_token";

    /// <summary>Reads the recurrent stack of an ONNX file into a new layer.</summary>
    /// <param name="path">The file.</param>
    /// <param name="backend">Where the layer computes; the native CPU library when null.</param>
    /// <returns>An <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/> with the file's weights.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidDataException">The file is not a model the import reads (see the remarks), or holds a sequence
    /// model (an embedding or output layer: use <see cref="LoadSequenceModel(string, IRnnBackend?)"/>); the message names the node and attribute.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="IOException">The path is a folder, or the file cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    public static RecurrentLayer Load(string path, IRnnBackend? backend = null)
    {
        var graph = Read(path, ParseFile(path));
        return Layer(path, graph, backend);
    }

    /// <summary>Reads the recurrent stack of an ONNX model from <paramref name="stream"/> (to its end; not closed) into a new layer.</summary>
    /// <param name="stream">The model's bytes.</param>
    /// <param name="backend">Where the layer computes; the native CPU library when null.</param>
    /// <returns>An <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/> with the model's weights.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="InvalidDataException">As <see cref="Load(string, IRnnBackend?)"/>.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static RecurrentLayer Load(Stream stream, IRnnBackend? backend = null)
    {
        const string source = "ONNX stream";
        return Layer(source, Read(source, ParseStream(stream, source)), backend);
    }

    /// <summary>
    /// Reads a sequence model (a language model: embedding, stack, output layer) of an ONNX file into a new
    /// <see cref="RecurrentSequenceModel"/>: token ids gathered from the embedding give <see cref="SequenceLoss.SoftmaxCrossEntropy"/>,
    /// values multiplied by it <see cref="SequenceLoss.SquaredError"/>. The start token is the file's metadata
    /// <c>recurrent.start_token</c> when it has one (files of <see cref="OnnxExport"/>), else none (a zero start value).
    /// An embedding of O + 1 rows whose last is zero (as <see cref="OnnxExport"/> writes it) is read as O rows.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="backend">Where the stack (and so the model) computes; the native CPU library when null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidDataException">The file is not a sequence model the import reads: as <see cref="Load(string, IRnnBackend?)"/>,
    /// or it has no embedding or output layer, a bidirectional stack, an embedding and output layer of different vocabularies,
    /// or a start token outside the vocabulary.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="IOException">The path is a folder, or the file cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    public static RecurrentSequenceModel LoadSequenceModel(string path, IRnnBackend? backend = null)
    {
        var model = ParseFile(path);
        return SequenceModel(path, model, Read(path, model), backend);
    }

    /// <summary>Reads a sequence model from <paramref name="stream"/> (to its end; not closed); see <see cref="LoadSequenceModel(string, IRnnBackend?)"/>.</summary>
    /// <param name="stream">The model's bytes.</param>
    /// <param name="backend">Where the stack (and so the model) computes; the native CPU library when null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="InvalidDataException">As <see cref="LoadSequenceModel(string, IRnnBackend?)"/>.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static RecurrentSequenceModel LoadSequenceModel(Stream stream, IRnnBackend? backend = null)
    {
        const string source = "ONNX stream";
        var model = ParseStream(stream, source);
        return SequenceModel(source, model, Read(source, model), backend);
    }

    private static ModelProto ParseFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // A pipe or device reports no length, and opening a pipe blocks until a writer comes: refused before the open.
        var info = new FileInfo(path);
        if (info.Exists && info.Length == 0)
            throw new InvalidDataException($"{path}: the file is empty (or a pipe or a device, not a regular file); expected an ONNX model.");
        FileStream stream;
        try { stream = File.OpenRead(path); }
        // Opening a folder fails as a permission problem would; it is not one, and callers are promised an IOException.
        catch (UnauthorizedAccessException e) when (Directory.Exists(path))
        {
            throw new IOException($"{path}: is a folder, not an ONNX file.", e);
        }
        using (stream) return Parse(stream, path);
    }

    private static ModelProto ParseStream(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("stream: cannot be read.", nameof(stream));
        return Parse(stream, source);
    }

    private static ModelProto Parse(Stream stream, string source)
    {
        try { return ModelProto.Parser.ParseFrom(stream); }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{source}: not an ONNX model: the protobuf encoding is broken ({e.Message}).", e);
        }
    }

    private static RecognisedGraph Read(string source, ModelProto model) => OnnxGraphReader.Read(source, model);

    private static RecurrentLayer Layer(string source, RecognisedGraph graph, IRnnBackend? backend)
    {
        if (graph.Embedding is not null || graph.OutputWeight is not null)
            throw new InvalidDataException($"{source}: the graph is a sequence model (it has an {(graph.Embedding is not null ? "embedding" : "output layer")}); read it with OnnxImport.LoadSequenceModel.");
        var layer = Create(graph.Config, backend);
        WriteStack(layer.Parameters, graph);
        return layer;
    }

    private static RecurrentSequenceModel SequenceModel(string source, ModelProto proto, RecognisedGraph graph, IRnnBackend? backend)
    {
        var config = graph.Config;
        var embedding = graph.Embedding ?? throw new InvalidDataException($"{source}: the graph has no embedding (a Gather or MatMul of an initializer before the stack); read a plain stack with OnnxImport.Load.");
        if (graph.OutputWeight is null)
            throw new InvalidDataException($"{source}: the graph has no output layer (MatMul by V [H, O] after the stack); read a plain stack with OnnxImport.Load.");
        if (config.Bidirectional)
            throw new InvalidDataException($"{source}: the stack is bidirectional; a sequence model's stack runs forward only (it must not see the future it predicts).");
        int outputs = graph.OutputSize, input = config.InputSize;
        int rows = embedding.Rows;
        // Recurrent's export appends one zero row (the start value, Gather index −1); PyTorch's nn.Embedding has O rows.
        bool zeroRowAppended = embedding.Tokens && rows == outputs + 1 && embedding.Table.AsSpan(outputs * input, input).IndexOfAnyExcept(0f) < 0;
        if (rows != outputs && !zeroRowAppended)
            throw new InvalidDataException($"{source}: the embedding has {rows} rows and the output layer {outputs} columns; a sequence model feeds back what it outputs, so both are O" +
                (embedding.Tokens ? " (or O + 1 with a zero last row)." : "."));
        int? start = null;
        foreach (var entry in proto.MetadataProps.Where(e => e.Key == StartTokenKey))
        {
            if (!embedding.Tokens)
                throw new InvalidDataException($"{source}: metadata '{StartTokenKey}' names a start token, but the model feeds back values, which start from zeros.");
            if (start is not null || !int.TryParse(entry.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int token) || token >= outputs)
                throw new InvalidDataException($"{source}: metadata '{StartTokenKey}' is '{entry.Value}'; expected one token in [0, {outputs}).");
            start = token;
        }
        var layer = Create(config, backend);
        var model = new RecurrentSequenceModel(layer, outputs, embedding.Tokens ? SequenceLoss.SoftmaxCrossEntropy : SequenceLoss.SquaredError, start);
        WriteStack(layer.Parameters, graph);
        embedding.Table.AsSpan(0, outputs * input).CopyTo(OnnxParameters.Of(model, OnnxParameters.Embedding));
        graph.OutputWeight.CopyTo(OnnxParameters.Of(model, OnnxParameters.OutputWeight));
        var bias = OnnxParameters.Of(model, OnnxParameters.OutputBias);
        if (graph.OutputBias is null) bias.Clear();
        else graph.OutputBias.CopyTo(bias);
        return model;
    }

    private static RecurrentLayer Create(RnnConfig config, IRnnBackend? backend) => config.Cell is CellKind.Lstm or CellKind.GruResetAfter
        or CellKind.GruResetBefore or CellKind.RnnTanh or CellKind.RnnRelu
        ? RecurrentLayer.Create(config, backend)
        : throw new NotSupportedException($"ONNX has no operator for {config.Cell} cells.");

    /// <summary>ONNX's W, R, B of each layer into PyTorch's weight_ih, weight_hh, bias_ih, bias_hh, gate blocks back in Recurrent's order.</summary>
    private static void WriteStack(RnnParameters parameters, RecognisedGraph graph)
    {
        var config = graph.Config;
        int hidden = config.HiddenSize, gh = config.GateCount * hidden;
        var map = OnnxGateOrder.SourceGateOf(config.Cell);
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            var (w, r, b) = graph.Layers[layer];
            int input = config.LayerInputSize(layer);
            for (int d = 0; d < config.Directions; d++)
            {
                GateBlocks.Unpermute(w.AsSpan(d * gh * input, gh * input), hidden * input, map, OnnxParameters.Write(parameters, ParameterSpec.WeightIH, layer, d));
                GateBlocks.Unpermute(r.AsSpan(d * gh * hidden, gh * hidden), hidden * hidden, map, OnnxParameters.Write(parameters, ParameterSpec.WeightHH, layer, d));
                var biasIH = OnnxParameters.Write(parameters, ParameterSpec.BiasIH, layer, d);
                var biasHH = OnnxParameters.Write(parameters, ParameterSpec.BiasHH, layer, d);
                if (b is null)
                {
                    biasIH.Clear();
                    biasHH.Clear();
                    continue;
                }
                GateBlocks.Unpermute(b.AsSpan(d * 2 * gh, gh), hidden, map, biasIH);
                GateBlocks.Unpermute(b.AsSpan(d * 2 * gh + gh, gh), hidden, map, biasHH);
            }
        }
    }
}
