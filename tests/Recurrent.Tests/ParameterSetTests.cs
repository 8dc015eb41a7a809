using NUnit.Framework;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// One parameter set for every model: named views of one flat value storage and one flat gradient storage, in order;
/// lookup; ZeroGrad and the SGD step over the flat spans; strict safetensors Load and Save; the concurrency protocol;
/// and a sequence model's set, which takes its stack's storage in.
/// </summary>
[TestFixture]
public class ParameterSetTests
{
    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-parameters-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    private string PathOf(string name) => Path.Combine(_folder, name);

    private static ParameterSet Set() => new([("w", [2, 3]), ("b", [3]), ("empty", [0, 4]), ("g", [1])]);

    private static void Fill(Span<float> values, int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Layout
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void Parameters_AreViewsOfTheFlatStorage_InOrder_BackToBack()
    {
        var set = Set();
        Assert.That(set.All.Select(p => p.Name), Is.EqualTo(new[] { "w", "b", "empty", "g" }));
        Assert.That(set.All.Select(p => p.Offset), Is.EqualTo(new[] { 0, 6, 9, 9 }));
        Assert.That(set.All.Select(p => FloatTensor.FormatShape(p.Shape)), Is.EqualTo(new[] { "[2, 3]", "[3]", "[0, 4]", "[1]" }));
        Assert.That(set.Values.Shape, Is.EqualTo(new[] { 10 }));
        Assert.That(set.Gradients.Shape, Is.EqualTo(new[] { 10 }));

        set["b"].Value[1] = 5;
        set["g"].Grad[0] = 7;
        Assert.That(set.Values.Span[7], Is.EqualTo(5f), "a parameter's value is its slice of Values");
        Assert.That(set.Gradients.Span[9], Is.EqualTo(7f), "a parameter's gradient is its slice of Gradients");
        set.Values.Span[1] = 3;
        set.Gradients.Span[6] = 4;
        Assert.That(set["w"].Value[0, 1], Is.EqualTo(3f));
        Assert.That(set["b"].Grad[0], Is.EqualTo(4f));
        Assert.That(set.Values.ToArray().Count(v => v != 0), Is.EqualTo(2), "values and gradients are separate storages");
    }

    [Test]
    public void Lookup_ByName()
    {
        var set = Set();
        Assert.That(set["w"], Is.SameAs(set.All[0]));
        Assert.That(set.TryGet("b", out var b), Is.True);
        Assert.That(b, Is.SameAs(set.All[1]));
        Assert.That(set.TryGet("missing", out _), Is.False);
        Assert.That(() => set["missing"], Throws.TypeOf<KeyNotFoundException>().With.Message.Contains("missing").And.Message.Contains("w, b, empty, g"));
    }

    private static IEnumerable<TestCaseData> BadDeclarations()
    {
        yield return new TestCaseData((object)new (string, int[])[] { ("a", [1]), ("a", [2]) }).SetArgDisplayNames("repeated name");
        yield return new TestCaseData((object)new (string, int[])[] { ("", [1]) }).SetArgDisplayNames("empty name");
        yield return new TestCaseData((object)new (string, int[])[] { ("__metadata__", [1]) }).SetArgDisplayNames("reserved name");
        yield return new TestCaseData((object)new (string, int[])[] { ("a", [2, -1]) }).SetArgDisplayNames("negative dimension");
    }

    [TestCaseSource(nameof(BadDeclarations))]
    public void Constructor_BadDeclaration_ThrowsArgumentExceptionNamingParameters((string, int[])[] declarations)
    {
        var error = Assert.Catch<ArgumentException>(() => new ParameterSet(declarations))!;
        Assert.That(error.ParamName, Is.EqualTo("parameters"));
        Assert.That(error.Message, Does.Contain($"'{declarations[^1].Item1}'"));
    }

    [Test]
    public void Constructor_MoreElementsThanOneArray_ThrowsArgumentOutOfRange()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new ParameterSet([("a", [1 << 30]), ("b", [1 << 30])]))!;
        Assert.That(error.ParamName, Is.EqualTo("parameters"));
        Assert.That(error.Message, Does.Contain("'b'"));
        var alone = Assert.Throws<ArgumentOutOfRangeException>(() => new ParameterSet([("a", [1 << 16, 1 << 16, 0]), ("huge", [1 << 16, 1 << 16, 1 << 16, 1 << 16])]))!;
        Assert.That(alone.ParamName, Is.EqualTo("parameters"));
        Assert.That(alone.Message, Does.Contain("'huge'"), "one parameter too large for one array, whatever its dimensions' product in 64 bits");
    }

    [Test]
    public void RnnParameters_AreLaidOutInPyTorchsOrder_WithSpecsFoundByPosition()
    {
        var parameters = new Lstm(3, 4, numLayers: 2, bidirectional: true).Parameters;
        int offset = 0;
        foreach (var p in parameters.All)
        {
            Assert.That(p.Offset, Is.EqualTo(offset), p.Name);
            offset += p.Length;
        }
        Assert.That(parameters.Values.Length, Is.EqualTo(offset));
        Assert.That(parameters.Metadata[RnnParameters.CellMetadataKey], Is.EqualTo("Lstm"));
        Assert.That(parameters[1, 1, ParameterSpec.WeightHH].Name, Is.EqualTo("weight_hh_l1_reverse"));
    }

    // ---------------------------------------------------------------------------------------------------------
    // ZeroGrad and the SGD step
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void SgdStep_SubtractsLearningRateTimesGradient_FromEveryValue()
    {
        // 37 elements: whole vectors and a remainder of every width.
        var set = new ParameterSet([("a", [5, 7]), ("b", [2])]);
        Fill(set.Values.Span, 1);
        Fill(set.Gradients.Span, 2);
        var values = set.Values.ToArray();
        var gradients = set.Gradients.ToArray();
        set.SgdStep(0.25f);
        for (int i = 0; i < values.Length; i++)
            Assert.That(set.Values.Span[i], Is.EqualTo(values[i] - 0.25f * gradients[i]), $"element {i}");
        Assert.That(set.Gradients.ToArray(), Is.EqualTo(gradients), "the gradients stay");
    }

    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void SgdStep_NonFiniteLearningRate_ThrowsAndChangesNothing(float learningRate)
    {
        var set = Set();
        Fill(set.Values.Span, 1);
        var before = set.Values.ToArray();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => set.SgdStep(learningRate))!;
        Assert.That(error.ParamName, Is.EqualTo("learningRate"));
        Assert.That(set.Values.ToArray(), Is.EqualTo(before));
    }

    [Test]
    public void ZeroGrad_ClearsEveryGradient_AndNoValue()
    {
        var set = Set();
        Fill(set.Values.Span, 1);
        Fill(set.Gradients.Span, 2);
        var values = set.Values.ToArray();
        set.ZeroGrad();
        Assert.That(set.Gradients.ToArray(), Is.All.EqualTo(0f));
        Assert.That(set.Values.ToArray(), Is.EqualTo(values));
    }

    [Test]
    public void Writes_AreRefusedWhileAPassIsInFlight_AndPassesWhileAWriteRuns()
    {
        var set = Set();
        string path = PathOf("set.safetensors");
        set.Save(path);
        using (set.EnterPass())
        {
            Assert.That(() => set.SgdStep(0.1f), Throws.InvalidOperationException.With.Message.Contains("SgdStep"));
            Assert.That(() => set.Load(path), Throws.InvalidOperationException.With.Message.Contains("Load"));
        }
        int version = set.Version;
        using (set.BeginWrite("test"))
            Assert.That(() => set.EnterPass(), Throws.InvalidOperationException);
        Assert.That(set.Version, Is.EqualTo(version + 1), "a write bumps the version");
        set.SgdStep(0.1f);
        Assert.That(set.Version, Is.EqualTo(version + 2));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Save and Load
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void SaveThenLoad_RestoresEveryValueBitForBit_InNameOrder_AndLeavesGradients()
    {
        var saved = new ParameterSet([("w", [2, 3]), ("b", [3]), ("empty", [0, 4])], new Dictionary<string, string> { ["kind"] = "test" });
        Fill(saved.Values.Span, 3);
        saved.Values.Span[0] = -0f;
        saved.Values.Span[1] = float.Epsilon;
        string path = PathOf("set.safetensors");
        saved.Save(path);

        var tensors = SafeTensors.Read(path, out var metadata);
        Assert.That(tensors.Keys, Is.EqualTo(new[] { "w", "b", "empty" }), "the file holds the names in order");
        Assert.That(metadata, Does.ContainKey("format").WithValue("pt").And.ContainKey("kind").WithValue("test"));

        var loaded = new ParameterSet([("w", [2, 3]), ("b", [3]), ("empty", [0, 4])], new Dictionary<string, string> { ["kind"] = "test" });
        Fill(loaded.Gradients.Span, 4);
        var gradients = loaded.Gradients.ToArray();
        loaded.Load(path);
        Assert.That(loaded.Values.ToArray().Select(BitConverter.SingleToInt32Bits), Is.EqualTo(saved.Values.ToArray().Select(BitConverter.SingleToInt32Bits)));
        Assert.That(loaded.Gradients.ToArray(), Is.EqualTo(gradients));
    }

    private static IEnumerable<TestCaseData> MismatchedFiles()
    {
        TestCaseData Case(string what, (string, int[])[] file, Action<Dictionary<string, FloatTensor>>? change, string? tensor, string fragment) =>
            new TestCaseData(file, change, tensor, fragment).SetArgDisplayNames(what);
        (string, int[])[] same = [("w", [2, 3]), ("b", [3])];
        yield return Case("missing", [("w", [2, 3])], null, "b", "missing");
        yield return Case("extra", [("w", [2, 3]), ("b", [3]), ("c", [1])], null, "c", "not a parameter");
        yield return Case("misshaped", [("w", [3, 2]), ("b", [3])], null, "w", "[2, 3]");
        yield return Case("not finite", same, t => t["b"][2] = float.NaN, "b", "finite");
        yield return Case("another kind", same, null, null, "'kind' is other");
    }

    [TestCaseSource(nameof(MismatchedFiles))]
    public void Load_MismatchedFile_ThrowsInvalidDataNamingFileAndTensor_AndChangesNothing((string, int[])[] file, Action<Dictionary<string, FloatTensor>>? change,
        string? tensor, string fragment)
    {
        string path = PathOf("file.safetensors");
        var tensors = file.ToDictionary(f => f.Item1, f => new FloatTensor(f.Item2));
        change?.Invoke(tensors);
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["kind"] = fragment.Contains("other") ? "other" : "test" });
        var set = new ParameterSet([("w", [2, 3]), ("b", [3])], new Dictionary<string, string> { ["kind"] = "test" });
        Fill(set.Values.Span, 5);
        var before = set.Values.ToArray();
        var error = Assert.Throws<InvalidDataException>(() => set.Load(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain(fragment));
        if (tensor is not null) Assert.That(error.Message, Does.Contain($"'{tensor}'"));
        Assert.That(set.Values.ToArray(), Is.EqualTo(before));
    }

    [Test]
    public void Save_NonFiniteValue_ThrowsInvalidOperation_AndWritesNothing()
    {
        var set = Set();
        set["b"].Value[1] = float.PositiveInfinity;
        string path = PathOf("set.safetensors");
        Assert.That(() => set.Save(path), Throws.InvalidOperationException.With.Message.Contains("'b'").And.Message.Contains("element 1"));
        Assert.That(File.Exists(path), Is.False);
    }

    // ---------------------------------------------------------------------------------------------------------
    // A sequence model's set: its own parameters and its stack's, in one storage
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void SequenceModel_HoldsItsStacksParametersInItsOwnFlatStorage()
    {
        var layer = new Gru(3, 4, variant: GruVariant.ResetAfter, numLayers: 2, seed: 1);
        var stackValues = layer.Parameters.Values.ToArray();
        var valueTensor = layer.Parameters["weight_hh_l1"].Value;
        using var model = new RecurrentSequenceModel(layer, 5, SequenceLoss.SoftmaxCrossEntropy, seed: 2);
        var set = model.Parameters;
        Assert.That(set.All.Select(p => p.Name), Is.EqualTo(new[] { "embedding" }
            .Concat(layer.Parameters.All.Select(p => "recurrent." + p.Name)).Concat(["output_weight", "output_bias"])));
        var stackPart = set["recurrent.weight_ih_l0"].Offset;
        Assert.That(stackPart, Is.EqualTo(5 * 3), "after the embedding [O, I]");
        Assert.That(set.Values.Span.Slice(stackPart, stackValues.Length).ToArray(), Is.EqualTo(stackValues), "the stack's values moved in unchanged");
        Assert.That(set.Values.Length, Is.EqualTo(5 * 3 + stackValues.Length + 4 * 5 + 5));

        Assert.That(layer.Parameters["weight_hh_l1"].Value, Is.SameAs(valueTensor), "the stack keeps its tensors");
        Assert.That(set["recurrent.weight_hh_l1"].Value, Is.SameAs(valueTensor), "and the model's set shares them");
        valueTensor[2, 1] = 42;
        int at = set["recurrent.weight_hh_l1"].Offset + 2 * 4 + 1;
        Assert.That(set.Values.Span[at], Is.EqualTo(42f), "a write through the layer is a write into the model's span");
        Assert.That(layer.Parameters.Values.Span[at - stackPart], Is.EqualTo(42f), "and into the stack's own flat view");
        set.Gradients.Span[at] = 3;
        Assert.That(layer.Parameters["weight_hh_l1"].Grad[2, 1], Is.EqualTo(3f));
    }

    [Test]
    public void SequenceModel_SgdStep_IsOneStepOverEverything_AndInvalidatesTheStacksPendingPasses()
    {
        var layer = new Lstm(2, 3, seed: 1);
        using var model = new RecurrentSequenceModel(layer, 4, SequenceLoss.SoftmaxCrossEntropy, seed: 2);
        model.Train(SequenceTargets.Tokens([1, 2, 3, 0, 1, 2], 3, 2));
        var values = model.Parameters.Values.ToArray();
        var gradients = model.Parameters.Gradients.ToArray();
        Assert.That(gradients.Count(g => g != 0), Is.GreaterThan(gradients.Length / 2));
        using var pending = layer.Forward(new FloatTensor(1, 1, 2), keepForBackward: true);
        model.SgdStep(0.5f);
        for (int i = 0; i < values.Length; i++)
            Assert.That(model.Parameters.Values.Span[i], Is.EqualTo(values[i] - 0.5f * gradients[i]), $"element {i}");
        Assert.That(() => layer.Backward(pending, null), Throws.InvalidOperationException.With.Message.Contains("replaced"));
        model.ZeroGrad();
        Assert.That(layer.Parameters.Gradients.ToArray(), Is.All.EqualTo(0f), "ZeroGrad clears the stack's too");
    }

    [Test]
    public void SequenceModel_WritesAreRefusedWhileAPassOfTheStackRuns()
    {
        var layer = new Lstm(2, 3, seed: 1);
        using var model = new RecurrentSequenceModel(layer, 4, SequenceLoss.SoftmaxCrossEntropy);
        using (layer.Parameters.EnterPass())
        {
            Assert.That(() => model.Parameters.SgdStep(0.1f), Throws.InvalidOperationException);
            Assert.That(() => model.SgdStep(0.1f), Throws.InvalidOperationException);
        }
        using (model.Parameters.EnterPass())
            Assert.That(() => layer.Parameters.Reset(3), Throws.InvalidOperationException, "a model's pass is a pass of its stack");
    }

    [Test]
    public void SequenceModel_AStackBelongsToOneModelAtATime()
    {
        var layer = new Lstm(2, 3, seed: 1);
        var first = new RecurrentSequenceModel(layer, 4, SequenceLoss.SoftmaxCrossEntropy);
        var error = Assert.Throws<ArgumentException>(() => new RecurrentSequenceModel(layer, 4, SequenceLoss.SoftmaxCrossEntropy))!;
        Assert.That(error.ParamName, Is.EqualTo("recurrent"));
        Assert.That(error.Message, Does.Contain("dispose"));
        first.Dispose();
        Assert.That(() => first.Parameters.SgdStep(0.1f), Throws.TypeOf<ObjectDisposedException>(), "a disposed model's set no longer holds the stack");
        using var second = new RecurrentSequenceModel(layer, 4, SequenceLoss.SoftmaxCrossEntropy);
        layer.Parameters["bias_hh_l0"].Value[0] = 9;
        Assert.That(second.Parameters["recurrent.bias_hh_l0"].Value[0], Is.EqualTo(9f));
        Assert.That(second.Parameters.Values.Span[second.Parameters["recurrent.bias_hh_l0"].Offset], Is.EqualTo(9f));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Round trips of every model
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void RecurrentLayer_SaveThenLoad_RoundTrips()
    {
        var saved = new Gru(3, 4, variant: GruVariant.ResetBefore, numLayers: 2, bidirectional: true, seed: 1);
        string path = PathOf("gru.safetensors");
        saved.Save(path);
        var loaded = new Gru(3, 4, variant: GruVariant.ResetBefore, numLayers: 2, bidirectional: true, seed: 2);
        loaded.Load(path);
        Assert.That(loaded.Parameters.Values.ToArray(), Is.EqualTo(saved.Parameters.Values.ToArray()));
    }

    [TestCase(SequenceLoss.SoftmaxCrossEntropy)]
    [TestCase(SequenceLoss.SquaredError)]
    public void RecurrentSequenceModel_SaveThenLoad_RoundTrips_UnderPyTorchNames(SequenceLoss loss)
    {
        var targets = loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens([1, 2, 3, 0, 1, 2], 3, 2)
            : SequenceTargets.Real(new FloatTensor(TestData.UniformSingle(new Random(1), 3 * 2 * 4), 3, 2, 4));
        using var saved = new RecurrentSequenceModel(new Lstm(2, 3, numLayers: 2, seed: 1), 4, loss, seed: 1);
        string path = PathOf("model.safetensors");
        saved.Save(path);
        Assert.That(SafeTensors.Read(path).Keys, Is.EqualTo(saved.Parameters.All.Select(p => p.Name)));
        Assert.That(SafeTensors.Read(path).Keys, Does.Contain("recurrent.weight_hh_l1").And.Contain("embedding").And.Contain("output_bias"));

        var layer = new Lstm(2, 3, numLayers: 2, seed: 7);
        using var loaded = new RecurrentSequenceModel(layer, 4, loss, seed: 7);
        loaded.Load(path);
        Assert.That(loaded.Parameters.Values.ToArray(), Is.EqualTo(saved.Parameters.Values.ToArray()));
        Assert.That(layer.Parameters.Values.ToArray(), Is.EqualTo(saved.Recurrent.Parameters.Values.ToArray()), "the stack loaded with the model");
        Assert.That(loaded.Train(targets), Is.EqualTo(saved.Train(targets)));
    }

    [Test]
    public void RecurrentSequenceModel_Load_RefusesAFileSavedAroundAnotherCellOfTheSameShapes()
    {
        using var saved = new RecurrentSequenceModel(new Gru(2, 3, variant: GruVariant.ResetAfter), 4, SequenceLoss.SoftmaxCrossEntropy);
        string path = PathOf("model.safetensors");
        saved.Save(path);
        using var other = new RecurrentSequenceModel(new Gru(2, 3, variant: GruVariant.ResetBefore), 4, SequenceLoss.SoftmaxCrossEntropy);
        Assert.That(() => other.Load(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("GruResetAfter").And.Message.Contains("GruResetBefore"));
    }

    [TestCase(0)]
    [TestCase(3)]
    public void OutputRecurrentNetwork_SaveThenLoad_RoundTrips(int inputSize)
    {
        using var saved = new OutputRecurrentNetwork(inputSize, 4, 5, SequenceLoss.SoftmaxCrossEntropy, seed: 1);
        string path = PathOf("network.safetensors");
        saved.Save(path);
        Assert.That(SafeTensors.Read(path).Keys, Is.EqualTo(new[] { "input_weight", "feedback_weight", "hidden_bias", "output_weight", "output_bias" }));
        using var loaded = new OutputRecurrentNetwork(inputSize, 4, 5, SequenceLoss.SoftmaxCrossEntropy, seed: 2);
        loaded.Load(path);
        Assert.That(loaded.Parameters.Values.ToArray(), Is.EqualTo(saved.Parameters.Values.ToArray()));
        var x = inputSize == 0 ? null : new FloatTensor(TestData.UniformSingle(new Random(2), 3 * 2 * inputSize), 3, 2, inputSize);
        var targets = SequenceTargets.Tokens([1, 2, 3, 0, 4, 2], 3, 2);
        Assert.That(loaded.Train(x, targets), Is.EqualTo(saved.Train(x, targets)));

        using var relu = new OutputRecurrentNetwork(inputSize, 4, 5, SequenceLoss.SoftmaxCrossEntropy, RnnActivation.Relu);
        Assert.That(() => relu.Load(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("Tanh").And.Message.Contains("Relu"));
    }

    // ---------------------------------------------------------------------------------------------------------
    // New parameter kinds
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void ACellWithAFifthParameter_NeedsNoEnum_ItsSpecIsFoundByPosition()
    {
        // An LSTM with peephole weights, as a later cell would declare it: the specs are the whole description.
        var peephole = new ParameterSpec("weight_ch", s => [3 * s.Hidden]);
        var definition = new CellDefinition(CellKind.Lstm, "LSTM", ["i", "f", "g", "o"], ["h", "c"], [.. ParameterSpec.RnnBase, peephole]);
        Assert.That(definition.IndexOf(peephole), Is.EqualTo(4));
        var sizes = new LayerShape(4, 5, 3);
        var set = new ParameterSet(definition.Parameters.Select(spec => (spec.Name(0, 0), spec.Shape(sizes))));
        Assert.That(set["weight_ch_l0"].Shape, Is.EqualTo(new[] { 15 }));
        Assert.That(set["weight_ch_l0"].Offset, Is.EqualTo(set.Values.Length - 15), "after the four every cell has");
    }
}
