using System.Text.Json;
using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>
/// The layer API's contract: PyTorch's parameter names, shapes and order; PyTorch's initialisation; every wrong
/// argument is an exception that names it and both shapes; Load changes nothing unless the whole file is valid.
/// </summary>
[TestFixture]
public class LayerApiTests
{
    // A two-layer bidirectional stack: I=3, H=4, so state [4, N, 4] and output [T, N, 8]; T=2, N=5.
    private const int Input = 3, Hidden = 4, Steps = 2, Batch = 5;

    private static RecurrentLayer Create(CellKind cell, int seed = 0) =>
        PyTorchData.CreateLayer(new RnnConfig(cell, Input, Hidden, 2, bidirectional: true), seed: seed);

    private static FloatTensor X(int steps = Steps, int batch = Batch) => new(TestData.UniformSingle(new Random(3), steps * batch * Input), steps, batch, Input);

    private static void AssertNamesArgumentAndShapes(Action call, string argument, string expected, string actual)
    {
        var error = Assert.Catch<ArgumentException>(() => call())!;
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.StartWith(argument + ":").And.Contain(expected).And.Contain(actual));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Forward arguments
    // ---------------------------------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> BadForwardArguments()
    {
        TestCaseData Case(string what, CellKind cell, Func<RecurrentLayer, RnnForwardResult> call, string argument, string expected, string actual) =>
            new TestCaseData(cell, call, argument, expected, actual).SetArgDisplayNames(what);
        yield return Case("x with I=4", CellKind.Lstm, l => l.Forward(new FloatTensor(Steps, Batch, 4)), "x", "[T, N, 3]", "[2, 5, 4]");
        yield return Case("x of rank 2", CellKind.Lstm, l => l.Forward(new FloatTensor(Steps, Input)), "x", "[T, N, 3]", "[2, 3]");
        yield return Case("x with T=0", CellKind.GruResetAfter, l => l.Forward(new FloatTensor(0, Batch, Input)), "x", "T ≥ 1", "[0, 5, 3]");
        yield return Case("x with N=0", CellKind.RnnTanh, l => l.Forward(new FloatTensor(Steps, 0, Input)), "x", "N ≥ 1", "[2, 0, 3]");
        yield return Case("h0 with H=3", CellKind.Lstm, l => l.Forward(X(), new FloatTensor(4, Batch, 3)), "h0", "[4, 5, 4]", "[4, 5, 3]");
        yield return Case("h0 of another batch", CellKind.GruResetBefore, l => l.Forward(X(), new FloatTensor(4, 6, Hidden)), "h0", "[4, 5, 4]", "[4, 6, 4]");
        yield return Case("h0 of one direction", CellKind.RnnRelu, l => l.Forward(X(), new FloatTensor(2, Batch, Hidden)), "h0", "[4, 5, 4]", "[2, 5, 4]");
        yield return Case("h0 of rank 2", CellKind.Lstm, l => l.Forward(X(), new FloatTensor(Batch, Hidden)), "h0", "[4, 5, 4]", "[5, 4]");
        yield return Case("c0 with N=1", CellKind.Lstm, l => l.Forward(X(), null, new FloatTensor(4, 1, Hidden)), "c0", "[4, 5, 4]", "[4, 1, 4]");
        yield return Case("c0 to a GRU", CellKind.GruResetAfter, l => l.Forward(X(), null, new FloatTensor(4, Batch, Hidden)), "c0", "no cell state", "GruResetAfter");
        yield return Case("c0 to an RNN", CellKind.RnnTanh, l => l.Forward(X(), null, new FloatTensor(4, Batch, Hidden)), "c0", "no cell state", "RnnTanh");
    }

    [TestCaseSource(nameof(BadForwardArguments))]
    public void Forward_WrongArgument_ThrowsArgumentExceptionNamingItAndBothShapes(
        CellKind cell, Func<RecurrentLayer, RnnForwardResult> call, string argument, string expected, string actual)
    {
        var layer = Create(cell);
        AssertNamesArgumentAndShapes(() => call(layer), argument, expected, actual);
    }

