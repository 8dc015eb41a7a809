using NUnit.Framework;
using Recurrent.Onnx;
using Recurrent.Sequence;
using static Recurrent.Tests.OnnxRuntimeHarness;

namespace Recurrent.Tests;

/// <summary>
/// Recurrent's ONNX export run in ONNX Runtime gives what Recurrent's forward pass gives: every cell, one and two layers,
/// one and two directions, with and without initial states and per-sequence lengths; the language model's export
/// against its teacher-forced outputs.
/// </summary>
[TestFixture]
public class OnnxExportTests
{
    public enum Inputs { SequenceOnly, InitialStates, LengthsAndInitialStates }

    private static IEnumerable<TestCaseData> StackCases() =>
        from cell in TestData.AllCells
        from layers in new[] { 1, 2 }
        from bidirectional in new[] { false, true }
        from inputs in Enum.GetValues<Inputs>()
        select new TestCaseData(cell, layers, bidirectional, inputs)
            .SetName($"Export_RunsInOnnxRuntimeAsOurForward_{cell}_L{layers}{(bidirectional ? "_bi" : "")}_{inputs}");

    [TestCaseSource(nameof(StackCases))]
    public void Export_RunsInOnnxRuntimeAsOurForward(CellKind cell, int layers, bool bidirectional, Inputs inputs)
    {
        RequireAvailable();
        // T=5, N=3, I=4 ≠ H=5; the lengths are in no order, one is T and one is 1.
        int steps = 5, batch = 3, input = 4, hidden = 5;
        var config = new RnnConfig(cell, input, hidden, layers, bidirectional);
        var layer = TestLayers.Create(config, ReferenceBackend.Instance);
        var random = new Random(100 + (int)cell * 8 + layers * 2 + (bidirectional ? 1 : 0));
        // Larger than PyTorch's initialisation, so that gates saturate somewhat and a wrong gate block shows.
        foreach (var p in layer.Parameters.All) TestData.UniformSingle(random, p.Value.Length, 0.8).CopyTo(p.Value.Span);
        var x = Random(random, steps, batch, input);
        bool states = inputs != Inputs.SequenceOnly, hasCell = cell.HasCellState();
        var h0 = states ? Random(random, config.StateShape(batch)) : null;
        var c0 = states && hasCell ? Random(random, config.StateShape(batch)) : null;
        int[]? lengths = inputs == Inputs.LengthsAndInitialStates ? [3, steps, 1] : null;

        var options = new OnnxExportOptions { InitialStates = states, SequenceLengths = lengths is not null };
        var onnx = Export(layer, options);
        var feeds = new List<Input> { new Floats(OnnxNames.Input, Floats(x), steps, batch, input) };
        if (lengths is not null) feeds.Add(new Int32s(OnnxNames.SequenceLengths, lengths, batch));
        if (h0 is not null) feeds.Add(new Floats(OnnxNames.InitialHidden, Floats(h0), [.. h0.Shape.Select(d => (long)d)]));
        if (c0 is not null) feeds.Add(new Floats(OnnxNames.InitialCell, Floats(c0), [.. c0.Shape.Select(d => (long)d)]));
        var actual = Run(onnx, [.. feeds]);

        using var expected = layer.Forward(x, h0, c0, lengths: lengths);
        Assert.That(actual.Keys, Is.EquivalentTo(hasCell ? new[] { OnnxNames.Output, OnnxNames.FinalHidden, OnnxNames.FinalCell } : new[] { OnnxNames.Output, OnnxNames.FinalHidden }));
        Assertions.AllClose(actual[OnnxNames.Output], Widen(expected.Output), Tolerances.Float32, "y");
        Assertions.AllClose(actual[OnnxNames.FinalHidden], Widen(expected.HiddenState), Tolerances.Float32, "hn");
        if (hasCell) Assertions.AllClose(actual[OnnxNames.FinalCell], Widen(expected.CellState!), Tolerances.Float32, "cn");
        if (lengths is not null)
        {
            // ONNX's Y past a sequence's end is zero, as Recurrent's y is: checked exactly, not within a tolerance.
            int features = config.OutputSize;
            for (int t = lengths[2]; t < steps; t++)
                Assert.That(actual[OnnxNames.Output].AsSpan((t * batch + 2) * features, features).ToArray(), Is.All.EqualTo(0f), $"y at step {t} past sequence 2's end");
        }
    }

