using Google.Protobuf;
using NUnit.Framework;
using Recurrent.Onnx;
using Recurrent.Onnx.Protobuf;
using Recurrent.Sequence;
using static Recurrent.Tests.OnnxExportTests;

namespace Recurrent.Tests;

/// <summary>
/// The ONNX import: our exports come back with the same parameters, bit for bit; files written by torch.onnx.export
/// (Data/onnx, scripts/make_onnx_fixtures.py) compute what PyTorch computed; files it cannot read exactly are refused
/// with the node and attribute named.
/// </summary>
[TestFixture]
public class OnnxImportTests
{
    private static IEnumerable<TestCaseData> RoundTripCases() =>
        from cell in TestData.AllCells
        from layers in new[] { 1, 2 }
        from bidirectional in new[] { false, true }
        select new TestCaseData(cell, layers, bidirectional).SetName($"RoundTrip_GivesTheSameParameters_{cell}_L{layers}{(bidirectional ? "_bi" : "")}");

    [TestCaseSource(nameof(RoundTripCases))]
    public void RoundTrip_GivesTheSameParameters(CellKind cell, int layers, bool bidirectional)
    {
        var original = TestLayers.Create(new RnnConfig(cell, 3, 4, layers, bidirectional), seed: 11);
        foreach (var options in new[] { new OnnxExportOptions(), new OnnxExportOptions { InitialStates = true, SequenceLengths = true } })
        {
            var imported = OnnxImport.Load(new MemoryStream(Export(original, options)));
            Assert.That(imported.Config, Is.EqualTo(original.Config));
            Assert.That(imported.GetType(), Is.EqualTo(original.GetType()));
            AssertSameParameters(imported, original);
        }
    }

    [Test]
    public void RoundTrip_ThroughAFile_GivesTheSameParametersOnTheGivenBackend()
    {
        string path = Path.Combine(Path.GetTempPath(), $"onnx-roundtrip-{Guid.NewGuid():N}.onnx");
        try
        {
            var original = new Gru(5, 3, variant: GruVariant.ResetAfter, numLayers: 2, seed: 4);
            OnnxExport.Save(original, path);
            var imported = OnnxImport.Load(path, ReferenceBackend.Instance);
            Assert.That(imported.Backend, Is.SameAs(ReferenceBackend.Instance));
            AssertSameParameters(imported, original);
        }
        finally { File.Delete(path); }
    }

    [TestCase(SequenceLoss.SoftmaxCrossEntropy, 3)]
    [TestCase(SequenceLoss.SoftmaxCrossEntropy, null)]
    [TestCase(SequenceLoss.SquaredError, null)]
    public void SequenceModelRoundTrip_GivesTheSameModel(SequenceLoss loss, int? startToken)
    {
        using var original = new RecurrentSequenceModel(new Gru(4, 6, variant: GruVariant.ResetBefore, numLayers: 2, seed: 2), outputSize: 9, loss, startToken, seed: 5);
        using var imported = OnnxImport.LoadSequenceModel(new MemoryStream(ExportModel(original, new())));
        Assert.That((imported.OutputSize, imported.Loss, imported.StartToken), Is.EqualTo((original.OutputSize, original.Loss, original.StartToken)));
        Assert.That(imported.Recurrent.Config, Is.EqualTo(original.Recurrent.Config));
        AssertSameParameters(imported.Recurrent, original.Recurrent);
        foreach (var name in new[] { "embedding", "output_weight", "output_bias" })
            Assert.That(Own(imported, name), Is.EqualTo(Own(original, name)), name);
        var random = new Random(3);
        var targets = loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens(Enumerable.Range(0, 12).Select(_ => random.Next(9)).ToArray(), 4, 3)
            : SequenceTargets.Real(new FloatTensor(TestData.UniformSingle(random, 4 * 3 * 9), 4, 3, 9));
        Assert.That(Floats(imported.TeacherForcedOutputs(targets)), Is.EqualTo(Floats(original.TeacherForcedOutputs(targets))));
    }

    // -------------------------------------------------------------------------------------------------------------
    // Files written by torch.onnx.export
    // -------------------------------------------------------------------------------------------------------------