    [Test]
    public void Forward_NullInput_ThrowsArgumentNull()
    {
        Assert.That(() => Create(CellKind.Lstm).Forward(null!), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("x"));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Backward arguments
    // ---------------------------------------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> BadBackwardArguments()
    {
        TestCaseData Case(string what, CellKind cell, Func<RecurrentLayer, RnnForwardResult, RnnInputGradients> call, string argument, string expected, string actual) =>
            new TestCaseData(cell, call, argument, expected, actual).SetArgDisplayNames(what);
        yield return Case("dy with one direction", CellKind.Lstm, (l, f) => l.Backward(f, new FloatTensor(Steps, Batch, Hidden)), "dy", "[2, 5, 8]", "[2, 5, 4]");
        yield return Case("dy with T=3", CellKind.GruResetBefore, (l, f) => l.Backward(f, new FloatTensor(3, Batch, 8)), "dy", "[2, 5, 8]", "[3, 5, 8]");
        yield return Case("dhN with N=1", CellKind.RnnRelu, (l, f) => l.Backward(f, null, new FloatTensor(4, 1, Hidden)), "dhN", "[4, 5, 4]", "[4, 1, 4]");
        yield return Case("dcN with H=5", CellKind.Lstm, (l, f) => l.Backward(f, null, null, new FloatTensor(4, Batch, 5)), "dcN", "[4, 5, 4]", "[4, 5, 5]");
        yield return Case("dcN to a GRU", CellKind.GruResetAfter, (l, f) => l.Backward(f, null, null, new FloatTensor(4, Batch, Hidden)), "dcN", "no cell state", "GruResetAfter");
    }

    [TestCaseSource(nameof(BadBackwardArguments))]
    public void Backward_WrongArgument_ThrowsArgumentExceptionNamingItAndBothShapes_AndLeavesGradientsAlone(
        CellKind cell, Func<RecurrentLayer, RnnForwardResult, RnnInputGradients> call, string argument, string expected, string actual)
    {
        var layer = Create(cell);
        using var forward = layer.Forward(X(), keepForBackward: true);
        AssertNamesArgumentAndShapes(() => call(layer, forward), argument, expected, actual);
        Assert.That(layer.Parameters.All.All(p => p.Grad.ToArray().All(g => g == 0)), "no gradient was accumulated");
    }

    [Test]
    public void Backward_AfterAnInferenceOnlyForward_ThrowsInvalidOperation()
    {
        var layer = Create(CellKind.Lstm);
        using var forward = layer.Forward(X());
        Assert.That(forward.CanBackward, Is.False);
        Assert.That(() => layer.Backward(forward, forward.Output), Throws.InvalidOperationException.With.Message.Contains("keepForBackward"));
    }

    [Test]
    public void Backward_AfterDispose_ThrowsInvalidOperation()
    {
        var layer = Create(CellKind.GruResetAfter);
        var forward = layer.Forward(X(), keepForBackward: true);
        Assert.That(forward.CanBackward, Is.True);
        forward.Dispose();
        forward.Dispose();   // disposing twice is harmless
        Assert.That(forward.CanBackward, Is.False);
        Assert.That(() => layer.Backward(forward, forward.Output), Throws.InvalidOperationException.With.Message.Contains("disposed"));
    }

    [Test]
    public void Backward_FromAnotherLayersResult_ThrowsArgumentException()
    {
        var layer = Create(CellKind.Lstm);
        var twin = Create(CellKind.Lstm);   // same configuration and weights, still another layer
        using var forward = twin.Forward(X(), keepForBackward: true);
        Assert.That(() => layer.Backward(forward, forward.Output),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("forward").And.Message.Contains("another layer"));
        Assert.That(() => layer.Backward(null!, null), Throws.ArgumentNullException);
    }

    [TestCase(CellKind.Lstm)]
    [TestCase(CellKind.GruResetBefore)]
    public void ForwardAndBackward_LeaveTheirInputsUnchanged(CellKind cell)
    {
        var layer = Create(cell);
        var random = new Random(8);
        FloatTensor Random(params int[] shape) => new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);
        var inputs = new Dictionary<string, FloatTensor?>
        {
            ["x"] = Random(Steps, Batch, Input), ["h0"] = Random(4, Batch, Hidden), ["c0"] = cell.HasCellState() ? Random(4, Batch, Hidden) : null,
            ["dy"] = Random(Steps, Batch, 2 * Hidden), ["dhN"] = Random(4, Batch, Hidden), ["dcN"] = cell.HasCellState() ? Random(4, Batch, Hidden) : null,
        };
        var copies = inputs.ToDictionary(p => p.Key, p => p.Value?.Clone());
        using var forward = layer.Forward(inputs["x"]!, inputs["h0"], inputs["c0"], keepForBackward: true);
        layer.Backward(forward, inputs["dy"], inputs["dhN"], inputs["dcN"]);
        foreach (var (name, tensor) in inputs)
            if (tensor is not null) Assert.That(tensor.ToArray(), Is.EqualTo(copies[name]!.ToArray()), name);
    }

