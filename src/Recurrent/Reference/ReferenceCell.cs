namespace Recurrent.Reference;

/// <summary>
/// The parameters of one layer and direction in double precision, PyTorch's layout, by their position in the cell's
/// <see cref="CellDefinition.Parameters"/>: the four every cell has by name, a cell's own (peepholes, layer-norm gains)
/// by position after them.
/// </summary>
/// <remarks>Thread-safety: its arrays are plain memory (share them read-only). Lifetime: managed; nothing to free.</remarks>
public sealed class DirectionWeights
{
    private readonly double[][] _parameters;

    /// <summary>Keeps the parameters, in spec order (the arrays themselves, not copies).</summary>
    /// <exception cref="ArgumentException">Fewer than the four every cell has.</exception>
    public DirectionWeights(params double[][] parameters)
    {
        if (parameters.Length < ParameterSpec.RnnBase.Count)
            throw new ArgumentException($"parameters: expected at least weight_ih, weight_hh, bias_ih, bias_hh, got {parameters.Length}.", nameof(parameters));
        _parameters = parameters;
    }

    /// <summary>The parameter at spec position <paramref name="position"/>.</summary>
    public double[] this[int position] => _parameters[position];

    /// <summary>The number of parameters: the cell's <see cref="CellDefinition.Parameters"/> count.</summary>
    public int Count => _parameters.Length;

    /// <summary>weight_ih [G·H, I].</summary>
    public double[] WeightIH => _parameters[0];

    /// <summary>weight_hh [G·H, H].</summary>
    public double[] WeightHH => _parameters[1];

    /// <summary>bias_ih [G·H].</summary>
    public double[] BiasIH => _parameters[2];

    /// <summary>bias_hh [G·H].</summary>
    public double[] BiasHH => _parameters[3];
}

/// <summary>What the reference keeps of one layer and direction for its backward pass.</summary>
internal sealed class DirectionTape(int steps) : IDisposable
{
    public ReferenceStep[] Steps { get; } = new ReferenceStep[steps];   // indexed by time t, whichever way the direction walks
    public void Dispose() { }
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
    /// Step t's rows: dense, the N rows from t·N; packed (<paramref name="packed"/>, the sequences sorted longest first), the
    /// b_t rows of the sequences still running, from row Σ_{s&lt;t} b_s. The running sequences are then states rows 0 … b_t − 1.
    /// </summary>
    private static (int First, int Count) StepRows(PackedBatch? packed, int batch, int t) =>
        packed is null ? (t * batch, batch) : (packed.Offsets[t], packed.BatchSizes[t]);

    /// <summary>
    /// Runs one direction over the rows of x (I each; dense [T, N, I] or <paramref name="packed"/>'s packed rows); writes its
    /// output rows of H, <paramref name="yStride"/> apart in y, and hN, cN; returns the tape. Packed, step t computes only
    /// the running sequences, so the reverse direction starts each at its own last step (from h0, which its state row
    /// holds until then) and a finished sequence keeps its final state: hN is each sequence's state at its own end, as
    /// PyTorch's packed sequences give.
    /// </summary>
    public static DirectionTape Forward(CellKind cell, DirectionWeights w, int steps, int batch, int inputSize, int hidden, PackedBatch? packed,
        ReadOnlySpan<double> x, ReadOnlySpan<double> h0, ReadOnlySpan<double> c0, bool reverse,
        Span<double> y, int yStride, Span<double> hN, Span<double> cN)
    {
        var step = ReferenceCells.For(cell);
        int gh = cell.GateCount() * hidden;
        var tape = new DirectionTape(steps);
        // The whole batch's states [N·H]; each step computes its first m rows, the running sequences, as a smaller batch, and
        // writes them back. With every sequence running that is the whole batch, and the arithmetic that of an unpadded batch.
        double[][] states = cell.HasCellState() ? [h0.ToArray(), c0.ToArray()] : [h0.ToArray()];
        for (int s = 0; s < steps; s++)
        {
            int t = reverse ? steps - 1 - s : s;
            var (first, m) = StepRows(packed, batch, t);
            var input = new double[m * gh];    // W_ih x + b_ih
            AddMatVec(w.WeightIH, w.BiasIH, gh, inputSize, x.Slice(first * inputSize, m * inputSize), m, input);
            var kept = step.Forward(w, m, hidden, input, Array.ConvertAll(states, state => state[..(m * hidden)]));
            tape.Steps[t] = kept;
            for (int k = 0; k < states.Length; k++) kept.End[k].CopyTo(states[k], 0);
            for (int r = 0; r < m; r++) kept.End[0].AsSpan(r * hidden, hidden).CopyTo(y.Slice((first + r) * yStride, hidden));
        }
        states[0].CopyTo(hN);
        if (cell.HasCellState()) states[1].CopyTo(cN);
        return tape;
    }

    /// <summary>
    /// Back-propagates one direction through the pass that made <paramref name="tape"/>, on the same rows. Adds into dx (rows
    /// of I) and into the gradients <paramref name="grads"/>; writes dh0 and dc0. dy is read as the output was written:
    /// rows of H, <paramref name="dyStride"/> apart.
    /// </summary>
    public static void Backward(CellKind cell, DirectionWeights w, DirectionTape tape, int steps, int batch, int inputSize, int hidden, PackedBatch? packed,
        ReadOnlySpan<double> x, bool reverse, ReadOnlySpan<double> dy, int dyStride, ReadOnlySpan<double> dhN, ReadOnlySpan<double> dcN,
        Span<double> dx, Span<double> dh0, Span<double> dc0, DirectionWeights grads)
    {
        var step = ReferenceCells.For(cell);
        int gh = cell.GateCount() * hidden;
        double[][] dStates = cell.HasCellState() ? [dhN.ToArray(), dcN.ToArray()] : [dhN.ToArray()];
        for (int s = steps - 1; s >= 0; s--)
        {
            int t = reverse ? steps - 1 - s : s;
            var (first, m) = StepRows(packed, batch, t);
            var dRunning = Array.ConvertAll(dStates, d => d[..(m * hidden)]);
            double[] dh = dRunning[0];
            for (int r = 0; r < m; r++)
                for (int j = 0; j < hidden; j++) dh[r * hidden + j] += dy[(first + r) * dyStride + j];
            var dInput = new double[m * gh];   // gradient of W_ih x + b_ih
            var dStart = step.Backward(w, tape.Steps[t], m, hidden, dRunning, dInput, grads);
            for (int k = 0; k < dStates.Length; k++) dStart[k].CopyTo(dStates[k], 0);
            AddOuter(grads.WeightIH, grads.BiasIH, gh, inputSize, dInput, x.Slice(first * inputSize, m * inputSize), m);
            // Added into the rows as they stand: the layer's other direction may have written its share first.
            AddMatTVec(w.WeightIH, gh, inputSize, dInput, m, dx.Slice(first * inputSize, m * inputSize));
        }
        dStates[0].CopyTo(dh0);
        if (cell.HasCellState()) dStates[1].CopyTo(dc0);
    }
}
