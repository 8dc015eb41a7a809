using NUnit.Framework;
using Recurrent.Bench.Peers;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// The benchmark's peers compute the same function as Recurrent: each peer's output (and oneDNN's gradients)
/// against the double-precision reference on the same weights and input.
/// </summary>
[TestFixture]
public class PeerTests
{
    /// <summary>Single layer shapes (what peers run): T=1/N=1/H=1, I ≠ H, sizes off the vector width, both directions.</summary>
    private static readonly TestData.Shape[] Shapes =
    [
        new(1, 1, 1, 1, 1, false),
        new(5, 3, 7, 17, 1, false),
        new(4, 2, 33, 5, 1, true),
        new(9, 4, 65, 33, 1, false),
    ];

    /// <summary>Every cell at every shape, named for the peer.</summary>
    private static IEnumerable<TestCaseData> Cases(string peer) =>
        from cell in TestData.AllCells
        from shape in Shapes
        select new TestCaseData(cell, shape).SetName($"{peer}_MatchesReference_{cell}_{shape}");

    private static IEnumerable<TestCaseData> OneDnnCases() => Cases("OneDnn");

    [TestCaseSource(nameof(OneDnnCases))]
    public void OneDnn_InferenceAndTraining_MatchReference(CellKind cell, TestData.Shape shape)
    {
        using var peer = OneDnnOrIgnore();
        Assert.That(peer.Supports(cell), Is.True, $"oneDNN computes {cell}");
        var (parameters, x, forward) = Setup(cell, shape);

        using (var inference = peer.Prepare(parameters, x, training: false))
        {
            inference.Run();
            Assertions.AllClose(inference.Output.ToArray(), forward.Output, Tolerances.Float32, "y (inference)");
        }

        var random = new Random(77);
        var dy = new FloatTensor(TestData.UniformSingle(random, shape.Steps * shape.Batch * parameters.Config.OutputSize), shape.Steps, shape.Batch, parameters.Config.OutputSize);
        using var training = peer.Prepare(parameters, x, training: true, dy);
        // Twice: the second run must give the same gradients, not their sum.
        training.Run();
        training.Run();
        Assertions.AllClose(training.Output.ToArray(), forward.Output, Tolerances.Float32, "y (training)");
        var expected = ReferenceRnn.Backward(forward, Array.ConvertAll(dy.ToArray(), v => (double)v));
        Assertions.AllClose(training.InputGradient.ToArray(), expected.Input, Tolerances.Float32, "dx");
        var gradients = new RnnParameters(parameters.Config);
        training.CopyParameterGradientsTo(gradients);
        for (int p = 0; p < gradients.All.Count; p++)
            Assertions.AllClose(gradients.All[p].Grad.ToArray(), expected.Weights.Values[p], Tolerances.Float32, gradients.All[p].Name);
    }

    private static IEnumerable<TestCaseData> OnnxRuntimeCases() => Cases("OnnxRuntime");

    [TestCaseSource(nameof(OnnxRuntimeCases))]
    public void OnnxRuntime_Inference_MatchesReference(CellKind cell, TestData.Shape shape)
    {
        Assert.That(OnnxRuntimePeer.TryCreate(out var created, out var unavailable), Is.True, unavailable?.Reason);
        using var peer = created!;
        Assert.That(peer.Supports(cell), Is.True, $"ONNX Runtime computes {cell}");
        var (parameters, x, forward) = Setup(cell, shape);
        using var run = peer.Prepare(parameters, x, training: false);
        run.Run();
        Assertions.AllClose(run.Output.ToArray(), forward.Output, Tolerances.Float32, "y");
    }

    /// <summary>The peer runs the library's ONNX export, which writes stacks as chains of nodes: a stack runs too.</summary>
    [Test]
    public void OnnxRuntime_Stack_MatchesReference()
    {
        Assert.That(OnnxRuntimePeer.TryCreate(out var created, out var unavailable), Is.True, unavailable?.Reason);
        using var peer = created!;
        var (parameters, x, forward) = Setup(CellKind.Lstm, new TestData.Shape(4, 3, 5, 6, 2, true));
        using var run = peer.Prepare(parameters, x, training: false);
        run.Run();
        Assertions.AllClose(run.Output.ToArray(), forward.Output, Tolerances.Float32, "y");
    }

