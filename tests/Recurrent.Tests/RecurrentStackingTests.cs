using NUnit.Framework;
using Recurrent.Stacking;

namespace Recurrent.Tests;

/// <summary>
/// What <see cref="RecurrentStacking{TBuffer}"/> hands each direction and where it puts the results, seen through a compute
/// that records every pass and writes a value naming its layer and direction: in-place halves, layer feeding, state slices,
/// the second direction's accumulation, and the packed layout once at the bottom and the top.
/// </summary>
[TestFixture]
public class RecurrentStackingTests
{
    /// <summary>Forward: every output row of layer l, direction d is Mark(l, d); hN, cN likewise. Backward: dx rows are 1 per direction.</summary>
    private sealed class RecordingCompute : HostDirectionCompute<float>
    {
        public List<DirectionPass<Memory<float>>> Forwards { get; } = [];
        public List<DirectionPass<Memory<float>>> Backwards { get; } = [];
        /// <summary>Layer l, direction d's input rows as it read them (its first feature of each row).</summary>
        public Dictionary<(int, int), float[]> InputsSeen { get; } = [];

        public static float Mark(int layer, int direction) => 10 * (layer + 1) + direction + 1;

        private static int Rows(in DirectionPass<Memory<float>> pass) => pass.Packed?.Rows ?? pass.Steps * pass.Batch;

        public override IDisposable? Forward(in DirectionPass<Memory<float>> pass, bool keepForBackward)
        {
            Forwards.Add(pass);
            int rows = Rows(pass), h = pass.HiddenSize;
            var x = From(pass.X);
            var seen = new float[rows];
            for (int r = 0; r < rows; r++) seen[r] = x[r * pass.X.Stride];
            InputsSeen[(pass.Layer, pass.Direction)] = seen;
            var y = From(pass.Y);
            for (int r = 0; r < rows; r++) y.Slice(r * pass.Y.Stride, h).Fill(Mark(pass.Layer, pass.Direction));
            // The final state is h0 plus the mark, so a test sees both the slice read and the slice written.
            var h0 = State(pass.H0, pass.Batch, h);
            var hN = State(pass.HN, pass.Batch, h);
            for (int i = 0; i < hN.Length; i++) hN[i] = h0[i] + Mark(pass.Layer, pass.Direction);
            State(pass.CN, pass.Batch, h).Fill(-Mark(pass.Layer, pass.Direction));
            return keepForBackward ? new Nothing() : null;
        }

        public override void Backward(in DirectionPass<Memory<float>> pass, IDisposable saved)
        {
            Backwards.Add(pass);
            var dx = From(pass.DX)[..(Rows(pass) * pass.InputSize)];
            if (pass.AccumulateDX)
                for (int i = 0; i < dx.Length; i++) dx[i] += 1;
            else dx.Fill(1);
            var dhN = State(pass.DHN, pass.Batch, pass.HiddenSize);
            var dh0 = State(pass.DH0, pass.Batch, pass.HiddenSize);
            for (int i = 0; i < dh0.Length; i++) dh0[i] = dhN[i] + Mark(pass.Layer, pass.Direction);
        }

        private sealed class Nothing : IDisposable
        {
            public void Dispose() { }
        }
    }

    private static readonly RnnConfig BidirectionalTwoLayers = new(CellKind.Lstm, inputSize: 3, hiddenSize: 2, numLayers: 2, bidirectional: true);

    [Test]
    public void Forward_WritesEachDirectionsHalfInPlace_FeedsLayers_AndChainsStateSlices()
    {
        var config = BidirectionalTwoLayers;
        int steps = 3, batch = 2, h = config.HiddenSize, slices = 4;
        var compute = new RecordingCompute();
        var x = Enumerable.Range(0, steps * batch * config.InputSize).Select(i => (float)i).ToArray();
        var h0 = Enumerable.Range(0, slices * batch * h).Select(i => (float)(i / (batch * h))).ToArray();   // slice s holds s
        var y = new float[steps * batch * config.OutputSize];
        var hN = new float[h0.Length];
        var cN = new float[h0.Length];
        using var tape = RecurrentStacking<Memory<float>>.Forward(compute, config, steps, batch, null, x, fromTable: false, h0, new float[h0.Length], y, hN, cN,
            keepForBackward: true)!;

        Assert.That(compute.Forwards.Select(p => (p.Layer, p.Direction)), Is.EqualTo(new[] { (0, 0), (0, 1), (1, 0), (1, 1) }));
        foreach (var pass in compute.Forwards)
        {
            Assert.That((pass.Y.Offset, pass.Y.Stride), Is.EqualTo(((long)pass.Direction * h, config.OutputSize)), "this direction's half, rows D·H apart");
            Assert.That(pass.X.Stride, Is.EqualTo(config.LayerInputSize(pass.Layer)));
            Assert.That(pass.H0.Offset, Is.EqualTo((long)(pass.Layer * 2 + pass.Direction) * batch * h), "state slice l·D + d");
            Assert.That(pass.Reverse, Is.EqualTo(pass.Direction == 1));
        }
        Assert.That(compute.Forwards[2].X.Buffer.Equals(compute.Forwards[3].X.Buffer), "both directions of a layer read one input buffer");
        Assert.That(compute.InputsSeen[(1, 0)], Is.All.EqualTo(RecordingCompute.Mark(0, 0)), "layer 1 reads layer 0's output (its first feature: direction 0's)");
        Assert.That(compute.InputsSeen[(0, 0)], Is.EqualTo(Enumerable.Range(0, steps * batch).Select(r => (float)(r * config.InputSize))), "layer 0 reads x");
        for (int r = 0; r < steps * batch; r++)
        {
            Assert.That(y.AsSpan(r * 2 * h, h).ToArray(), Is.All.EqualTo(RecordingCompute.Mark(1, 0)), "the top layer's forward half");
            Assert.That(y.AsSpan(r * 2 * h + h, h).ToArray(), Is.All.EqualTo(RecordingCompute.Mark(1, 1)), "the top layer's reverse half");
        }
        for (int s = 0; s < slices; s++)
            Assert.That(hN.AsSpan(s * batch * h, batch * h).ToArray(), Is.All.EqualTo(s + RecordingCompute.Mark(s / 2, s % 2)));
    }

