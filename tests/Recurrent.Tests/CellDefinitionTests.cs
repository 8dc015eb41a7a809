using System.Text.Json;
using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// The cells as units: every <see cref="CellKind"/> has a definition and a reference step registered, and the definitions
/// say what PyTorch says of the cell (gate order, states, parameter names and shapes).
/// </summary>
[TestFixture]
public class CellDefinitionTests
{
    // Enum.GetValues rather than a list here: a value added to CellKind without its registrations fails these tests.
    private static readonly CellKind[] Kinds = Enum.GetValues<CellKind>();

    [TestCaseSource(nameof(Kinds))]
    public void EveryCellKind_HasADefinitionRegistered(CellKind cell)
    {
        Assert.That(CellDefinitions.IsRegistered(cell), Is.True, $"{cell} has no CellDefinition in CellDefinitions.All");
        Assert.That(cell.Definition().Kind, Is.EqualTo(cell));
    }

    [TestCaseSource(nameof(Kinds))]
    public void EveryCellKind_HasAReferenceImplementationRegistered(CellKind cell)
    {
        Assert.That(ReferenceCells.IsRegistered(cell), Is.True, $"{cell} has no IReferenceCell in ReferenceCells.All");
        Assert.That(ReferenceCells.For(cell).Kind, Is.EqualTo(cell));
    }

    [Test]
    public void Registries_HoldEachCellKindOnce_AndNoOtherValue()
    {
        Assert.That(CellDefinitions.All.Select(d => d.Kind), Is.EquivalentTo(Kinds).And.Unique);
        Assert.That(ReferenceCells.All.Select(c => c.Kind), Is.EquivalentTo(Kinds).And.Unique);
    }