    /// <summary>Exports of the same layer are the same bytes, and the file names what it computes.</summary>
    [Test]
    public void Export_IsDeterministicAndDeclaresOpset14AndTheCell()
    {
        var layer = new Gru(3, 4, variant: GruVariant.ResetBefore, numLayers: 2, bidirectional: true, backend: ReferenceBackend.Instance, seed: 3);
        var first = Export(layer, new());
        Assert.That(Export(layer, new()), Is.EqualTo(first));
        var model = Recurrent.Onnx.Protobuf.ModelProto.Parser.ParseFrom(first);
        Assert.That(model.OpsetImport.Single().Version, Is.EqualTo(14));
        Assert.That(model.IrVersion, Is.EqualTo(7));
        var grus = model.Graph.Node.Where(n => n.OpType == "GRU").ToList();
        Assert.That(grus, Has.Count.EqualTo(2));
        foreach (var gru in grus)
        {
            Assert.That(gru.Attribute.Single(a => a.Name == "linear_before_reset").I, Is.EqualTo(0), "reset-before is linear_before_reset = 0");
            Assert.That(gru.Attribute.Single(a => a.Name == "direction").S.ToStringUtf8(), Is.EqualTo("bidirectional"));
            Assert.That(gru.Attribute.Single(a => a.Name == "hidden_size").I, Is.EqualTo(4));
        }
    }

    /// <summary>ONNX's W of an LSTM is blocks i, o, f, c: PyTorch's i, f, g, o reordered (the one map, checked block by block).</summary>
    [Test]
    public void Export_WritesOnnxGateOrder()
    {
        int hidden = 2, input = 3;
        var lstm = new Lstm(input, hidden, backend: ReferenceBackend.Instance);
        // Block g of weight_ih_l0 holds the value g + 1 throughout.
        var weight = lstm.Parameters["weight_ih_l0"].Value.Span;
        for (int i = 0; i < weight.Length; i++) weight[i] = i / (hidden * input) + 1;
        var model = Recurrent.Onnx.Protobuf.ModelProto.Parser.ParseFrom(Export(lstm, new()));
        var w = model.Graph.Initializer.Single(t => t.Name == "W_l0");
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(w.RawData.Span).ToArray();
        // ONNX i, o, f, c = PyTorch blocks i (1), o (4), f (2), g (3).
        float[] blocks = [1, 4, 2, 3];
        for (int g = 0; g < 4; g++)
            Assert.That(values.AsSpan(g * hidden * input, hidden * input).ToArray(), Is.All.EqualTo(blocks[g]), $"ONNX gate block {g} ({OnnxGateOrder.Gates(CellKind.Lstm)[g]})");
        Assert.That(OnnxGateOrder.SourceGateOf(CellKind.GruResetAfter), Is.EqualTo(new[] { 1, 0, 2 }), "ONNX z, r, h = PyTorch z (1), r (0), n (2)");
    }

