using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// One case of Data/pytorch, written by scripts/make_reference_data.py: <c>{name}.params.safetensors</c> is the
/// module's state_dict, <c>{name}.data.safetensors</c> holds x, h0, c0, the outputs, the loss seeds dy, dhN, dcN and
/// PyTorch's gradients dx, dh0, dc0 and <c>grad.{parameter}</c>.
/// </summary>
public sealed record PyTorchCase(string Name, CellKind Cell, int Input, int Hidden, int Layers, bool Bidirectional)
{
    /// <summary>Whether PyTorch computed in float64 (else float32).</summary>
    public bool Float64 => Name.EndsWith("_f64", StringComparison.Ordinal);

    internal Tolerance Tolerance => Float64 ? Tolerances.PyTorchFloat64 : Tolerances.PyTorchFloat32;

    public RnnConfig Config => new(Cell, Input, Hidden, Layers, Bidirectional);

    public string ParamsPath => PyTorchData.PathOf($"{Name}.params.safetensors");

    public IReadOnlyDictionary<string, FloatTensor> Data => SafeTensors.Read(PyTorchData.PathOf($"{Name}.data.safetensors"));

    /// <summary>A layer of this case's configuration, its parameters loaded from the PyTorch file.</summary>
    public RecurrentLayer LoadLayer(IRnnBackend? backend = null)
    {
        var layer = PyTorchData.CreateLayer(Config, backend);
        layer.Load(ParamsPath);
        return layer;
    }

    public override string ToString() => Name;
}

/// <summary>The PyTorch reference data: where it is and which cases it holds.</summary>
public static class PyTorchData
{
    public static string PathOf(string file) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Data", "pytorch", file);

    /// <summary>Every case the script writes, with the configuration the test expects of it.</summary>
    public static readonly PyTorchCase[] Cases =
    [
        new("lstm_l2_bi_f64", CellKind.Lstm, 5, 3, 2, true),
        new("lstm_l1_t1_f64", CellKind.Lstm, 4, 7, 1, false),
        new("gru_l2_bi_f64", CellKind.GruResetAfter, 2, 5, 2, true),
        new("gru_l1_n1_f64", CellKind.GruResetAfter, 6, 3, 1, false),
        new("gru_reset_before_l2_bi_f64", CellKind.GruResetBefore, 5, 3, 2, true),
        new("gru_reset_before_l1_n1_f64", CellKind.GruResetBefore, 3, 5, 1, false),
        new("rnn_tanh_l2_bi_f64", CellKind.RnnTanh, 4, 3, 2, true),
        new("rnn_tanh_l1_t1_f64", CellKind.RnnTanh, 3, 5, 1, false),
        new("rnn_relu_l2_bi_f64", CellKind.RnnRelu, 3, 4, 2, true),
        new("rnn_relu_l1_n1_f64", CellKind.RnnRelu, 5, 2, 1, false),
        new("lstm_l2_bi_f32", CellKind.Lstm, 17, 9, 2, true),
    ];

    /// <summary>The public layer class for a configuration.</summary>
    public static RecurrentLayer CreateLayer(RnnConfig config, IRnnBackend? backend = null, int seed = 0) => TestLayers.Create(config, backend, seed);

    internal static double[] Widen(FloatTensor t) => Array.ConvertAll(t.ToArray(), v => (double)v);
}

/// <summary>
/// The reference in double and the layer API on the reference backend against values PyTorch computed
/// (scripts/make_reference_data.py): outputs, final states, input and state gradients and every parameter gradient.
/// </summary>
[TestFixture]
public class PyTorchParityTests
{
    private static IEnumerable<TestCaseData> Cases() =>
        PyTorchData.Cases.Select(c => new TestCaseData(c).SetArgDisplayNames(c.Name));

    /// <summary>What the reference computed for a case (with per-sequence lengths when given), in double, named as in the data file.</summary>
    internal static Dictionary<string, double[]> RunReference(PyTorchCase testCase, IReadOnlyDictionary<string, FloatTensor> data, ReferenceWeights weights, int[]? lengths = null)
    {
        var x = data["x"];
        bool hasCell = testCase.Cell.HasCellState();
        var forward = ReferenceRnn.Forward(weights, PyTorchData.Widen(x), x.Shape[0], x.Shape[1],
            PyTorchData.Widen(data["h0"]), hasCell ? PyTorchData.Widen(data["c0"]) : null, lengths);
        var grads = ReferenceRnn.Backward(forward, PyTorchData.Widen(data["dy"]), PyTorchData.Widen(data["dhN"]),
            hasCell ? PyTorchData.Widen(data["dcN"]) : null);
        var result = new Dictionary<string, double[]>
        {
            ["y"] = forward.Output, ["hN"] = forward.HiddenN, ["dx"] = grads.Input, ["dh0"] = grads.HiddenZero,
        };
        if (hasCell) (result["cN"], result["dc0"]) = (forward.CellN!, grads.CellZero!);
        var names = testCase.Config.Parameters().Select(p => p.Name).ToArray();
        for (int i = 0; i < names.Length; i++) result["grad." + names[i]] = grads.Weights.Values[i];
        return result;
    }