    [Test]
    public void AnUnregisteredCellKind_IsRefusedEverywhere()
    {
        var unknown = (CellKind)Kinds.Max(k => (int)k + 1);
        Assert.That(CellDefinitions.IsRegistered(unknown), Is.False);
        Assert.That(CellDefinitions.IsRegistered((CellKind)(-1)), Is.False);
        Assert.That(() => unknown.Definition(), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => unknown.GateCount(), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => unknown.HasCellState(), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => new RnnConfig(unknown, 3, 4), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => ReferenceCells.For(unknown), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    // PyTorch's gate blocks: nn.LSTM's docs (W_ii|W_if|W_ig|W_io), nn.GRU's (W_ir|W_iz|W_in); nn.RNN has one block.
    [TestCase(CellKind.RnnTanh, "RNN", new[] { "h" }, new[] { "h" })]
    [TestCase(CellKind.RnnRelu, "RNN", new[] { "h" }, new[] { "h" })]
    [TestCase(CellKind.Lstm, "LSTM", new[] { "i", "f", "g", "o" }, new[] { "h", "c" })]
    [TestCase(CellKind.GruResetAfter, "GRU", new[] { "r", "z", "n" }, new[] { "h" })]
    [TestCase(CellKind.GruResetBefore, "GRU", new[] { "r", "z", "n" }, new[] { "h" })]
    public void Definition_HasPyTorchsGateOrderAndStates(CellKind cell, string module, string[] gates, string[] states)
    {
        var definition = cell.Definition();
        Assert.That(definition.PyTorchModule, Is.EqualTo(module));
        Assert.That(definition.Gates, Is.EqualTo(gates));
        Assert.That(definition.GateCount, Is.EqualTo(gates.Length));
        Assert.That(cell.GateCount(), Is.EqualTo(gates.Length));
        Assert.That(definition.States, Is.EqualTo(states));
        Assert.That(cell.HasCellState(), Is.EqualTo(states.Contains("c")));
    }

    /// <summary>
    /// The specs alone, without RnnConfig, give what PyTorch 1.13 lists in named_parameters() for a 2-layer bidirectional
    /// stack (Data/pytorch/named_parameters.json); the gate count is read back from PyTorch's weight_ih rows.
    /// </summary>
    [TestCaseSource(nameof(Kinds))]
    public void ParameterSpecs_GivePyTorchsNamesShapesAndOrder(CellKind cell)
    {
        var definition = cell.Definition();
        using var json = JsonDocument.Parse(File.ReadAllText(PyTorchData.PathOf("named_parameters.json")));
        var entry = json.RootElement.GetProperty(definition.PyTorchModule);
        int input = entry.GetProperty("input_size").GetInt32(), hidden = entry.GetProperty("hidden_size").GetInt32();
        int layers = entry.GetProperty("num_layers").GetInt32(), directions = entry.GetProperty("bidirectional").GetBoolean() ? 2 : 1;
        var expected = entry.GetProperty("named_parameters").EnumerateArray()
            .Select(p => (p.GetProperty("name").GetString()!, FloatTensor.FormatShape(p.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()))))
            .ToArray();

        var actual = new List<(string, string)>();
        for (int layer = 0; layer < layers; layer++)
            for (int direction = 0; direction < directions; direction++)
                foreach (var spec in definition.Parameters)
                {
                    var sizes = new LayerShape(definition.GateCount, hidden, layer == 0 ? input : directions * hidden);
                    actual.Add((spec.Name(layer, direction), FloatTensor.FormatShape(spec.Shape(sizes))));
                }

        Assert.That(actual, Is.EqualTo(expected));
        int pyTorchGateRows = entry.GetProperty("named_parameters")[0].GetProperty("shape")[0].GetInt32();
        Assert.That(definition.GateCount * hidden, Is.EqualTo(pyTorchGateRows), "G·H rows of weight_ih_l0");
    }

    [TestCaseSource(nameof(Kinds))]
    public void RnnConfig_ReadsNamesAndShapesFromTheDefinition(CellKind cell)
    {
        var config = new RnnConfig(cell, inputSize: 5, hiddenSize: 3, numLayers: 2, bidirectional: true);
        Assert.That(config.Definition, Is.SameAs(cell.Definition()));
        var specs = config.Definition.Parameters;
        var parameters = new RnnParameters(config);
        foreach (var (p, i) in config.Parameters().Select((p, i) => (p, i)))
        {
            Assert.That(specs, Does.Contain(p.Spec));
            Assert.That(p.Name, Is.EqualTo(p.Spec.Name(p.Layer, p.Direction)));
            Assert.That(p.Shape, Is.EqualTo(p.Spec.Shape(config.LayerSizes(p.Layer))));
            Assert.That(i % specs.Count, Is.EqualTo(config.Definition.IndexOf(p.Spec)), "each layer and direction lists the specs in order");
            Assert.That(parameters[p.Layer, p.Direction, p.Spec].Name, Is.EqualTo(p.Name));
        }
        Assert.That(config.Parameters().Count(), Is.EqualTo(2 * 2 * specs.Count));
        Assert.That(specs.Take(4), Is.EqualTo(ParameterSpec.RnnBase), "every cell lists PyTorch's four first");
        Assert.That(() => parameters[0, 0, specs.Count], Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    /// <summary>One reference step keeps and returns the states the definition lists, shaped [N·H], and gates [N·G·H].</summary>
    [TestCaseSource(nameof(Kinds))]
    public void ReferenceStep_CarriesTheDefinitionsStatesAndGates(CellKind cell)
    {
        const int batch = 2, hidden = 3, input = 4;
        var definition = cell.Definition();
        var config = new RnnConfig(cell, input, hidden);
        var random = new Random(5);
        var weights = TestData.RandomWeights(config, random).Direction(0, 0);
        int gh = definition.GateCount * hidden;
        double[][] states = definition.States.Select(_ => TestData.Uniform(random, batch * hidden)).ToArray();
        var implementation = ReferenceCells.For(cell);

        var step = implementation.Forward(weights, batch, hidden, TestData.Uniform(random, batch * gh), states);
        Assert.That(step.Start, Is.SameAs(states));
        Assert.That(step.End, Has.Length.EqualTo(definition.States.Count).And.All.Length.EqualTo(batch * hidden));
        Assert.That(step.Gates, Has.Length.EqualTo(batch * gh));

        var grads = new ReferenceWeights(config).Direction(0, 0);
        double[][] dEnd = definition.States.Select(_ => TestData.Uniform(random, batch * hidden)).ToArray();
        var dInput = new double[batch * gh];
        var dStart = implementation.Backward(weights, step, batch, hidden, dEnd, dInput, grads);
        Assert.That(dStart, Has.Length.EqualTo(definition.States.Count).And.All.Length.EqualTo(batch * hidden));
        Assert.That(dInput, Has.Some.Not.EqualTo(0.0));
        Assert.That(grads.WeightIH, Is.All.EqualTo(0.0), "the input side is the caller's");
        Assert.That(grads.BiasIH, Is.All.EqualTo(0.0), "the input side is the caller's");
        Assert.That(grads.WeightHH, Has.Some.Not.EqualTo(0.0));
    }

    [Test]
    public void Definition_RefusesACellWithoutGatesOrWithStatesNotLedByH()
    {
        ParameterSpec[] specs = [.. ParameterSpec.RnnBase];
        Assert.That(() => new CellDefinition(CellKind.Lstm, "LSTM", [], ["h"], specs), Throws.ArgumentException);
        Assert.That(() => new CellDefinition(CellKind.Lstm, "LSTM", ["i"], ["c", "h"], specs), Throws.ArgumentException);
        Assert.That(() => new CellDefinition(CellKind.Lstm, "LSTM", ["i"], ["h"], []), Throws.ArgumentException);
        Assert.That(() => new CellDefinition(CellKind.Lstm, "LSTM", ["i"], ["h"], [ParameterSpec.WeightIH, ParameterSpec.WeightIH]),
            Throws.ArgumentException);
    }
}
