using NUnit.Framework;
using Recurrent.Kernels.Cpu;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>The native CPU backend, fused and unfused, on every instruction-set path, against the double reference.</summary>
[TestFixture]
public class NativeBackendTests
{
    /// <summary>
    /// T=1, N=1, H from 1 to 129 (not multiples of 8 or 16, so every vector remainder runs), I ≠ H, 1 and 2 layers, both
    /// directions. N=17 and N=9 with H=129 are large enough per step that, with two or more threads, the fused path splits
    /// the batch among the workers for the whole sequence (unevenly: 8 and 9 rows, 4 and 5), in both directions.
    /// </summary>
    public static readonly TestData.Shape[] Shapes =
    [
        new(1, 1, 2, 1, 1, false),
        new(3, 2, 5, 3, 2, true),
        new(4, 1, 3, 17, 1, true),
        new(2, 3, 20, 33, 2, false),
        new(2, 2, 7, 65, 1, true),
        new(2, 2, 5, 129, 1, false),
        new(3, 17, 33, 129, 1, true),
        new(2, 9, 6, 129, 1, false),
    ];

    /// <summary>Shapes for the narrower instruction sets: remainders of both widths, two layers, both directions.</summary>
    public static readonly TestData.Shape[] IsaShapes =
    [
        new(3, 2, 5, 17, 2, true),
        new(2, 3, 4, 33, 1, false),
    ];

    private static IEnumerable<TestCaseData> AllCases() =>
        from cell in TestData.AllCells
        from shape in Shapes
        from fused in new[] { true, false }
        select new TestCaseData(cell, shape, fused).SetArgDisplayNames(cell.ToString(), shape.ToString(), fused ? "fused" : "unfused");

    private static IEnumerable<TestCaseData> IsaCases() =>
        from isa in new[] { NativeIsa.Avx2, NativeIsa.Portable }
        from cell in TestData.AllCells
        from shape in IsaShapes
        from fused in new[] { true, false }
        select new TestCaseData(isa, cell, shape, fused).SetArgDisplayNames(isa.ToString(), cell.ToString(), shape.ToString(), fused ? "fused" : "unfused");

    [TestCaseSource(nameof(AllCases))]
    public void ForwardAndBackward_MatchReference(CellKind cell, TestData.Shape shape, bool fused) =>
        AssertMatchesReference(cell, shape, fused, seed: shape.Hidden * 31 + (int)cell);

    [TestCaseSource(nameof(IsaCases))]
    public void ForwardAndBackward_MatchReference_WhenIsaIsForcedNarrower(NativeIsa isa, CellKind cell, TestData.Shape shape, bool fused)
    {
        try
        {
            NativeLibrary.Isa = isa;
            Assert.That(NativeLibrary.Isa, Is.LessThanOrEqualTo(isa));
            AssertMatchesReference(cell, shape, fused, seed: 7 + (int)cell);
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
    }

    [TestCase(CellKind.Lstm, true)]
    [TestCase(CellKind.GruResetBefore, false)]
    [TestCase(CellKind.GruResetAfter, true)]
    [TestCase(CellKind.RnnTanh, false)]
    public void Backward_AccumulatesParameterGradients_WhenRunTwice(CellKind cell, bool fused)
    {
        var config = new RnnConfig(cell, 3, 5, numLayers: 2, bidirectional: true);
        var parameters = new RnnParameters(config);
        parameters.Reset(3);
        var random = new Random(4);
        var (x, h0, c0) = Inputs(config, 3, 2, random);
        var (dy, dhN, dcN) = Inputs(config, 3, 2, random, output: true);
        var backend = new NativeCpuBackend(fused);
        var (y, hN, cN) = Outputs(config, 3, 2);
        using var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true)!;
        var (dx, dh0, dc0) = Inputs(config, 3, 2, random);

        backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        var once = parameters.All.Select(p => (float[])p.Grad.Data.Clone()).ToArray();
        var dxOnce = (float[])dx.Data.Clone();
        backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);