    private static Dictionary<string, double[]> RunLayer(PyTorchCase testCase, IReadOnlyDictionary<string, FloatTensor> data, RecurrentLayer layer)
    {
        bool hasCell = testCase.Cell.HasCellState();
        layer.ZeroGrad();
        using var forward = layer.Forward(data["x"], data["h0"], hasCell ? data["c0"] : null, keepForBackward: true);
        var grads = layer.Backward(forward, data["dy"], data["dhN"], hasCell ? data["dcN"] : null);
        var result = new Dictionary<string, double[]>
        {
            ["y"] = PyTorchData.Widen(forward.Output), ["hN"] = PyTorchData.Widen(forward.HiddenState),
            ["dx"] = PyTorchData.Widen(grads.Input), ["dh0"] = PyTorchData.Widen(grads.InitialHidden),
        };
        if (hasCell) (result["cN"], result["dc0"]) = (PyTorchData.Widen(forward.CellState!), PyTorchData.Widen(grads.InitialCell!));
        foreach (var p in layer.Parameters.All) result["grad." + p.Name] = PyTorchData.Widen(p.Grad);
        return result;
    }

    /// <summary>Every tensor the data file holds for a result of the forward or backward pass.</summary>
    private static IEnumerable<string> ResultNames(PyTorchCase testCase)
    {
        var names = new List<string> { "y", "hN", "dx", "dh0" };
        if (testCase.Cell.HasCellState()) names.AddRange(["cN", "dc0"]);
        names.AddRange(testCase.Config.Parameters().Select(p => "grad." + p.Name));
        return names;
    }

    private static void AssertMatchesPyTorch(PyTorchCase testCase, IReadOnlyDictionary<string, FloatTensor> data, Dictionary<string, double[]> actual,
        Tolerance? tolerance = null)
    {
        Assert.Multiple(() =>
        {
            foreach (var name in ResultNames(testCase))
            {
                Assert.That(data.ContainsKey(name), $"{testCase.Name}: the data file has no '{name}'");
                Assertions.AllClose(actual[name], PyTorchData.Widen(data[name]), tolerance ?? testCase.Tolerance, $"{testCase.Name}: {name}");
            }
        });
    }

    [TestCaseSource(nameof(Cases))]
    public void Reference_MatchesPyTorch_ValuesAndEveryGradient(PyTorchCase testCase)
    {
        var data = testCase.Data;
        var layer = testCase.LoadLayer();
        var x = data["x"];
        Assert.That(x.Shape[2], Is.EqualTo(testCase.Input), "x's features");
        AssertMatchesPyTorch(testCase, data, RunReference(testCase, data, ReferenceWeights.From(layer.Parameters)));
    }

    [TestCaseSource(nameof(Cases))]
    public void LayerApi_OnReferenceBackend_MatchesPyTorch_ValuesAndEveryGradient(PyTorchCase testCase) =>
        AssertLayerMatchesPyTorch(testCase, ReferenceBackend.Instance);

    [TestCaseSource(nameof(Cases))]
    public void LayerApi_OnNativeBackend_MatchesPyTorch_ValuesAndEveryGradient(PyTorchCase testCase)
    {
        AssertLayerMatchesPyTorch(testCase, new NativeCpuBackend(fused: true), Tolerances.Float32);
        AssertLayerMatchesPyTorch(testCase, new NativeCpuBackend(fused: false), Tolerances.Float32);
    }

    /// <summary>
    /// Loads the case's PyTorch parameters into a layer on <paramref name="backend"/>, runs forward and backward
    /// from the case's x, h0, c0, dy, dhN, dcN, and compares outputs and every gradient with PyTorch's. Fast backends
    /// reuse it with their own tolerance (for a float32 backend, <see cref="Tolerances.Float32"/>).
    /// </summary>
    internal static void AssertLayerMatchesPyTorch(PyTorchCase testCase, IRnnBackend backend, Tolerance? tolerance = null)
    {
        var data = testCase.Data;
        var layer = testCase.LoadLayer(backend);
        AssertMatchesPyTorch(testCase, data, RunLayer(testCase, data, layer), tolerance);
    }

