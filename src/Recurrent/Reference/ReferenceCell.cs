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
    public required ReferenceStep[] Steps { get; init; }   // indexed by time t, whichever way the direction walks
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

    /// <summary>Runs one direction over x [T, N, I]; writes y [T, N, H], hN, cN; returns the tape.</summary>
    public static DirectionTape Forward(CellKind cell, DirectionWeights w, int steps, int batch, int inputSize, int hidden,
        ReadOnlySpan<double> x, ReadOnlySpan<double> h0, ReadOnlySpan<double> c0, bool reverse,
        Span<double> y, Span<double> hN, Span<double> cN)
    {
        var step = ReferenceCells.For(cell);
        int gh = cell.GateCount() * hidden, nh = batch * hidden;
        var tape = new DirectionTape { Steps = new ReferenceStep[steps] };
        double[][] states = cell.HasCellState() ? [h0.ToArray(), c0.ToArray()] : [h0.ToArray()];
        for (int s = 0; s < steps; s++)
        {
            int t = reverse ? steps - 1 - s : s;
            var xt = x.Slice(t * batch * inputSize, batch * inputSize);
            var input = new double[batch * gh];    // W_ih x + b_ih
            AddMatVec(w.WeightIH, w.BiasIH, gh, inputSize, xt, batch, input);
            var kept = step.Forward(w, batch, hidden, input, states);
            tape.Steps[t] = kept;
            states = kept.End;
            states[0].CopyTo(y.Slice(t * nh, nh));
        }
        states[0].CopyTo(hN);
        if (cell.HasCellState()) states[1].CopyTo(cN);
        return tape;
    }

    /// <summary>
    /// Back-propagates one direction. Adds into dx [T, N, I] and into the gradients <paramref name="grads"/>;
    /// writes dh0 and dc0.
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
            var xt = x.Slice(t * batch * inputSize, batch * inputSize);
            double[] dh = dStates[0];
            for (int i = 0; i < nh; i++) dh[i] += dy[t * nh + i];
            var dInput = new double[batch * gh];   // gradient of W_ih x + b_ih
            dStates = step.Backward(w, tape.Steps[t], batch, hidden, dStates, dInput, grads);
            AddOuter(grads.WeightIH, grads.BiasIH, gh, inputSize, dInput, xt, batch);
            AddMatTVec(w.WeightIH, gh, inputSize, dInput, batch, dx.Slice(t * batch * inputSize, batch * inputSize));
        }
        dStates[0].CopyTo(dh0);
        if (cell.HasCellState()) dStates[1].CopyTo(dc0);
    }
}
