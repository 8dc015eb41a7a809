namespace Recurrent.Reference;

/// <summary>The four parameters of one layer and direction in double precision, PyTorch's layout.</summary>
/// <param name="WeightIH">[G·H, I].</param>
/// <param name="WeightHH">[G·H, H].</param>
/// <param name="BiasIH">[G·H].</param>
/// <param name="BiasHH">[G·H].</param>
public sealed record DirectionWeights(double[] WeightIH, double[] WeightHH, double[] BiasIH, double[] BiasHH);

/// <summary>What the reference keeps of one layer and direction for its backward pass.</summary>
internal sealed class DirectionTape
{
    public required ReferenceStep?[] Steps { get; init; }   // indexed by time t, whichever way the direction walks; null where no sequence runs
    public required int[][] Running { get; init; }          // [t]: the sequences n that computed step t, ascending: the rows of Steps[t]
}

/// <summary>
/// One layer and direction of any cell, forward and backward through time, written for reading rather than speed: the
/// ground truth that each fast path is tested against. This is the time loop, the input side (W_ih x + b_ih, dW_ih, db_ih,
/// dx) and the products; each cell's step is its <see cref="IReferenceCell"/> in <c>Cells/</c>.
/// </summary>
internal static class ReferenceCell
{
    internal static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