    [Test]
    public void Backward_WithoutAnyGradient_GivesZeros()
    {
        var layer = Create(CellKind.Lstm);
        using var forward = layer.Forward(X(), keepForBackward: true);
        var grads = layer.Backward(forward, null);
        Assert.That(grads.Input.ToArray().Concat(grads.InitialHidden.ToArray()).Concat(grads.InitialCell!.ToArray()).All(g => g == 0));
        Assert.That(layer.Parameters.All.All(p => p.Grad.ToArray().All(g => g == 0)));
        Assert.That(grads.Input.Shape, Is.EqualTo(new[] { Steps, Batch, Input }));
        Assert.That(grads.InitialCell.Shape, Is.EqualTo(new[] { 4, Batch, Hidden }));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Construction
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void LayerConstructors_ShareOneArgumentOrder_CellChoiceAfterTheSharedOnes()
    {
        static string[] Names(Type type) => type.GetConstructors().Single().GetParameters().Select(p => p.Name!).ToArray();
        string[] shared = ["inputSize", "hiddenSize", "numLayers", "bidirectional"];
        Assert.That(Names(typeof(Lstm)), Is.EqualTo(shared.Concat(["backend", "seed"])));
        Assert.That(Names(typeof(Gru)), Is.EqualTo(shared.Concat(["variant", "backend", "seed"])));
        Assert.That(Names(typeof(ElmanRnn)), Is.EqualTo(shared.Concat(["activation", "backend", "seed"])));
    }

    [Test]
    public void Gru_DefaultsToPyTorchsVariant_AndRefusesAnUnknownOne()
    {
        var variant = typeof(Gru).GetConstructors().Single().GetParameters().Single(p => p.ParameterType == typeof(GruVariant));
        Assert.That(variant.DefaultValue, Is.EqualTo(GruVariant.ResetAfter), "nn.GRU, cuDNN and ONNX linear_before_reset=1");
        Assert.That(new Gru(3, 4).Config.Cell, Is.EqualTo(CellKind.GruResetAfter));
        Assert.That(() => new Gru(3, 4, variant: (GruVariant)2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("variant"));
        Assert.That(() => new ElmanRnn(3, 4, activation: (RnnActivation)7), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("activation"));
    }

    [TestCase(0, 4, 1)]
    [TestCase(3, 0, 1)]
    [TestCase(3, 4, 0)]
    public void Constructor_NonPositiveSize_ThrowsArgumentOutOfRange(int input, int hidden, int layers)
    {
        Assert.That(() => new Lstm(input, hidden, layers), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    private static IEnumerable<TestCaseData> PyTorchModules() =>
    [
        new TestCaseData("LSTM", CellKind.Lstm).SetArgDisplayNames("LSTM", "Lstm"),
        new TestCaseData("GRU", CellKind.GruResetAfter).SetArgDisplayNames("GRU", "GruResetAfter"),
        new TestCaseData("GRU", CellKind.GruResetBefore).SetArgDisplayNames("GRU", "GruResetBefore"),
        new TestCaseData("RNN", CellKind.RnnTanh).SetArgDisplayNames("RNN", "RnnTanh"),
        new TestCaseData("RNN", CellKind.RnnRelu).SetArgDisplayNames("RNN", "RnnRelu"),
    ];

    /// <summary>The names, shapes and order PyTorch 1.13 lists in named_parameters() (Data/pytorch/named_parameters.json).</summary>
    [TestCaseSource(nameof(PyTorchModules))]
    public void Parameters_HavePyTorchsNamesShapesAndOrder(string module, CellKind cell)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(PyTorchData.PathOf("named_parameters.json")));
        var entry = json.RootElement.GetProperty(module);
        var config = new RnnConfig(cell, entry.GetProperty("input_size").GetInt32(), entry.GetProperty("hidden_size").GetInt32(),
            entry.GetProperty("num_layers").GetInt32(), entry.GetProperty("bidirectional").GetBoolean());
        var expected = entry.GetProperty("named_parameters").EnumerateArray()
            .Select(p => (p.GetProperty("name").GetString(), FloatTensor.FormatShape(p.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()))))
            .ToArray();
        Assert.That(expected, Has.Length.EqualTo(16), "two layers, two directions, four parameters each");

        var layer = PyTorchData.CreateLayer(config);
        Assert.That(layer.Parameters.All.Select(p => (p.Name, FloatTensor.FormatShape(p.Value.Shape))), Is.EqualTo(expected));
        Assert.That(config.Parameters().Select(p => (p.Name, FloatTensor.FormatShape(p.Shape))), Is.EqualTo(expected));
        foreach (var (p, spec) in layer.Parameters.All.Zip(config.Parameters()))
        {
            Assert.That(p.Grad.Shape, Is.EqualTo(p.Value.Shape), p.Name);
            Assert.That(layer.Parameters[spec.Layer, spec.Direction, spec.Spec], Is.SameAs(p), p.Name);
            Assert.That(layer.Parameters[p.Name], Is.SameAs(p), p.Name);
        }
    }

    [TestCase(CellKind.Lstm, 7)]
    [TestCase(CellKind.GruResetAfter, 1)]
    [TestCase(CellKind.RnnTanh, 33)]
    public void Initialisation_IsUniformWithinPlusMinusOneOverSqrtHidden_AndReproducibleWithASeed(CellKind cell, int hidden)
    {
        var config = new RnnConfig(cell, 5, hidden, 2, bidirectional: true);
        var layer = PyTorchData.CreateLayer(config, seed: 42);
        var same = PyTorchData.CreateLayer(config, seed: 42);
        var other = PyTorchData.CreateLayer(config, seed: 43);
        double bound = 1 / Math.Sqrt(hidden);
        var values = layer.Parameters.All.SelectMany(p => p.Value.ToArray()).ToArray();
        Assert.That(values.Max(Math.Abs), Is.LessThanOrEqualTo(bound));
        // Uniform over the whole range, not a narrower or shifted one. For n uniform draws, the largest stays below
        // bound·(1 − 20/n) with probability (1 − 10/n)ⁿ ≈ e⁻¹⁰, and the mean is off by five standard deviations
        // (bound/√(3n) each) about as rarely.
        int n = values.Length;
        Assert.That(values.Max(), Is.GreaterThan(bound * (1 - 20.0 / n)));
        Assert.That(values.Min(), Is.LessThan(-bound * (1 - 20.0 / n)));
        Assert.That(Math.Abs(values.Average()), Is.LessThan(5 * bound / Math.Sqrt(3 * n)));
        Assert.That(same.Parameters.All.SelectMany(p => p.Value.ToArray()), Is.EqualTo(values), "the same seed gives the same parameters");
        Assert.That(other.Parameters.All.SelectMany(p => p.Value.ToArray()), Is.Not.EqualTo(values), "another seed gives others");
        Assert.That(layer.Parameters.All.All(p => p.Grad.ToArray().All(g => g == 0)), "gradients start at zero");
    }

    [Test]
    public void ParameterIndexer_OutsideTheStack_ThrowsArgumentOutOfRange()
    {
        var parameters = new Lstm(Input, Hidden, numLayers: 2).Parameters;
        Assert.That(parameters[1, 0, ParameterSpec.BiasHH].Name, Is.EqualTo("bias_hh_l1"));
        Assert.That(parameters[1, 0, 3], Is.SameAs(parameters[1, 0, ParameterSpec.BiasHH]), "by the spec's position");
        Assert.That(() => parameters[0, 1, ParameterSpec.WeightIH], Throws.TypeOf<ArgumentOutOfRangeException>(), "a one-way stack has no direction 1");
        Assert.That(() => parameters[2, 0, ParameterSpec.WeightIH], Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => parameters[-1, 0, ParameterSpec.WeightIH], Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => parameters[0, 0, 4], Throws.TypeOf<ArgumentOutOfRangeException>());
        var foreign = new ParameterSpec("weight_hr", s => [s.Hidden, s.Hidden]);
        Assert.That(() => parameters[0, 0, foreign], Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("weight_hr"), "a spec the cell does not have");
        Assert.That(() => parameters["weight_ih_l2"], Throws.TypeOf<KeyNotFoundException>().With.Message.Contains("weight_ih_l2"));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Load
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Reset-after and reset-before GRUs (and tanh and relu RNNs) have the same parameter shapes: a file saved from
    /// one must not load silently into the other. Files without the record (PyTorch's) load into either.
    /// </summary>
    [TestCase(CellKind.GruResetBefore, CellKind.GruResetAfter)]
    [TestCase(CellKind.GruResetAfter, CellKind.GruResetBefore)]
    [TestCase(CellKind.RnnTanh, CellKind.RnnRelu)]
    public void Load_FileSavedFromAnotherCellOfTheSameShapes_ThrowsInvalidDataAndChangesNothing(CellKind saved, CellKind loading)
    {
        string path = Path.Combine(_folder, "saved.safetensors");
        Create(saved, seed: 1).Save(path);
        var layer = Create(loading, seed: 2);
        var before = layer.Parameters.All.SelectMany(p => p.Value.ToArray()).ToArray();
        Assert.That(() => layer.Load(path), Throws.TypeOf<InvalidDataException>()
            .With.Message.Contains(path).And.Message.Contains(saved.ToString()).And.Message.Contains(loading.ToString()));
        Assert.That(layer.Parameters.All.SelectMany(p => p.Value.ToArray()), Is.EqualTo(before));

        var withoutRecord = Path.Combine(_folder, "plain.safetensors");
        SafeTensors.Write(withoutRecord, SafeTensors.Read(path));
        layer.Load(withoutRecord);
        Assert.That(layer.Parameters.All.SelectMany(p => p.Value.ToArray()), Is.EqualTo(Create(saved, seed: 1).Parameters.All.SelectMany(p => p.Value.ToArray())));
    }

    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-layer-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>A file for an LSTM(3, 4) of one layer, changed by <paramref name="change"/>.</summary>
    private string WriteLstmFile(Action<Dictionary<string, FloatTensor>> change)
    {
        var source = new Lstm(Input, Hidden, seed: 9);
        var tensors = source.Parameters.All.ToDictionary(p => p.Name, p => p.Value.Clone());
        change(tensors);
        string path = Path.Combine(_folder, "lstm.safetensors");
        SafeTensors.Write(path, tensors);
        return path;
    }

    private static IEnumerable<TestCaseData> InvalidFiles()
    {
        TestCaseData Case(string what, Func<LayerApiTests, string> file, string? tensor, string fragment) =>
            new TestCaseData(file, tensor, fragment).SetArgDisplayNames(what);
        yield return Case("missing tensor", t => t.WriteLstmFile(d => d.Remove("bias_hh_l0")), "bias_hh_l0", "missing");
        yield return Case("extra tensor", t => t.WriteLstmFile(d => d["weight_ih_l1"] = new FloatTensor(16, 8)), "weight_ih_l1", "not a parameter");
        yield return Case("misshaped tensor", t => t.WriteLstmFile(d => d["weight_hh_l0"] = new FloatTensor(16, 3)), "weight_hh_l0", "[16, 3]");
        yield return Case("transposed tensor", t => t.WriteLstmFile(d => d["weight_ih_l0"] = new FloatTensor(3, 16)), "weight_ih_l0", "[16, 3]");
        yield return Case("NaN value", t => t.WriteLstmFile(d => d["bias_ih_l0"][5] = float.NaN), "bias_ih_l0", "finite");
        yield return Case("reverse direction for a one-way layer", t => t.WriteLstmFile(d => d["weight_ih_l0_reverse"] = new FloatTensor(16, 3)), "weight_ih_l0_reverse", "not a parameter");
        yield return Case("I64 tensor", t => SafeTensorsTests.WriteRaw(t._folder,
            "{\"weight_ih_l0\":{\"dtype\":\"I64\",\"shape\":[16,3],\"data_offsets\":[0,384]}}", 384), "weight_ih_l0", "I64");
        yield return Case("truncated body", t =>
        {
            string path = t.WriteLstmFile(_ => { });
            File.WriteAllBytes(path, File.ReadAllBytes(path)[..^10]);
            return path;
        }, "bias_hh_l0", "past the end");
        yield return Case("not JSON", t => SafeTensorsTests.WriteRaw(t._folder, "not json", 0), null, "JSON");
    }

    [TestCaseSource(nameof(InvalidFiles))]
    public void Load_InvalidFile_ThrowsInvalidDataNamingFileAndTensor_AndChangesNoParameter(Func<LayerApiTests, string> file, string? tensor, string fragment)
    {
        string path = file(this);
        var layer = new Lstm(Input, Hidden, seed: 1);
        var before = layer.Parameters.All.Select(p => p.Value.ToArray()).ToArray();
        var error = Assert.Throws<InvalidDataException>(() => layer.Load(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain(fragment));
        if (tensor is not null) Assert.That(error.Message, Does.Contain($"'{tensor}'"));
        for (int i = 0; i < before.Length; i++)
            Assert.That(layer.Parameters.All[i].Value.ToArray(), Is.EqualTo(before[i]), layer.Parameters.All[i].Name);
    }

    [Test]
    public void Load_ValidFile_ReplacesEveryParameter()
    {
        string path = WriteLstmFile(_ => { });
        var layer = new Lstm(Input, Hidden, seed: 1);
        layer.Load(path);
        var source = new Lstm(Input, Hidden, seed: 9);
        for (int i = 0; i < source.Parameters.All.Count; i++)
            Assert.That(layer.Parameters.All[i].Value.ToArray(), Is.EqualTo(source.Parameters.All[i].Value.ToArray()), source.Parameters.All[i].Name);
    }

    [TestCaseSource(typeof(TestData), nameof(TestData.AllCells))]
    public void Create_MakesTheLayerClassOfTheCell_WithTheConfigurationsSizes_AndItsSeededParameters(CellKind cell)
    {
        var config = new RnnConfig(cell, 3, 5, 2, true);
        var layer = RecurrentLayer.Create(config, ReferenceBackend.Instance, seed: 7);
        var expectedClass = cell switch
        {
            CellKind.Lstm => typeof(Lstm),
            CellKind.GruResetAfter or CellKind.GruResetBefore => typeof(Gru),
            _ => typeof(ElmanRnn),
        };
        Assert.That(layer, Is.TypeOf(expectedClass));
        Assert.That(layer.Config, Is.EqualTo(config));
        Assert.That(layer.Backend, Is.SameAs(ReferenceBackend.Instance));
        var again = RecurrentLayer.Create(config, seed: 7);
        Assert.That(again.Parameters.Values.ToArray(), Is.EqualTo(layer.Parameters.Values.ToArray()), "the seed decides the parameters");
    }
}

[TestFixture]
public class NonFiniteInputTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            foreach (string argument in new[] { "x", "h0", "c0", "dy", "dhN", "dcN" })
                foreach (int length in new[] { 1, 7, 40 })   // scalar tail, and past one vector width
                    yield return new TestCaseData(argument, bad, length).SetName($"NonFinite_{argument}_{bad}_InputSize{length}_IsRefusedNamingTheArgument");
    }

    [TestCaseSource(nameof(Cases))]
    public void NonFinite_IsRefusedNamingTheArgument(string argument, float bad, int inputSize)
    {
        var lstm = new Lstm(inputSize, 3, backend: ReferenceBackend.Instance);
        var x = new FloatTensor(2, 2, inputSize);
        var h0 = new FloatTensor(1, 2, 3);
        var c0 = new FloatTensor(1, 2, 3);
        var dy = new FloatTensor(2, 2, 3);
        var dhN = new FloatTensor(1, 2, 3);
        var dcN = new FloatTensor(1, 2, 3);
        var target = argument switch { "x" => x, "h0" => h0, "c0" => c0, "dy" => dy, "dhN" => dhN, _ => dcN };
        target.Span[^1] = bad;
        var e = Assert.Throws<ArgumentException>(() =>
        {
            using var result = lstm.Forward(x, h0, c0, keepForBackward: true);
            lstm.Backward(result, dy, dhN, dcN);
        })!;
        Assert.That(e.ParamName, Is.EqualTo(argument));
        Assert.That(e.Message, Does.Contain($"element {target.Length - 1}"));
    }

    [Test]
    public void Save_RefusesNonFiniteParameters_AndWritesNothing()
    {
        var gru = new Gru(3, 2, variant: GruVariant.ResetAfter, backend: ReferenceBackend.Instance);
        gru.Parameters["bias_hh_l0"].Value.Span[1] = float.NaN;
        string path = Path.Combine(Path.GetTempPath(), $"recurrent-nan-{Guid.NewGuid():N}.safetensors");
        var e = Assert.Throws<InvalidOperationException>(() => gru.Save(path))!;
        Assert.That(e.Message, Does.Contain("bias_hh_l0"));
        Assert.That(File.Exists(path), Is.False);
    }
}