    [Test]
    public void Save_ReplacesAnExistingFileWholeAndLeavesNoTemporary()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"onnx-save-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string path = Path.Combine(folder, "model.onnx");
            File.WriteAllText(path, "old");
            var layer = new ElmanRnn(2, 3, activation: RnnActivation.Relu, seed: 5);
            OnnxExport.Save(layer, path);
            Assert.That(File.ReadAllBytes(path), Is.EqualTo(Export(layer, new())));
            Assert.That(Directory.GetFiles(folder), Is.EquivalentTo(new[] { path }));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Test]
    public void Save_WithNonFiniteParameter_IsRefusedAndTheFileLeftAsItWas()
    {
        string path = Path.Combine(Path.GetTempPath(), $"onnx-nan-{Guid.NewGuid():N}.onnx");
        File.WriteAllText(path, "old");
        try
        {
            var layer = new Lstm(2, 3);
            layer.Parameters["bias_hh_l0"].Value.Span[5] = float.NaN;
            var e = Assert.Throws<InvalidOperationException>(() => OnnxExport.Save(layer, path));
            Assert.That(e!.Message, Does.Contain("bias_hh_l0").And.Contain("element 5"));
            Assert.That(File.ReadAllText(path), Is.EqualTo("old"));
        }
        finally { File.Delete(path); }
    }

    // -------------------------------------------------------------------------------------------------------------
    // The language model
    // -------------------------------------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> SequenceModelCases() =>
        from loss in Enum.GetValues<SequenceLoss>()
        from startToken in loss == SequenceLoss.SoftmaxCrossEntropy ? new int?[] { null, 2 } : [null]
        from withLengths in new[] { false, true }
        select new TestCaseData(loss, startToken, withLengths)
            .SetName($"SequenceModelExport_RunsInOnnxRuntimeAsTeacherForcedOutputs_{loss}{(startToken is null ? "" : "_start")}{(withLengths ? "_lengths" : "")}");

    [TestCaseSource(nameof(SequenceModelCases))]
    public void SequenceModelExport_RunsInOnnxRuntimeAsTeacherForcedOutputs(SequenceLoss loss, int? startToken, bool withLengths)
    {
        RequireAvailable();
        int steps = 6, batch = 3, outputs = 7;
        using var model = new RecurrentSequenceModel(new Lstm(4, 5, numLayers: 2, backend: ReferenceBackend.Instance, seed: 8), outputs, loss, startToken, seed: 9);
        var random = new Random(21);
        int[]? lengths = withLengths ? [4, steps, 2] : null;
        SequenceTargets targets;
        Input fed;
        if (loss == SequenceLoss.SoftmaxCrossEntropy)
        {
            var ids = Enumerable.Range(0, steps * batch).Select(_ => random.Next(outputs)).ToArray();
            targets = SequenceTargets.Tokens(ids, steps, batch, lengths);
            // Step t feeds back target t − 1; step 0 the start token, or −1 (the zero row) without one.
            var tokens = new long[steps * batch];
            for (int r = 0; r < tokens.Length; r++) tokens[r] = r < batch ? startToken ?? -1 : ids[r - batch];
            fed = new Int64s(OnnxNames.Tokens, tokens, steps, batch);
        }
        else
        {
            var values = Random(random, steps, batch, outputs);
            targets = SequenceTargets.Real(values, lengths);
            var shifted = new float[values.Length];
            Floats(values).AsSpan(0, (steps - 1) * batch * outputs).CopyTo(shifted.AsSpan(batch * outputs));
            fed = new Floats(OnnxNames.Values, shifted, steps, batch, outputs);
        }
        var onnx = ExportModel(model, new OnnxExportOptions { SequenceLengths = withLengths });
        var actual = lengths is null ? Run(onnx, fed) : Run(onnx, fed, new Int32s(OnnxNames.SequenceLengths, lengths, batch));
        var expected = Floats(model.TeacherForcedOutputs(targets));
        var ours = actual[OnnxNames.Outputs];
        // Past a sequence's end the graph gives the output bias and TeacherForcedOutputs zeros; no loss reads either.
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++)
                if (lengths is null || t < lengths[n])
                    Assertions.AllClose(ours.AsSpan((t * batch + n) * outputs, outputs), Widen(expected.AsSpan((t * batch + n) * outputs, outputs).ToArray()),
                        Tolerances.Float32, $"outputs at step {t}, sequence {n}");
    }

    internal static byte[] Export(RecurrentLayer layer, OnnxExportOptions options)
    {
        using var stream = new MemoryStream();
        OnnxExport.Save(layer, stream, options);
        return stream.ToArray();
    }

    internal static byte[] ExportModel(RecurrentSequenceModel model, OnnxExportOptions options)
    {
        using var stream = new MemoryStream();
        OnnxExport.Save(model, stream, options);
        return stream.ToArray();
    }

    private static FloatTensor Random(Random random, params int[] shape) =>
        new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);

    /// <summary>A copy of a tensor's elements (a view's too), for reading.</summary>
    internal static float[] Floats(FloatTensor tensor) => tensor.ToArray();

    internal static double[] Widen(FloatTensor tensor) => Widen(Floats(tensor));

    internal static double[] Widen(float[] values) => Array.ConvertAll(values, v => (double)v);
}