    public sealed record TorchCase(string Name, CellKind Cell, int Input, int Hidden, int Layers, bool Bidirectional, bool BatchFirst = false)
    {
        public override string ToString() => Name;
    }

    private static readonly TorchCase[] TorchCases =
    [
        new("lstm_l2_bi", CellKind.Lstm, 3, 4, 2, true),
        new("gru_l2", CellKind.GruResetAfter, 3, 5, 2, false),
        new("gru_l2_nobias_static", CellKind.GruResetAfter, 4, 3, 2, false),
        new("rnn_relu_l1_bi", CellKind.RnnRelu, 4, 3, 1, true),
        new("rnn_tanh_l3", CellKind.RnnTanh, 2, 3, 3, false),
        new("lstm_l2_batch_first", CellKind.Lstm, 3, 2, 2, false, BatchFirst: true),
        new("gru_l2_bi_opset9", CellKind.GruResetAfter, 2, 3, 2, true),
    ];

    private static string DataPath(string file) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Data", "onnx", file);

    [TestCaseSource(nameof(TorchCases))]
    public void TorchExport_ImportsAndComputesWhatPyTorchComputed(TorchCase testCase)
    {
        var layer = OnnxImport.Load(DataPath($"{testCase.Name}.onnx"), ReferenceBackend.Instance);
        Assert.That(layer.Config, Is.EqualTo(new RnnConfig(testCase.Cell, testCase.Input, testCase.Hidden, testCase.Layers, testCase.Bidirectional)));
        var data = SafeTensors.Read(DataPath($"{testCase.Name}.data.safetensors"));
        // A batch_first module takes x and gives y as [N, T, ·]; the graph transposes them around the stack, which the
        // imported (sequence-first) layer leaves to its caller.
        var x = testCase.BatchFirst ? SwapFirstTwo(data["x"]) : data["x"];
        using var result = layer.Forward(x, data.GetValueOrDefault("h0"), data.GetValueOrDefault("c0"));
        var y = testCase.BatchFirst ? SwapFirstTwo(result.Output) : result.Output;
        Assertions.AllClose(Floats(y), Widen(data["y"]), Tolerances.PyTorchFloat64, "y");
        Assertions.AllClose(Floats(result.HiddenState), Widen(data["hn"]), Tolerances.PyTorchFloat64, "hn");
        if (testCase.Cell.HasCellState())
            Assertions.AllClose(Floats(result.CellState!), Widen(data["cn"]), Tolerances.PyTorchFloat64, "cn");
    }

    /// <summary>A torch Embedding → LSTM → Linear model is a RecurrentSequenceModel: its teacher-forced outputs are PyTorch's.</summary>
    [Test]
    public void TorchLanguageModel_ImportsAndComputesWhatPyTorchComputed()
    {
        using var model = OnnxImport.LoadSequenceModel(DataPath("lm_lstm_l2.onnx"), ReferenceBackend.Instance);
        Assert.That((model.OutputSize, model.Loss, model.StartToken), Is.EqualTo((7, SequenceLoss.SoftmaxCrossEntropy, (int?)null)));
        Assert.That(model.Recurrent.Config, Is.EqualTo(new RnnConfig(CellKind.Lstm, 4, 6, 2)));
        var data = SafeTensors.Read(DataPath("lm_lstm_l2.data.safetensors"));
        var targets = data["targets"];
        var ids = Array.ConvertAll(Floats(targets), v => (int)v);
        var outputs = model.TeacherForcedOutputs(SequenceTargets.Tokens(ids, targets.Shape[0], targets.Shape[1]));
        // The output layer runs in float32 (native GEMM), against PyTorch's double.
        Assertions.AllClose(Floats(outputs), Widen(data["outputs"]), Tolerances.PyTorchFloat32, "outputs");
    }

    // -------------------------------------------------------------------------------------------------------------
    // Refused files
    // -------------------------------------------------------------------------------------------------------------

    /// <summary>A good two-layer model to damage: its proto, the names of its nodes and initializers as the export writes them.</summary>
    private static ModelProto Good(CellKind cell = CellKind.Lstm, int layers = 2, bool bidirectional = false, OnnxExportOptions? options = null) =>
        ModelProto.Parser.ParseFrom(Export(TestLayers.Create(new RnnConfig(cell, 3, 4, layers, bidirectional), seed: 1), options ?? new()));