    [Test]
    public void Data_CoversEveryCellWithTwoLayersBidirectionalAndOneLayerWithSingleStepOrBatch()
    {
        foreach (var cell in Enum.GetValues<CellKind>())
        {
            var cases = PyTorchData.Cases.Where(c => c.Cell == cell && c.Float64).ToArray();
            Assert.That(cases.Any(c => c.Layers == 2 && c.Bidirectional), $"{cell}: a two-layer bidirectional case");
            Assert.That(cases.Any(c => c.Layers == 1 && c.Input != c.Hidden && (c.Data["x"].Shape[0] == 1 || c.Data["x"].Shape[1] == 1)),
                $"{cell}: a one-layer case with T=1 or N=1 and I ≠ H");
        }
    }

    /// <summary>
    /// The comparison must be able to fail: with the gate blocks of every weight and bias permuted (LSTM i↔f and g↔o,
    /// GRU r↔z), with the other GRU form or the other RNN activation, the reference disagrees with PyTorch.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void Comparison_FailsForAWrongGateOrderOrCell(PyTorchCase testCase)
    {
        var data = testCase.Data;
        var layer = testCase.LoadLayer();
        var variants = new List<(string What, ReferenceWeights Weights)>();
        if (testCase.Config.GateCount > 1)
        {
            var permuted = ReferenceWeights.From(layer.Parameters);
            int[] order = testCase.Config.GateCount == 4 ? [1, 0, 3, 2] : [1, 0, 2];
            for (int i = 0; i < permuted.Values.Length; i++) permuted.Values[i] = PermuteGateBlocks(permuted.Values[i], order, testCase.Hidden);
            variants.Add(("gate blocks permuted", permuted));
        }
        CellKind? other = testCase.Cell switch
        {
            CellKind.GruResetAfter => CellKind.GruResetBefore,
            CellKind.GruResetBefore => CellKind.GruResetAfter,
            CellKind.RnnTanh => CellKind.RnnRelu,
            CellKind.RnnRelu => CellKind.RnnTanh,
            _ => null,
        };
        if (other is CellKind otherCell)
        {
            var weights = new ReferenceWeights(new RnnConfig(otherCell, testCase.Input, testCase.Hidden, testCase.Layers, testCase.Bidirectional));
            var source = ReferenceWeights.From(layer.Parameters);
            for (int i = 0; i < weights.Values.Length; i++) weights.Values[i] = source.Values[i];
            variants.Add(($"computed as {otherCell}", weights));
        }
        if (variants.Count == 0) Assert.Ignore("a single-gate cell without another form");

        foreach (var (what, weights) in variants)
        {
            var wrong = RunReference(testCase, data, weights);
            bool anyRejected = ResultNames(testCase).Any(name =>
                wrong[name].Zip(data[name].ToArray(), (a, e) => !testCase.Tolerance.Accepts(a, e)).Any(rejected => rejected));
            double largest = ResultNames(testCase).Max(name => wrong[name].Zip(data[name].ToArray(), (a, e) => Math.Abs(a - e)).Max());
            TestContext.Out.WriteLine($"{testCase.Name}: with {what} the largest error is {largest:g3}");
            Assert.That(anyRejected, $"{testCase.Name}: with {what} the results still pass; the comparison cannot catch that error");
        }
    }

    /// <summary>Reorders the G blocks of H rows of a [G·H, cols] weight or [G·H] bias.</summary>
    private static double[] PermuteGateBlocks(double[] values, int[] order, int hidden)
    {
        int block = values.Length / order.Length;
        Assert.That(block % hidden, Is.Zero);
        var result = new double[values.Length];
        for (int g = 0; g < order.Length; g++) Array.Copy(values, order[g] * block, result, g * block, block);
        return result;
    }

    /// <summary>Reports the largest error against PyTorch's float32 case, the number behind <see cref="Tolerances.PyTorchFloat32"/>.</summary>
    [Test]
    public void Float32Case_LargestErrorIsWellInsideTheTolerance()
    {
        var testCase = PyTorchData.Cases.Single(c => !c.Float64);
        var data = testCase.Data;
        var actual = RunReference(testCase, data, ReferenceWeights.From(testCase.LoadLayer().Parameters));
        double worstAbsolute = 0, worstRelative = 0;
        foreach (var name in ResultNames(testCase))
        {
            var expected = data[name].ToArray();
            for (int i = 0; i < expected.Length; i++)
            {
                double error = Math.Abs(actual[name][i] - expected[i]);
                worstAbsolute = Math.Max(worstAbsolute, error);
                worstRelative = Math.Max(worstRelative, error / Math.Max(Math.Abs(expected[i]), 1e-3));
            }
        }
        TestContext.Out.WriteLine($"{testCase.Name}: largest |reference − PyTorch float32| = {worstAbsolute:g3}, relative (floor 1e-3) {worstRelative:g3}");
        Assert.That(worstAbsolute, Is.LessThan(Tolerances.PyTorchFloat32.Absolute / 4),
            "PyTorch's float32 error grew; the tolerance's margin is smaller than documented");
    }
}
