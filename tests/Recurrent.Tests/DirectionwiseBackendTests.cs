using NUnit.Framework;
using Recurrent.Reference;
using Recurrent.Stacking;

namespace Recurrent.Tests;

/// <summary>
/// The host float entry of <see cref="RecurrentStacking{TBuffer}"/> (<see cref="DirectionwiseBackend"/>: the training pass's copy
/// of x, the float buffers, the packed layout by <see cref="PackedBatch"/>) under the backend contract, with the reference cell
/// plugged in per direction so that only the float host entry differs from the reference's own stack.
/// </summary>
[TestFixture]
public class DirectionwiseBackendTests : BackendContractTests
{
    protected override IRnnBackend CreateBackend() => new ReferencePerDirection();

    /// <summary>The reference cell behind the per-direction interface, widened and narrowed at its edges.</summary>
    private sealed class ReferencePerDirection : DirectionwiseBackend
    {
        public override string Name => "reference-per-direction";

        internal override IDirectionCompute<Memory<float>> Compute(RnnParameters parameters, TableInput? table, Memory<float> tableGradient) =>
            new ReferenceCompute(parameters);

        private sealed record Saved(DirectionTape Tape, double[] X) : IDisposable
        {
            public void Dispose() { }
        }

        private sealed class ReferenceCompute(RnnParameters parameters) : HostDirectionCompute<float>
        {
            private int Count => parameters.Config.Definition.Parameters.Count;

            private DirectionWeights Weights(DirectionPass<Memory<float>> pass) =>
                new(Enumerable.Range(0, Count).Select(p => Widen(Value(pass, p))).ToArray());

            private Span<float> Value(in DirectionPass<Memory<float>> pass, int position) => parameters[pass.Layer, pass.Direction, position].Value.Span;

            private static int Rows(in DirectionPass<Memory<float>> pass) => pass.Packed?.Rows ?? pass.Steps * pass.Batch;

            public override IDisposable? Forward(in DirectionPass<Memory<float>> pass, bool keepForBackward)
            {
                int n = pass.Batch, h = pass.HiddenSize, rows = Rows(pass);
                var x = WidenRows(From(pass.X), rows, pass.InputSize, pass.X.Stride);
                var y = new double[rows * h];
                var hN = new double[n * h];
                var cN = new double[pass.CN.Buffer.IsEmpty ? 0 : n * h];
                var tape = ReferenceCell.Forward(parameters.Config.Cell, Weights(pass), pass.Steps, n, pass.InputSize, h, pass.Packed,
                    x, Widen(State(pass.H0, n, h)), Widen(State(pass.C0, n, h)), pass.Reverse, y, h, hN, cN);
                NarrowRows(y, From(pass.Y), h, pass.Y.Stride, accumulate: false);
                Narrow(hN, State(pass.HN, n, h));
                Narrow(cN, State(pass.CN, n, h));
                return keepForBackward ? new Saved(tape, x) : null;
            }

            public override void Backward(in DirectionPass<Memory<float>> pass, IDisposable saved)
            {
                var s = (Saved)saved;
                int n = pass.Batch, h = pass.HiddenSize, rows = Rows(pass);
                var all = pass;
                var grads = new DirectionWeights(Enumerable.Range(0, Count).Select(p => new double[Value(all, p).Length]).ToArray());
                var dx = new double[rows * pass.InputSize];
                var dh0 = new double[n * h];
                var dc0 = new double[pass.DC0.Buffer.IsEmpty ? 0 : n * h];
                ReferenceCell.Backward(parameters.Config.Cell, Weights(pass), s.Tape, pass.Steps, n, pass.InputSize, h, pass.Packed, s.X, pass.Reverse,
                    WidenRows(From(pass.DY), rows, h, pass.DY.Stride), h, Widen(State(pass.DHN, n, h)), Widen(State(pass.DCN, n, h)), dx, dh0, dc0, grads);
                NarrowRows(dx, From(pass.DX), pass.InputSize, pass.DX.Stride, pass.AccumulateDX);
                Narrow(dh0, State(pass.DH0, n, h));
                Narrow(dc0, State(pass.DC0, n, h));
                for (int p = 0; p < grads.Count; p++)
                {
                    var destination = parameters[pass.Layer, pass.Direction, p].Grad.Span;
                    for (int i = 0; i < grads[p].Length; i++) destination[i] += (float)grads[p][i];
                }
            }
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

        // The stacking hands a direction strided rows (its half of a bidirectional layer's output): gather them dense
        // for the reference, and scatter its results back the same way.
        private static double[] WidenRows(ReadOnlySpan<float> rows, int count, int width, int stride)
        {
            var result = new double[(long)count * width];
            for (int r = 0; r < count; r++)
                for (int j = 0; j < width; j++) result[r * width + j] = rows[r * stride + j];
            return result;
        }

        private static void NarrowRows(ReadOnlySpan<double> source, Span<float> destination, int width, int stride, bool accumulate)
        {
            for (int r = 0; r < source.Length / width; r++)
                for (int j = 0; j < width; j++)
                {
                    float value = (float)source[r * width + j];
                    destination[r * stride + j] = accumulate ? destination[r * stride + j] + value : value;
                }
        }
    }
}