    private static NodeProto Node(ModelProto model, string name) => model.Graph.Node.Single(n => n.Name == name);

    private static InvalidDataException Refused(ModelProto model, params string[] mentions)
    {
        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.Load(new MemoryStream(model.ToByteArray())))!;
        foreach (var mention in mentions) Assert.That(e.Message, Does.Contain(mention));
        return e;
    }

    [TestCase("clip", TestName = "Import_RefusesClip")]
    [TestCase("activation_alpha", TestName = "Import_RefusesActivationAlpha")]
    [TestCase("activation_beta", TestName = "Import_RefusesActivationBeta")]
    [TestCase("input_forget", TestName = "Import_RefusesCoupledGates")]
    [TestCase("layout", TestName = "Import_RefusesBatchFirstLayout")]
    [TestCase("activations", TestName = "Import_RefusesOtherActivations")]
    [TestCase("not_an_attribute", TestName = "Import_RefusesAnUnknownAttribute")]
    public void Import_RefusesAnAttributeItCannotCompute(string attribute)
    {
        var a = new AttributeProto { Name = attribute };
        switch (attribute)
        {
            case "clip": (a.Type, a.F) = (AttributeProto.Types.AttributeType.Float, 3); break;
            case "activation_alpha" or "activation_beta": a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.Add(0.1f); break;
            case "activations": a.Type = AttributeProto.Types.AttributeType.Strings; a.Strings.AddRange(new[] { "Sigmoid", "Relu", "Tanh" }.Select(ByteString.CopyFromUtf8)); break;
            default: (a.Type, a.I) = (AttributeProto.Types.AttributeType.Int, attribute == "not_an_attribute" ? 0 : 1); break;
        }
        var model = Good();
        Node(model, "LSTM_l1").Attribute.Add(a);
        Refused(model, "node 'LSTM_l1' (LSTM)", $"attribute '{attribute}'");
    }

    [Test]
    public void Import_RefusesAReverseOnlyLayer()
    {
        var model = Good(CellKind.GruResetAfter, layers: 1);
        Node(model, "GRU_l0").Attribute.Single(a => a.Name == "direction").S = ByteString.CopyFromUtf8("reverse");
        Refused(model, "node 'GRU_l0' (GRU)", "attribute 'direction'", "reverse");
    }

    [Test]
    public void Import_RefusesAnUnsupportedOperator()
    {
        var model = Good();
        var output = model.Graph.Output.Single(o => o.Name == OnnxNames.Output);
        var relu = new NodeProto { Name = "after", OpType = "Relu" };
        relu.Input.Add(OnnxNames.Output);
        relu.Output.Add("relu_y");
        model.Graph.Node.Add(relu);
        output.Name = "relu_y";
        Refused(model, "node 'after' (Relu)", "operator Relu");
    }

    [Test]
    public void Import_RefusesAnotherDomain()
    {
        var model = Good();
        Node(model, "Transpose_l0").Domain = "com.example";
        Refused(model, "node 'Transpose_l0'", "com.example");
    }

    [Test]
    public void Import_RefusesPeepholes()
    {
        var model = Good(layers: 1);
        var p = new TensorProto { Name = "P", DataType = (int)TensorProto.Types.DataType.Float };
        p.Dims.AddRange([1, 12]);
        p.FloatData.AddRange(Enumerable.Repeat(0.5f, 12));
        model.Graph.Initializer.Add(p);
        var lstm = Node(model, "LSTM_l0");
        while (lstm.Input.Count < 7) lstm.Input.Add("");
        lstm.Input.Add("P");
        Refused(model, "node 'LSTM_l0' (LSTM)", "input P");
    }

    [Test]
    public void Import_RefusesAWrongGateCount()
    {
        // A GRU's W (3·H rows) under an LSTM node (4 gates).
        var model = Good();
        var gru = Good(CellKind.GruResetAfter);
        var w = model.Graph.Initializer.Single(t => t.Name == "W_l0");
        model.Graph.Initializer.Remove(w);
        model.Graph.Initializer.Add(gru.Graph.Initializer.Single(t => t.Name == "W_l0"));
        Refused(model, "node 'LSTM_l0' (LSTM)", "input W", "3·hidden_size rows", "wrong gate count");
    }

    [Test]
    public void Import_RefusesAHiddenSizeThatDoesNotFitR()
    {
        var model = Good(layers: 1);
        Node(model, "LSTM_l0").Attribute.Single(a => a.Name == "hidden_size").I = 5;
        Refused(model, "node 'LSTM_l0' (LSTM)", "hidden_size 5");
    }

    [Test]
    public void Import_RefusesLayersOfDifferentHiddenSizes()
    {
        var model = Good();
        Node(model, "LSTM_l1").Attribute.Single(a => a.Name == "hidden_size").I = 5;
        Refused(model, "node 'LSTM_l1' (LSTM)", "attribute 'hidden_size'", "one hidden size");
    }

    [Test]
    public void Import_RefusesALayerWhoseInputWidthIsNotTheLayerBelowsOutput()
    {
        // Layer 1 of a one-way stack reads D·H = 4 features; give it a W for 3 (layer 0's).
        var model = Good();
        var w1 = model.Graph.Initializer.Single(t => t.Name == "W_l1");
        var w0 = model.Graph.Initializer.Single(t => t.Name == "W_l0").Clone();
        w0.Name = "W_l1";
        model.Graph.Initializer[model.Graph.Initializer.IndexOf(w1)] = w0;
        Refused(model, "node 'LSTM_l1' (LSTM)", "input W", "layer 1 reads the layer below's D·H = 4");
    }

    [Test]
    public void Import_RefusesADeclaredInputShapeThatDoesNotFit()
    {
        var model = Good();
        model.Graph.Input.Single(i => i.Name == OnnxNames.Input).Type.TensorType.Shape.Dim[2].DimValue = 7;
        Refused(model, "graph input 'x'", "size 7 in dimension 2", "reads 3");
    }

    [Test]
    public void Import_RefusesATransposeOfAnotherPermutation()
    {
        var model = Good();
        var perm = Node(model, "Transpose_l0").Attribute.Single(a => a.Name == "perm");
        perm.Ints.Clear();
        perm.Ints.AddRange([0, 1, 2, 3]);
        Refused(model, "node 'Transpose_l0' (Transpose)", "attribute 'perm'");
    }

    [Test]
    public void Import_RefusesAGraphOutputThatIsNotTheStacks()
    {
        // Layer 0's Y_h alone as an output: a two-layer stack's hn holds both layers.
        var model = Good();
        model.Graph.Output.Add(new ValueInfoProto { Name = "LSTM_l0_Y_h" });
        Refused(model, "graph output 'LSTM_l0_Y_h'", "layers 0 to 0");
    }

    [Test]
    public void Import_RefusesInitialStatesGivenToSomeLayersOnly()
    {
        var model = Good(options: new OnnxExportOptions { InitialStates = true });
        var lstm = Node(model, "LSTM_l1");
        lstm.Input[5] = "";
        Refused(model, "node 'LSTM_l1' (LSTM)", "input initial_h is zeros");
    }

    [Test]
    public void Import_RefusesNonFiniteWeights()
    {
        var model = Good();
        var r = model.Graph.Initializer.Single(t => t.Name == "R_l1");
        var bytes = r.RawData.ToByteArray();
        BitConverter.GetBytes(float.PositiveInfinity).CopyTo(bytes, 4 * 6);
        r.RawData = ByteString.CopyFrom(bytes);
        Refused(model, "node 'LSTM_l1' (LSTM)", "initializer 'R_l1'", "element 6 is");
    }

    [Test]
    public void Import_RefusesWeightsOfAnotherType()
    {
        var model = Good();
        var b = model.Graph.Initializer.Single(t => t.Name == "B_l0");
        b.DataType = (int)TensorProto.Types.DataType.Float16;
        b.RawData = ByteString.CopyFrom(new byte[b.RawData.Length / 2]);
        Refused(model, "node 'LSTM_l0' (LSTM)", "input B", "FLOAT16");
    }

    [Test]
    public void Import_RefusesExternalData()
    {
        var model = Good();
        var w = model.Graph.Initializer.Single(t => t.Name == "W_l0");
        w.DataLocation = TensorProto.Types.DataLocation.External;
        w.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
        Refused(model, "node 'LSTM_l0' (LSTM)", "external data");
    }

    [Test]
    public void Import_RefusesAnOpsetItDoesNotKnow()
    {
        var model = Good();
        model.OpsetImport[0].Version = 99;
        Refused(model, "opset is 99");
    }

    [Test]
    public void Import_RefusesBytesThatAreNotAModel()
    {
        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.Load(new MemoryStream([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])));
        Assert.That(e!.Message, Does.Contain("not an ONNX model"));
        var empty = Assert.Throws<InvalidDataException>(() => OnnxImport.Load(new MemoryStream()));
        Assert.That(empty!.Message, Does.Contain("no graph"));
    }

    [Test]
    public void Import_TellsAStackFromASequenceModel()
    {
        using var model = new RecurrentSequenceModel(new Lstm(3, 4), 5, SequenceLoss.SoftmaxCrossEntropy);
        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.Load(new MemoryStream(ExportModel(model, new()))));
        Assert.That(e!.Message, Does.Contain("sequence model").And.Contain("LoadSequenceModel"));
        var layer = Assert.Throws<InvalidDataException>(() => OnnxImport.LoadSequenceModel(new MemoryStream(Export(new Lstm(3, 4), new()))));
        Assert.That(layer!.Message, Does.Contain("no embedding"));
    }

    /// <summary>
    /// Damaged files (random bytes changed in good ones) either still read as a model or are refused with
    /// <see cref="InvalidDataException"/>: no other exception escapes, whatever the damage makes of the protobuf fields.
    /// </summary>
    [Test]
    public void Import_OfDamagedFiles_ReadsOrRefusesWithInvalidDataOnly()
    {
        var random = new Random(2024);
        byte[][] good =
        [
            Export(new Lstm(3, 4, numLayers: 2, bidirectional: true, seed: 1), new OnnxExportOptions { InitialStates = true, SequenceLengths = true }),
            File.ReadAllBytes(DataPath("gru_l2.onnx")),
            File.ReadAllBytes(DataPath("lm_lstm_l2.onnx")),
        ];
        int read = 0, refused = 0;
        for (int trial = 0; trial < 600; trial++)
        {
            var bytes = (byte[])good[trial % good.Length].Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            try
            {
                if (trial % good.Length == 2) OnnxImport.LoadSequenceModel(new MemoryStream(bytes)).Dispose();
                else OnnxImport.Load(new MemoryStream(bytes));
                read++;
            }
            catch (InvalidDataException) { refused++; }
        }
        TestContext.Out.WriteLine($"{read} damaged files still read, {refused} refused");
        Assert.That(refused, Is.GreaterThan(0));
    }

    [Test]
    public void Import_FromAFolderOrAMissingFile_IsAnIOException()
    {
        Assert.Throws<IOException>(() => OnnxImport.Load(Path.GetTempPath()));
        Assert.Throws<FileNotFoundException>(() => OnnxImport.Load(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.onnx")));
    }

    /// <summary>[A, B, C] → [B, A, C].</summary>
    private static FloatTensor SwapFirstTwo(FloatTensor t)
    {
        int a = t.Shape[0], b = t.Shape[1], c = t.Shape[2];
        var swapped = new FloatTensor(b, a, c);
        for (int i = 0; i < a; i++)
            for (int j = 0; j < b; j++)
                t.Span.Slice((i * b + j) * c, c).CopyTo(swapped.Span.Slice((j * a + i) * c, c));
        return swapped;
    }

    private static void AssertSameParameters(RecurrentLayer actual, RecurrentLayer expected)
    {
        var names = expected.Parameters.All.Select(p => p.Name).ToList();
        Assert.That(actual.Parameters.All.Select(p => p.Name), Is.EqualTo(names));
        foreach (var name in names)
            Assert.That(Floats(actual.Parameters[name].Value), Is.EqualTo(Floats(expected.Parameters[name].Value)), name);
    }

    private static float[] Own(RecurrentSequenceModel model, string name) => Floats(model.Parameters[name].Value);
}