    [Test]
    public void OnnxRuntime_ReportsVersionAndRefusesTraining()
    {
        Assert.That(OnnxRuntimePeer.TryCreate(out var created, out var unavailable), Is.True, unavailable?.Reason);
        using var peer = created!;
        Assert.That(peer.Name, Does.Match(@"^ONNX Runtime \d+\.\d+\.\d+$"));
        Assert.That(peer.SupportsTraining, Is.False);
        var single = new RnnParameters(new RnnConfig(CellKind.GruResetAfter, 3, 4));
        Assert.Throws<NotSupportedException>(() => peer.Prepare(single, new FloatTensor(2, 1, 3), training: true));
        var e = Assert.Throws<ArgumentException>(() => peer.Prepare(single, new FloatTensor(2, 1, 5), training: false));
        Assert.That(e!.ParamName, Is.EqualTo("x"));
    }

    [Test]
    public void OneDnn_ReportsVersionAndRefusesStacks()
    {
        using var peer = OneDnnOrIgnore();
        Assert.That(peer.Name, Does.Match(@"^oneDNN \d+\.\d+\.\d+$"));
        Assert.That(peer.SupportsTraining, Is.True);
        var parameters = new RnnParameters(new RnnConfig(CellKind.Lstm, 3, 4, numLayers: 2));
        Assert.Throws<NotSupportedException>(() => peer.Prepare(parameters, new FloatTensor(2, 1, 3), training: false));
        var single = new RnnParameters(new RnnConfig(CellKind.Lstm, 3, 4));
        var e = Assert.Throws<ArgumentException>(() => peer.Prepare(single, new FloatTensor(2, 1, 5), training: false));
        Assert.That(e!.ParamName, Is.EqualTo("x"));
    }

    [Test]
    public void OneDnn_WhenLibraryIsAbsent_IsUnavailableWithReasonAndHint()
    {
        bool loaded = OneDnnPeer.TryCreate("libdnnl-that-does-not-exist.so.2", out var peer, out var unavailable);
        Assert.That(loaded, Is.False);
        Assert.That(peer, Is.Null);
        Assert.That(unavailable!.Reason, Does.Contain("libdnnl-that-does-not-exist.so.2"));
        Assert.That(unavailable.InstallHint, Is.EqualTo("sudo apt-get install libdnnl-dev"));
    }

    [Test]
    public void Catalog_ListsEveryPeerOnceAsAvailableOrUnavailable()
    {
        var (available, unavailable) = PeerCatalog.Load();
        try
        {
            var names = available.Select(p => p.Name.Split(' ')[0]).Concat(unavailable.Select(u => u.Name.Split(' ')[0])).ToList();
            Assert.That(names, Is.EquivalentTo(new[] { "oneDNN", "ONNX" }));
            foreach (var u in unavailable)
                Assert.That(u.Reason, Is.Not.Empty, u.Name);
        }
        finally
        {
            foreach (var p in available) p.Dispose();
        }
    }

    private static OneDnnPeer OneDnnOrIgnore()
    {
        if (!OneDnnPeer.TryCreate(out var peer, out var unavailable))
            Assert.Ignore($"oneDNN is not installed here ({unavailable!.Reason}); {unavailable.InstallHint}");
        return peer!;
    }

    /// <summary>Seeded weights (larger than PyTorch's init, so gates saturate somewhat), x, and the reference's forward pass.</summary>
    private static (RnnParameters Parameters, FloatTensor X, ReferenceForward Forward) Setup(CellKind cell, TestData.Shape shape)
    {
        var config = shape.Config(cell);
        var random = new Random(4321 + (int)cell);
        var parameters = new RnnParameters(config);
        foreach (var p in parameters.All)
            TestData.UniformSingle(random, p.Value.Length, 0.8).CopyTo(p.Value.Span);
        var x = new FloatTensor(TestData.UniformSingle(random, shape.Steps * shape.Batch * shape.Input), shape.Steps, shape.Batch, shape.Input);
        var forward = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Array.ConvertAll(x.ToArray(), v => (double)v), shape.Steps, shape.Batch);
        return (parameters, x, forward);
    }
}
