using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// The stacking of <see cref="DirectionwiseBackend"/> (layer feeding, direction placement, summed input gradients)
/// checked with the reference cell plugged in per direction, against the reference's own stack.
/// </summary>
[TestFixture]
public class DirectionwiseBackendTests
{
    /// <summary>The reference cell behind the per-direction interface, so only the stacking differs.</summary>
    private sealed class ReferencePerDirection : DirectionwiseBackend
    {
        public override string Name => "reference-per-direction";

        private sealed record Saved(DirectionTape Tape, DirectionWeights Weights, double[] X) : IDisposable
        {
            public void Dispose() { }
        }

        private static double[] Widen(ReadOnlySpan<float> values)
        {
            var result = new double[values.Length];
            for (int i = 0; i < values.Length; i++) result[i] = values[i];
            return result;
        }

        private static void Narrow(ReadOnlySpan<double> source, Span<float> destination)
        {
            for (int i = 0; i < source.Length; i++) destination[i] = (float)source[i];
        }

        protected override IDisposable? ForwardDirection(in DirectionForward call, bool keepForBackward)
        {
            var weights = new DirectionWeights(Widen(call.WeightIH), Widen(call.WeightHH), Widen(call.BiasIH), Widen(call.BiasHH));
            var x = Widen(call.X);
            var y = new double[call.Y.Length];
            var hN = new double[call.HN.Length];
            var cN = new double[call.CN.Length];
            var tape = ReferenceCell.Forward(call.Cell, weights, call.Steps, call.Batch, call.InputSize, call.HiddenSize,
                x, Widen(call.H0), Widen(call.C0), call.Reverse, y, hN, cN);
            Narrow(y, call.Y);
            Narrow(hN, call.HN);
            Narrow(cN, call.CN);
            return keepForBackward ? new Saved(tape, weights, x) : null;
        }

        protected override void BackwardDirection(in DirectionBackward call, IDisposable saved)
        {
            var s = (Saved)saved;
            var grads = new DirectionWeights(new double[call.DWeightIH.Length], new double[call.DWeightHH.Length],
                new double[call.DBiasIH.Length], new double[call.DBiasHH.Length]);
            var dx = new double[call.DX.Length];
            var dh0 = new double[call.DH0.Length];
            var dc0 = new double[call.DC0.Length];
            ReferenceCell.Backward(call.Cell, s.Weights, s.Tape, call.Steps, call.Batch, call.InputSize, call.HiddenSize, s.X, call.Reverse,
                Widen(call.DY), Widen(call.DHN), Widen(call.DCN), dx, dh0, dc0, grads);
            Narrow(dx, call.DX);
            Narrow(dh0, call.DH0);
            Narrow(dc0, call.DC0);
            Accumulate(grads.WeightIH, call.DWeightIH);
            Accumulate(grads.WeightHH, call.DWeightHH);
            Accumulate(grads.BiasIH, call.DBiasIH);
            Accumulate(grads.BiasHH, call.DBiasHH);
        }

        private static void Accumulate(double[] source, Span<float> destination)
        {
            for (int i = 0; i < source.Length; i++) destination[i] += (float)source[i];
        }
    }

    private static IEnumerable<TestCaseData> Cases() =>
        from cell in TestData.AllCells
        from shape in new[] { new TestData.Shape(3, 2, 3, 4, 3, true), new TestData.Shape(2, 1, 5, 3, 2, false) }
        select new TestCaseData(cell, shape).SetName($"Stacking_MatchesReferenceStack_{cell}_{shape}");

    [TestCaseSource(nameof(Cases))]
    public void Stacking_MatchesReferenceStack(CellKind cell, TestData.Shape shape)
    {
        var config = shape.Config(cell);
        var random = new Random(99);
        var weights = TestData.RandomWeights(config, random);
        var stacked = new RnnParameters(config);
        for (int p = 0; p < weights.Values.Length; p++)
            for (int i = 0; i < weights.Values[p].Length; i++) stacked.All[p].Value.Data[i] = (float)weights.Values[p][i];
        // Round the reference's weights to float too, so both sides start from the same numbers.
        weights = ReferenceWeights.From(stacked);

        int steps = shape.Steps, batch = shape.Batch;
        int[] state = config.StateShape(batch);
        var x = new Tensor(TestData.UniformSingle(random, steps * batch * shape.Input), steps, batch, shape.Input);
        var h0 = new Tensor(TestData.UniformSingle(random, state.Aggregate(1, (a, b) => a * b)), state);
        var c0 = cell.HasCellState() ? new Tensor(TestData.UniformSingle(random, h0.Length), state) : null;
        var dy = new Tensor(TestData.UniformSingle(random, steps * batch * config.OutputSize), steps, batch, config.OutputSize);
        var dhN = new Tensor(TestData.UniformSingle(random, h0.Length), state);
        var dcN = cell.HasCellState() ? new Tensor(TestData.UniformSingle(random, h0.Length), state) : null;

        var backend = new ReferencePerDirection();
        var y = new Tensor(steps, batch, config.OutputSize);
        var hN = new Tensor(state);
        var cN = cell.HasCellState() ? new Tensor(state) : null;
        using var tape = backend.Forward(stacked, x, h0, c0, y, hN, cN, keepForBackward: true)!;
        var dx = new Tensor(x.Shape.ToArray());
        var dh0 = new Tensor(state);
        var dc0 = cell.HasCellState() ? new Tensor(state) : null;
        backend.Backward(stacked, tape, dy, dhN, dcN, dx, dh0, dc0);

        static double[] W(Tensor? t) => t is null ? null! : Array.ConvertAll(t.Data, v => (double)v);
        var expected = ReferenceRnn.Forward(weights, W(x), steps, batch, W(h0), W(c0));
        var grads = ReferenceRnn.Backward(expected, W(dy), W(dhN), W(dcN));

        Assertions.AllClose(y.Data, expected.Output, Tolerances.Float32, "y");
        Assertions.AllClose(hN.Data, expected.HiddenN, Tolerances.Float32, "hN");
        if (cN is not null) Assertions.AllClose(cN.Data, expected.CellN!, Tolerances.Float32, "cN");
        Assertions.AllClose(dx.Data, grads.Input, Tolerances.Float32, "dx");
        Assertions.AllClose(dh0.Data, grads.HiddenZero, Tolerances.Float32, "dh0");
        if (dc0 is not null) Assertions.AllClose(dc0.Data, grads.CellZero!, Tolerances.Float32, "dc0");
        for (int p = 0; p < stacked.All.Count; p++)
            Assertions.AllClose(stacked.All[p].Grad.Data, grads.Weights.Values[p], Tolerances.Float32, stacked.All[p].Name);
    }
}
