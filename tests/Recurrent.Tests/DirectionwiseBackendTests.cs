using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// The stacking of <see cref="DirectionwiseBackend"/> (layer feeding, direction placement, summed input gradients, the
/// gathered table input) under the backend contract, with the reference cell plugged in per direction so that only the
/// stacking differs from the reference's own stack.
/// </summary>
[TestFixture]
public class DirectionwiseBackendTests : BackendContractTests
{
    protected override IRnnBackend CreateBackend() => new ReferencePerDirection();

    /// <summary>The reference cell behind the per-direction interface, so only the stacking differs.</summary>
    private sealed class ReferencePerDirection : DirectionwiseBackend
    {
        public override string Name => "reference-per-direction";

        private sealed record Saved(DirectionTape Tape, DirectionWeights Weights, double[] X, Layout Rows) : IDisposable
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

        /// <summary>
        /// The rows of a pass: dense, or packed by batch sizes b (the sequences already sorted, so sorted position p is
        /// sequence p of the padded batch the reference runs, with length #{t : b_t &gt; p}).
        /// </summary>
        private sealed class Layout
        {
            public Layout(ReadOnlySpan<int> batchSizes, int steps, int batch)
            {
                (Sizes, Batch) = (batchSizes.ToArray(), batch);
                if (Sizes.Length == 0) return;
                Lengths = Enumerable.Range(0, batch).Select(p => Sizes.Count(b => b > p)).ToArray();
                Offsets = new int[steps + 1];
                for (int t = 0; t < steps; t++) Offsets[t + 1] = Offsets[t] + Sizes[t];
            }

            public int[] Sizes { get; }
            public int Batch { get; }
            public int[]? Lengths { get; }
            public int[] Offsets { get; } = [];
            public int Rows(int steps) => Lengths is null ? steps * Batch : Offsets[steps];

            /// <summary>Packed rows → padded [T, N, F], zeros past the ends (dense: as they are).</summary>
            public double[] Padded(double[] rows, int features)
            {
                if (Lengths is null) return rows;
                var padded = new double[Sizes.Length * Batch * features];
                for (int t = 0; t < Sizes.Length; t++)
                    rows.AsSpan(Offsets[t] * features, Sizes[t] * features).CopyTo(padded.AsSpan(t * Batch * features));
                return padded;
            }

            /// <summary>Padded [T, N, F] → the packed rows (dense: as they are).</summary>
            public double[] Packed(double[] padded, int features)
            {
                if (Lengths is null) return padded;
                var rows = new double[Offsets[^1] * features];
                for (int t = 0; t < Sizes.Length; t++)
                    padded.AsSpan(t * Batch * features, Sizes[t] * features).CopyTo(rows.AsSpan(Offsets[t] * features));
                return rows;
            }
        }

        protected override IDisposable? ForwardDirection(in DirectionForward call, bool keepForBackward)
        {
            var weights = new DirectionWeights(Widen(call.WeightIH), Widen(call.WeightHH), Widen(call.BiasIH), Widen(call.BiasHH));
            var layout = new Layout(call.BatchSizes, call.Steps, call.Batch);
            var x = layout.Padded(WidenRows(call.X, layout.Rows(call.Steps), call.InputSize, 0), call.InputSize);
            var y = new double[(long)call.Steps * call.Batch * call.HiddenSize];
            var hN = new double[call.HN.Length];
            var cN = new double[call.CN.Length];
            var tape = ReferenceCell.Forward(call.Cell, weights, call.Steps, call.Batch, call.InputSize, call.HiddenSize,
                x, Widen(call.H0), Widen(call.C0), call.Reverse, y, hN, cN, layout.Lengths);
            NarrowRows(layout.Packed(y, call.HiddenSize), call.Y, call.HiddenSize, call.YStride, accumulate: false);
            Narrow(hN, call.HN);
            Narrow(cN, call.CN);
            return keepForBackward ? new Saved(tape, weights, x, layout) : null;
        }

        protected override void BackwardDirection(in DirectionBackward call, IDisposable saved)
        {
            var s = (Saved)saved;
            var grads = new DirectionWeights(new double[call.DWeightIH.Length], new double[call.DWeightHH.Length],
                new double[call.DBiasIH.Length], new double[call.DBiasHH.Length]);
            var dx = new double[(long)call.Steps * call.Batch * call.InputSize];
            var dh0 = new double[call.DH0.Length];
            var dc0 = new double[call.DC0.Length];
            int rows = s.Rows.Rows(call.Steps);
            ReferenceCell.Backward(call.Cell, s.Weights, s.Tape, call.Steps, call.Batch, call.InputSize, call.HiddenSize, s.X, call.Reverse,
                s.Rows.Padded(WidenRows(call.DY, rows, call.HiddenSize, call.DYStride), call.HiddenSize), Widen(call.DHN), Widen(call.DCN), dx, dh0, dc0, grads);
            NarrowRows(s.Rows.Packed(dx, call.InputSize), call.DX, call.InputSize, 0, call.AccumulateDX);
            Narrow(dh0, call.DH0);
            Narrow(dc0, call.DC0);
            Accumulate(grads.WeightIH, call.DWeightIH);
            Accumulate(grads.WeightHH, call.DWeightHH);
            Accumulate(grads.BiasIH, call.DBiasIH);
            Accumulate(grads.BiasHH, call.DBiasHH);
        }

        // The stacking hands a direction strided rows (its half of a bidirectional layer's output): gather them dense
        // for the reference, and scatter its results back the same way.
        private static double[] WidenRows(ReadOnlySpan<float> rows, int count, int width, int stride)
        {
            int step = stride == 0 ? width : stride;
            var result = new double[(long)count * width];
            for (int r = 0; r < count; r++)
                for (int j = 0; j < width; j++) result[r * width + j] = rows[r * step + j];
            return result;
        }

        private static void NarrowRows(ReadOnlySpan<double> source, Span<float> destination, int width, int stride, bool accumulate)
        {
            int step = stride == 0 ? width : stride;
            for (int r = 0; r < source.Length / width; r++)
                for (int j = 0; j < width; j++)
                {
                    float value = (float)source[r * width + j];
                    destination[r * step + j] = accumulate ? destination[r * step + j] + value : value;
                }
        }

        private static void Accumulate(double[] source, Span<float> destination)
        {
            for (int i = 0; i < source.Length; i++) destination[i] += (float)source[i];
        }
    }
}
