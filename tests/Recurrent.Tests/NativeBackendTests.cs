using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

/// <summary>
/// What only the native CPU backend has: reused workspaces, its tape's size, its disposal check, its argument checks and
/// its being the layers' default. Its results against the reference, on every instruction-set path, are the backend
/// contract's (NativeBackendContractTests).
/// </summary>
[TestFixture]
public class NativeBackendTests
{
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
            return [yInference.ToArray(), y.ToArray(), hN.ToArray(), dx.ToArray(), dh0.ToArray(), .. parameters.All.Select(p => p.Grad.ToArray())];
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
        var x = new FloatTensor(TestData.UniformSingle(new Random(1), 2 * 1 * 3), 2, 1, 3);

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
        var gru = new Gru(3, 4, variant: GruVariant.ResetAfter);
        Assert.That(gru.Backend, Is.InstanceOf<NativeCpuBackend>());
        Assert.That(((NativeCpuBackend)gru.Backend).Fused, Is.True);
        Assert.That(gru.Backend.Name, Is.EqualTo("native-cpu"));
        Assert.That(new NativeCpuBackend(fused: false).Name, Is.EqualTo("native-cpu-unfused"));
    }

    /// <summary>Random x [T, N, I] (or dy [T, N, D·H] when <paramref name="output"/>), h0 and (LSTM) c0 [L·D, N, H].</summary>
    private static (FloatTensor X, FloatTensor H0, FloatTensor? C0) Inputs(RnnConfig config, int steps, int batch, Random random, bool output = false)
    {
        int features = output ? config.OutputSize : config.InputSize;
        int[] state = config.StateShape(batch);
        int stateCount = state.Aggregate(1, (a, b) => a * b);
        var x = new FloatTensor(TestData.UniformSingle(random, steps * batch * features), steps, batch, features);
        var h0 = new FloatTensor(TestData.UniformSingle(random, stateCount), state);
        var c0 = config.Cell.HasCellState() ? new FloatTensor(TestData.UniformSingle(random, stateCount), state) : null;
        return (x, h0, c0);
    }

    private static (FloatTensor Y, FloatTensor HN, FloatTensor? CN) Outputs(RnnConfig config, int steps, int batch)
    {
        int[] state = config.StateShape(batch);
        return (new FloatTensor(steps, batch, config.OutputSize), new FloatTensor(state), config.Cell.HasCellState() ? new FloatTensor(state) : null);
    }
}