    [Test]
    public void Backward_SecondDirectionAddsToTheFirstsInputGradient_LayersFromTheTop()
    {
        var config = BidirectionalTwoLayers;
        int steps = 2, batch = 3, h = config.HiddenSize;
        long states = 4L * batch * h;
        var compute = new RecordingCompute();
        using var tape = RecurrentStacking<Memory<float>>.Forward(compute, config, steps, batch, null, new float[steps * batch * config.InputSize], false,
            new float[states], new float[states], new float[steps * batch * config.OutputSize], new float[states], new float[states], keepForBackward: true)!;
        var dx = new float[steps * batch * config.InputSize];
        var dh0 = new float[states];
        RecurrentStacking<Memory<float>>.Backward(compute, config, tape, steps, batch, new float[steps * batch * config.OutputSize], new float[states],
            new float[states], dx, dh0, new float[states]);

        Assert.That(compute.Backwards.Select(p => (p.Layer, p.Direction, p.AccumulateDX)), Is.EqualTo(new[] { (1, 0, false), (1, 1, true), (0, 0, false), (0, 1, true) }));
        foreach (var pass in compute.Backwards)
            Assert.That((pass.DY.Offset, pass.DY.Stride), Is.EqualTo(((long)pass.Direction * h, config.OutputSize)), "dy read in place, as y was written");
        Assert.That(dx, Is.All.EqualTo(2f), "each direction's share, summed where the stacking wrote dx");
        Assert.That(compute.Backwards[2].DY.Buffer.Equals(compute.Backwards[0].DX.Buffer), "layer 0 reads the input gradient layer 1 wrote");
    }

    [Test]
    public void Packed_PacksOnceAtTheBottom_RunsTheRealRows_AndUnpacksOnceAtTheTop()
    {
        var config = new RnnConfig(CellKind.Lstm, inputSize: 1, hiddenSize: 1, numLayers: 2, bidirectional: true);
        int steps = 4, batch = 3;
        int[] lengths = [1, 3, 2];
        var packed = PackedBatch.Create(lengths, steps, batch)!;
        var compute = new RecordingCompute();
        // x [t, n] = 100·n + t; h0 slice s, sequence n = n.
        var x = new float[steps * batch];
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++) x[t * batch + n] = 100 * n + t;
        var h0 = new float[4 * batch];
        for (int i = 0; i < h0.Length; i++) h0[i] = i % batch;
        var y = Enumerable.Repeat(float.NaN, steps * batch * 2).ToArray();
        var hN = new float[h0.Length];
        RecurrentStacking<Memory<float>>.Forward(compute, config, steps, batch, packed, x, false, h0, new float[h0.Length], y, hN, new float[h0.Length],
            keepForBackward: false);

        Assert.That(compute.Forwards.Select(p => p.Steps).Distinct(), Is.EqualTo(new[] { 3 }), "the running steps only: no sequence runs step 3");
        Assert.That(compute.Forwards.All(p => ReferenceEquals(p.Packed, packed)));
        // Sorted longest first (sequences 1, 2, 0), packed time-major: step 0 of all three, step 1 of two, step 2 of one.
        Assert.That(compute.InputsSeen[(0, 0)], Is.EqualTo(new float[] { 100, 200, 0, 101, 201, 102 }));
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++)
            {
                bool runs = t < lengths[n];
                Assert.That(y[(t * batch + n) * 2], Is.EqualTo(runs ? RecordingCompute.Mark(1, 0) : 0), $"y[{t}, {n}], forward half");
                Assert.That(y[(t * batch + n) * 2 + 1], Is.EqualTo(runs ? RecordingCompute.Mark(1, 1) : 0), $"y[{t}, {n}], reverse half");
            }
        for (int s = 0; s < 4; s++)
            for (int n = 0; n < batch; n++)
                Assert.That(hN[s * batch + n], Is.EqualTo(n + RecordingCompute.Mark(s / 2, s % 2)), "states sorted in and unsorted out, slice by slice");
    }
}