        for (int i = 0; i < once.Length; i++)
            Assertions.AllClose(parameters.All[i].Grad.Data, once[i].Select(v => 2.0 * v).ToArray(), Tolerances.Float32, parameters.All[i].Name);
        Assert.That(dx.Data, Is.EqualTo(dxOnce), "dx is overwritten, not accumulated");
    }

    /// <summary>
    /// Buffers of 4 MiB and more are reused across calls without zeroing: a pass that read an element before writing it
    /// would see the previous call's data. T=128, N=128, H=16 makes the tape, projection and gate gradients that large.
    /// </summary>
    [TestCase(CellKind.Lstm, true)]
    [TestCase(CellKind.Lstm, false)]
    [TestCase(CellKind.GruResetAfter, true)]
    [TestCase(CellKind.GruResetBefore, false)]
    public void Results_DoNotDependOnReusedWorkspaces(CellKind cell, bool fused)
    {
        var config = new RnnConfig(cell, 1, 16);
        var parameters = new RnnParameters(config);
        parameters.Reset(8);
        var backend = new NativeCpuBackend(fused);
        float[][] Run(int seed)
        {
            var random = new Random(seed);
            var (x, h0, c0) = Inputs(config, 128, 128, random);
            var (dy, dhN, dcN) = Inputs(config, 128, 128, random, output: true);
            var (y, hN, cN) = Outputs(config, 128, 128);
            var (yInference, _, _) = Outputs(config, 128, 128);
            backend.Forward(parameters, x, h0, c0, yInference, hN, cN, keepForBackward: false);
            var (dx, dh0, dc0) = Inputs(config, 128, 128, random);
            parameters.ZeroGrad();
            using (var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true)!)
                backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
            return [yInference.Data, y.Data, hN.Data, dx.Data, dh0.Data, .. parameters.All.Select(p => (float[])p.Grad.Data.Clone())];
        }

        NativeRnn.ReleaseCachedMemory();
        var fresh = Run(seed: 1);
        Run(seed: 2);  // leaves other values in the kept blocks
        var reused = Run(seed: 1);
        for (int i = 0; i < fresh.Length; i++) Assert.That(reused[i], Is.EqualTo(fresh[i]), $"result {i}");
    }

    [Test]
    public void Backward_Throws_WhenForwardKeptNothingOrWasDisposed()
    {
        var lstm = new Lstm(3, 4, numLayers: 2, bidirectional: true);
        var x = new Tensor(TestData.UniformSingle(new Random(1), 2 * 1 * 3), 2, 1, 3);

        var inference = lstm.Forward(x);
        Assert.That(inference.CanBackward, Is.False);
        Assert.Throws<InvalidOperationException>(() => lstm.Backward(inference, null));

        var training = lstm.Forward(x, keepForBackward: true);
        training.Dispose();
        Assert.Throws<InvalidOperationException>(() => lstm.Backward(training, null));
    }

    [Test]
    public void Backend_Throws_WhenItsTapeWasDisposed()
    {
        var config = new RnnConfig(CellKind.GruResetAfter, 3, 4);
        var parameters = new RnnParameters(config);
        var random = new Random(2);
        var (x, h0, _) = Inputs(config, 2, 1, random);
        var (y, hN, _) = Outputs(config, 2, 1);
        var backend = new NativeCpuBackend();
        var tape = backend.Forward(parameters, x, h0, null, y, hN, null, keepForBackward: true)!;
        tape.Dispose();
        var (dx, dh0, _) = Inputs(config, 2, 1, random);
        Assert.Throws<ObjectDisposedException>(() => backend.Backward(parameters, tape, y, hN, null, dx, dh0, null));
    }

    [Test]
    public void Forward_KeepsNothing_WhenNotTraining()
    {
        var config = new RnnConfig(CellKind.Lstm, 3, 4);
        var parameters = new RnnParameters(config);
        var (x, h0, c0) = Inputs(config, 5, 2, new Random(3));
        var (y, hN, cN) = Outputs(config, 5, 2);
        Assert.That(new NativeCpuBackend().Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: false), Is.Null);
    }

    /// <summary>The documented bytes per step: LSTM 24·N·H, GRU reset-after 20·N·H, reset-before 16·N·H, Elman 4·N·H; plus h0 (and c0).</summary>
    [TestCase(CellKind.Lstm, 6, 2)]
    [TestCase(CellKind.GruResetAfter, 5, 1)]
    [TestCase(CellKind.GruResetBefore, 4, 1)]
    [TestCase(CellKind.RnnTanh, 1, 1)]
    [TestCase(CellKind.RnnRelu, 1, 1)]
    public void Tape_HoldsTheDocumentedBytes(CellKind cell, int floatsPerStepPerNH, int initialStates)
    {
        const int steps = 7, batch = 3, input = 5, hidden = 9;
        int gh = cell.GateCount() * hidden, nh = batch * hidden;
        var random = new Random(5);
        float[] Random(int count) => TestData.UniformSingle(random, count);
        using var tape = NativeRnn.Forward(cell, fused: true, steps, batch, input, hidden, reverse: false,
            Random(gh * input), Random(gh * hidden), Random(gh), Random(gh), RnnInputRows.Dense(Random(steps * batch * input)), Random(nh), Random(nh),
            new float[steps * nh], new float[nh], new float[nh], keepForBackward: true)!;
        Assert.That(tape.Bytes, Is.EqualTo(4L * (floatsPerStepPerNH * steps * nh + initialStates * nh)));
    }

    [Test]
    public void NativeRnn_RejectsShortBuffers_NamingTheArgument()
    {
        const int steps = 2, batch = 1, input = 3, hidden = 4;
        int gh = 4 * hidden;
        var e = Assert.Throws<ArgumentException>(() => NativeRnn.Forward(CellKind.Lstm, true, steps, batch, input, hidden, false,
            new float[gh * input], new float[gh * hidden - 1], new float[gh], new float[gh], RnnInputRows.Dense(new float[steps * batch * input]),
            new float[hidden], new float[hidden], new float[steps * hidden], new float[hidden], new float[hidden], false))!;
        Assert.That(e.ParamName, Is.EqualTo("weightHH"));
        Assert.That(e.Message, Does.Contain("[16, 4]").And.Contain("got 63"));
    }

    [Test]
    public void Layers_UseTheFusedNativeBackend_ByDefault()
    {
        var gru = new Gru(3, 4, GruVariant.ResetAfter);
        Assert.That(gru.Backend, Is.InstanceOf<NativeCpuBackend>());
        Assert.That(((NativeCpuBackend)gru.Backend).Fused, Is.True);
        Assert.That(gru.Backend.Name, Is.EqualTo("native-cpu"));
        Assert.That(new NativeCpuBackend(fused: false).Name, Is.EqualTo("native-cpu-unfused"));
    }

    private static void AssertMatchesReference(CellKind cell, TestData.Shape shape, bool fused, int seed)
    {
        var config = shape.Config(cell);
        int steps = shape.Steps, batch = shape.Batch;
        var parameters = new RnnParameters(config);
        parameters.Reset(seed);
        var random = new Random(seed + 1);
        var (x, h0, c0) = Inputs(config, steps, batch, random);
        var (dy, dhN, dcN) = Inputs(config, steps, batch, random, output: true);
        var backend = new NativeCpuBackend(fused);

        var reference = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Widen(x), steps, batch, Widen(h0), c0 is null ? null : Widen(c0));
        var expected = ReferenceRnn.Backward(reference, Widen(dy), Widen(dhN), dcN is null ? null : Widen(dcN));

        // Inference runs its own path (no tape, the output doubling as the state).
        var (yInference, hNInference, cNInference) = Outputs(config, steps, batch);
        Assert.That(backend.Forward(parameters, x, h0, c0, yInference, hNInference, cNInference, keepForBackward: false), Is.Null);
        Assertions.AllClose(yInference.Data, reference.Output, Tolerances.Float32, "inference y");
        Assertions.AllClose(hNInference.Data, reference.HiddenN, Tolerances.Float32, "inference hN");
        if (cNInference is not null) Assertions.AllClose(cNInference.Data, reference.CellN!, Tolerances.Float32, "inference cN");

        var (y, hN, cN) = Outputs(config, steps, batch);
        using var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true)!;
        Assertions.AllClose(y.Data, reference.Output, Tolerances.Float32, "y");
        Assertions.AllClose(hN.Data, reference.HiddenN, Tolerances.Float32, "hN");
        if (cN is not null) Assertions.AllClose(cN.Data, reference.CellN!, Tolerances.Float32, "cN");

        // Filled with garbage: dx, dh0 and dc0 must be overwritten.
        var (dx, dh0, dc0) = Inputs(config, steps, batch, random);
        backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        Assertions.AllClose(dx.Data, expected.Input, Tolerances.Float32, "dx");
        Assertions.AllClose(dh0.Data, expected.HiddenZero, Tolerances.Float32, "dh0");
        if (dc0 is not null) Assertions.AllClose(dc0.Data, expected.CellZero!, Tolerances.Float32, "dc0");
        for (int i = 0; i < parameters.All.Count; i++)
            Assertions.AllClose(parameters.All[i].Grad.Data, expected.Weights.Values[i], Tolerances.Float32, "grad " + parameters.All[i].Name);
    }

    /// <summary>Random x [T, N, I] (or dy [T, N, D·H] when <paramref name="output"/>), h0 and (LSTM) c0 [L·D, N, H].</summary>
    private static (Tensor X, Tensor H0, Tensor? C0) Inputs(RnnConfig config, int steps, int batch, Random random, bool output = false)
    {
        int features = output ? config.OutputSize : config.InputSize;
        int[] state = config.StateShape(batch);
        int stateCount = state.Aggregate(1, (a, b) => a * b);
        var x = new Tensor(TestData.UniformSingle(random, steps * batch * features), steps, batch, features);
        var h0 = new Tensor(TestData.UniformSingle(random, stateCount), state);
        var c0 = config.Cell.HasCellState() ? new Tensor(TestData.UniformSingle(random, stateCount), state) : null;
        return (x, h0, c0);
    }

    private static (Tensor Y, Tensor HN, Tensor? CN) Outputs(RnnConfig config, int steps, int batch)
    {
        int[] state = config.StateShape(batch);
        return (new Tensor(steps, batch, config.OutputSize), new Tensor(state), config.Cell.HasCellState() ? new Tensor(state) : null);
    }

    private static double[] Widen(Tensor t) => Array.ConvertAll(t.Data, v => (double)v);
}