    /// <summary>out[n, j] += Σ_k w[j, k] · v[n, k] (+ b[j]); w is [rows, cols], v is [N, cols] at offset.</summary>
    internal static void AddMatVec(double[] w, double[]? b, int rows, int cols, ReadOnlySpan<double> v, int n, Span<double> output)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < rows; j++)
            {
                double sum = b is null ? 0 : b[j];
                for (int k = 0; k < cols; k++) sum += w[j * cols + k] * v[i * cols + k];
                output[i * rows + j] += sum;
            }
    }

    /// <summary>out[n, k] += Σ_j w[j, k] · g[n, j]: the transposed product that carries gradients back.</summary>
    internal static void AddMatTVec(double[] w, int rows, int cols, ReadOnlySpan<double> g, int n, Span<double> output)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < rows; j++)
            {
                double gj = g[i * rows + j];
                for (int k = 0; k < cols; k++) output[i * cols + k] += w[j * cols + k] * gj;
            }
    }

    /// <summary>dw[j, k] += Σ_n g[n, j] · v[n, k]; db[j] += Σ_n g[n, j].</summary>
    internal static void AddOuter(double[] dw, double[]? db, int rows, int cols, ReadOnlySpan<double> g, ReadOnlySpan<double> v, int n)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < rows; j++)
            {
                double gj = g[i * rows + j];
                if (db is not null) db[j] += gj;
                for (int k = 0; k < cols; k++) dw[j * cols + k] += gj * v[i * cols + k];
            }
    }

    /// <summary>
    /// Runs one direction over x [T, N, I]; writes y [T, N, H], hN, cN; returns the tape. With
    /// <paramref name="lengths"/> ([N], validated by the caller; null = all T) sequence n computes only the steps
    /// t &lt; lengths[n], so the reverse direction starts at its own last step; elsewhere its state is carried unchanged
    /// and its rows of y are zero. hN is then each sequence's state at its own end, as PyTorch's packed sequences give.
    /// </summary>
    public static DirectionTape Forward(CellKind cell, DirectionWeights w, int steps, int batch, int inputSize, int hidden,
        ReadOnlySpan<double> x, ReadOnlySpan<double> h0, ReadOnlySpan<double> c0, bool reverse,
        Span<double> y, Span<double> hN, Span<double> cN, int[]? lengths = null)
    {
        var step = ReferenceCells.For(cell);
        int gh = cell.GateCount() * hidden, nh = batch * hidden;
        var tape = new DirectionTape { Steps = new ReferenceStep?[steps], Running = new int[steps][] };
        // The whole batch's states [N·H]; each step computes the running rows only, as a smaller batch, and writes them
        // back, so a finished (or not yet started) sequence keeps its state. With every sequence running the gathered
        // rows are the whole batch in order, and the arithmetic is exactly that of an unpadded batch.
        double[][] states = cell.HasCellState() ? [h0.ToArray(), c0.ToArray()] : [h0.ToArray()];
        for (int s = 0; s < steps; s++)
        {
            int t = reverse ? steps - 1 - s : s;
            var running = Running(lengths, batch, t);
            tape.Running[t] = running;
            var yt = y.Slice(t * nh, nh);
            yt.Clear();
            if (running.Length == 0) continue;
            int m = running.Length;
            var xt = Gather(x.Slice(t * batch * inputSize, batch * inputSize), running, inputSize);
            var input = new double[m * gh];    // W_ih x + b_ih
            AddMatVec(w.WeightIH, w.BiasIH, gh, inputSize, xt, m, input);
            var kept = step.Forward(w, m, hidden, input, Array.ConvertAll(states, state => Gather(state, running, hidden)));
            tape.Steps[t] = kept;
            for (int k = 0; k < states.Length; k++) Scatter(kept.End[k], running, hidden, states[k]);
            Scatter(kept.End[0], running, hidden, yt);
        }
        states[0].CopyTo(hN);
        if (cell.HasCellState()) states[1].CopyTo(cN);
        return tape;
    }

    /// <summary>
    /// Back-propagates one direction. Adds into dx [T, N, I] and into the gradients <paramref name="grads"/>;
    /// writes dh0 and dc0. A sequence's steps past its length (the tape's) take nothing: its dy there is ignored, its dx
    /// there stays as it was, and its state gradients pass those steps unchanged.
    /// </summary>
    public static void Backward(CellKind cell, DirectionWeights w, DirectionTape tape, int steps, int batch, int inputSize, int hidden,
        ReadOnlySpan<double> x, bool reverse, ReadOnlySpan<double> dy, ReadOnlySpan<double> dhN, ReadOnlySpan<double> dcN,
        Span<double> dx, Span<double> dh0, Span<double> dc0, DirectionWeights grads)
    {
        var step = ReferenceCells.For(cell);
        int gh = cell.GateCount() * hidden, nh = batch * hidden;
        double[][] dStates = cell.HasCellState() ? [dhN.ToArray(), dcN.ToArray()] : [dhN.ToArray()];
        for (int s = steps - 1; s >= 0; s--)
        {
            int t = reverse ? steps - 1 - s : s;
            var running = tape.Running[t];
            if (running.Length == 0) continue;
            int m = running.Length;
            var xt = Gather(x.Slice(t * batch * inputSize, batch * inputSize), running, inputSize);
            var dRunning = Array.ConvertAll(dStates, d => Gather(d, running, hidden));
            var dyt = Gather(dy.Slice(t * nh, nh), running, hidden);
            double[] dh = dRunning[0];
            for (int i = 0; i < m * hidden; i++) dh[i] += dyt[i];
            var dInput = new double[m * gh];   // gradient of W_ih x + b_ih
            var dStart = step.Backward(w, tape.Steps[t]!, m, hidden, dRunning, dInput, grads);
            for (int k = 0; k < dStates.Length; k++) Scatter(dStart[k], running, hidden, dStates[k]);
            AddOuter(grads.WeightIH, grads.BiasIH, gh, inputSize, dInput, xt, m);
            // Added into the rows as they stand (the other direction's share may be there), in the unpadded order of sums.
            var dxt = dx.Slice(t * batch * inputSize, batch * inputSize);
            var dxRunning = Gather(dxt, running, inputSize);
            AddMatTVec(w.WeightIH, gh, inputSize, dInput, m, dxRunning);
            Scatter(dxRunning, running, inputSize, dxt);
        }
        dStates[0].CopyTo(dh0);
        if (cell.HasCellState()) dStates[1].CopyTo(dc0);
    }

    /// <summary>The sequences n with t &lt; lengths[n], ascending (all N when lengths is null).</summary>
    private static int[] Running(int[]? lengths, int batch, int t) =>
        Enumerable.Range(0, batch).Where(n => SequenceLengths.Runs(lengths, n, t)).ToArray();

    /// <summary>The rows <paramref name="rows"/> of a [N, width] buffer, as a new [rows, width] array.</summary>
    private static double[] Gather(ReadOnlySpan<double> source, int[] rows, int width)
    {
        var result = new double[rows.Length * width];
        for (int r = 0; r < rows.Length; r++) source.Slice(rows[r] * width, width).CopyTo(result.AsSpan(r * width, width));
        return result;
    }

    /// <summary>Writes a [rows, width] array back to the rows <paramref name="rows"/> of a [N, width] buffer.</summary>
    private static void Scatter(ReadOnlySpan<double> source, int[] rows, int width, Span<double> destination)
    {
        for (int r = 0; r < rows.Length; r++) source.Slice(r * width, width).CopyTo(destination.Slice(rows[r] * width, width));
    }
}
