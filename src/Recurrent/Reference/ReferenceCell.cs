namespace Recurrent.Reference;

/// <summary>The four parameters of one layer and direction in double precision, PyTorch's layout.</summary>
/// <param name="WeightIH">[G·H, I].</param>
/// <param name="WeightHH">[G·H, H].</param>
/// <param name="BiasIH">[G·H].</param>
/// <param name="BiasHH">[G·H].</param>
public sealed record DirectionWeights(double[] WeightIH, double[] WeightHH, double[] BiasIH, double[] BiasHH);

/// <summary>What the reference keeps of one layer and direction for its backward pass; indexed by time t.</summary>
internal sealed class DirectionTape
{
    public required double[][] HPrev { get; init; }      // [T][N·H], the state the step at t started from
    public required double[][]? CPrev { get; init; }     // LSTM only
    public required double[][] Gates { get; init; }      // [T][N·G·H], activated gates (RNN: the new h)
    public required double[][]? C { get; init; }         // LSTM: [T][N·H], the new cell state
    public required double[][]? HiddenN { get; init; }   // GRU reset-after: [T][N·H], W_hn h + b_hn
}

/// <summary>
/// One layer and direction of every cell, forward and backward through time, written for reading
/// rather than speed: the ground truth that each fast path is tested against.
/// </summary>
internal static class ReferenceCell
{
    private static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

    /// <summary>out[n, j] += Σ_k w[j, k] · v[n, k] (+ b[j]); w is [rows, cols], v is [N, cols] at offset.</summary>
    private static void AddMatVec(double[] w, double[]? b, int rows, int cols, ReadOnlySpan<double> v, int n, Span<double> output)
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
    private static void AddMatTVec(double[] w, int rows, int cols, ReadOnlySpan<double> g, int n, Span<double> output)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < rows; j++)
            {
                double gj = g[i * rows + j];
                for (int k = 0; k < cols; k++) output[i * cols + k] += w[j * cols + k] * gj;
            }
    }

    /// <summary>dw[j, k] += Σ_n g[n, j] · v[n, k]; db[j] += Σ_n g[n, j].</summary>
    private static void AddOuter(double[] dw, double[]? db, int rows, int cols, ReadOnlySpan<double> g, ReadOnlySpan<double> v, int n)
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
        int gates = cell.GateCount(), gh = gates * hidden, nh = batch * hidden;
        var tape = new DirectionTape
        {
            HPrev = new double[steps][],
            CPrev = cell.HasCellState() ? new double[steps][] : null,
            Gates = new double[steps][],
            C = cell.HasCellState() ? new double[steps][] : null,
            HiddenN = cell == CellKind.GruResetAfter ? new double[steps][] : null,
        };
        double[] h = h0.ToArray();
        double[] c = cell.HasCellState() ? c0.ToArray() : [];
        for (int s = 0; s < steps; s++)
        {
            int t = reverse ? steps - 1 - s : s;
            var xt = x.Slice(t * batch * inputSize, batch * inputSize);
            tape.HPrev[t] = (double[])h.Clone();
            var input = new double[batch * gh];    // W_ih x + b_ih
            var recur = new double[batch * gh];    // W_hh h + b_hh
            AddMatVec(w.WeightIH, w.BiasIH, gh, inputSize, xt, batch, input);
            var act = new double[batch * gh];
            var hNew = new double[nh];
            switch (cell)
            {
                case CellKind.RnnTanh:
                case CellKind.RnnRelu:
                    AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
                    for (int i = 0; i < nh; i++)
                    {
                        double a = input[i] + recur[i];
                        hNew[i] = act[i] = cell == CellKind.RnnTanh ? Math.Tanh(a) : Math.Max(a, 0);
                    }
                    break;
                case CellKind.Lstm:
                    AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
                    tape.CPrev![t] = (double[])c.Clone();
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh;
                            double ig = Sigmoid(input[row + j] + recur[row + j]);
                            double fg = Sigmoid(input[row + hidden + j] + recur[row + hidden + j]);
                            double gg = Math.Tanh(input[row + 2 * hidden + j] + recur[row + 2 * hidden + j]);
                            double og = Sigmoid(input[row + 3 * hidden + j] + recur[row + 3 * hidden + j]);
                            (act[row + j], act[row + hidden + j], act[row + 2 * hidden + j], act[row + 3 * hidden + j]) = (ig, fg, gg, og);
                            int k = n * hidden + j;
                            c[k] = fg * c[k] + ig * gg;
                            hNew[k] = og * Math.Tanh(c[k]);
                        }
                    tape.C![t] = (double[])c.Clone();
                    break;
                case CellKind.GruResetAfter:
                case CellKind.GruResetBefore:
                    bool after = cell == CellKind.GruResetAfter;
                    // r and z use W_hh h in both forms; the candidate's recurrent term differs.
                    AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
                    var rowsN = new double[nh];
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh;
                            act[row + j] = Sigmoid(input[row + j] + recur[row + j]);
                            act[row + hidden + j] = Sigmoid(input[row + hidden + j] + recur[row + hidden + j]);
                        }
                    if (!after)
                    {
                        // W_hn (r ⊙ h) + b_hn replaces r ⊙ (W_hn h + b_hn).
                        var rh = new double[nh];
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < hidden; j++)
                                rh[n * hidden + j] = act[n * gh + j] * h[n * hidden + j];
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < hidden; j++)
                            {
                                double sum = w.BiasHH[2 * hidden + j];
                                for (int k = 0; k < hidden; k++) sum += w.WeightHH[(2 * hidden + j) * hidden + k] * rh[n * hidden + k];
                                rowsN[n * hidden + j] = sum;
                            }
                    }
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh, k = n * hidden + j;
                            double hn = recur[row + 2 * hidden + j];
                            double r = act[row + j], z = act[row + hidden + j];
                            double nn = after ? Math.Tanh(input[row + 2 * hidden + j] + r * hn) : Math.Tanh(input[row + 2 * hidden + j] + rowsN[k]);
                            if (after) rowsN[k] = hn;
                            act[row + 2 * hidden + j] = nn;
                            hNew[k] = (1 - z) * nn + z * h[k];
                        }
                    if (after) tape.HiddenN![t] = rowsN;
                    break;
            }
            tape.Gates[t] = act;
            h = hNew;
            hNew.CopyTo(y.Slice(t * nh, nh));
        }
        h.CopyTo(hN);
        if (cell.HasCellState()) c.CopyTo(cN);
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
        int gates = cell.GateCount(), gh = gates * hidden, nh = batch * hidden;
        double[] dh = dhN.ToArray();
        double[] dc = cell.HasCellState() ? dcN.ToArray() : [];
        for (int s = steps - 1; s >= 0; s--)
        {
            int t = reverse ? steps - 1 - s : s;
            var xt = x.Slice(t * batch * inputSize, batch * inputSize);
            for (int i = 0; i < nh; i++) dh[i] += dy[t * nh + i];
            double[] act = tape.Gates[t], hPrev = tape.HPrev[t];
            var dInput = new double[batch * gh];   // gradient of W_ih x + b_ih
            var dRecur = new double[batch * gh];   // gradient of W_hh h + b_hh (reset-before: rows n act on r ⊙ h)
            var dhPrev = new double[nh];
            switch (cell)
            {
                case CellKind.RnnTanh:
                case CellKind.RnnRelu:
                    for (int i = 0; i < nh; i++)
                    {
                        double hv = act[i];
                        // relu: 1 where h is NaN, as PyTorch's threshold_backward passes the gradient there (not
                        // `hv > 0 ? 1 : 0`, which would zero it); a factor, so a NaN dh stays NaN.
                        dInput[i] = dh[i] * (cell == CellKind.RnnTanh ? 1 - hv * hv : hv <= 0 ? 0 : 1);
                    }
                    Array.Copy(dInput, dRecur, dInput.Length);
                    AddOuter(grads.WeightHH, grads.BiasHH, gh, hidden, dRecur, hPrev, batch);
                    AddMatTVec(w.WeightHH, gh, hidden, dRecur, batch, dhPrev);
                    break;
                case CellKind.Lstm:
                    double[] cNew = tape.C![t], cPrev = tape.CPrev![t];
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh, k = n * hidden + j;
                            double ig = act[row + j], fg = act[row + hidden + j], gg = act[row + 2 * hidden + j], og = act[row + 3 * hidden + j];
                            double tc = Math.Tanh(cNew[k]);
                            double dcTotal = dc[k] + dh[k] * og * (1 - tc * tc);
                            dInput[row + j] = dcTotal * gg * ig * (1 - ig);
                            dInput[row + hidden + j] = dcTotal * cPrev[k] * fg * (1 - fg);
                            dInput[row + 2 * hidden + j] = dcTotal * ig * (1 - gg * gg);
                            dInput[row + 3 * hidden + j] = dh[k] * tc * og * (1 - og);
                            dc[k] = dcTotal * fg;
                        }
                    Array.Copy(dInput, dRecur, dInput.Length);
                    AddOuter(grads.WeightHH, grads.BiasHH, gh, hidden, dRecur, hPrev, batch);
                    AddMatTVec(w.WeightHH, gh, hidden, dRecur, batch, dhPrev);
                    break;
                case CellKind.GruResetAfter:
                case CellKind.GruResetBefore:
                    bool after = cell == CellKind.GruResetAfter;
                    var dCandidateRecurrent = new double[nh];    // gradient of the n-gate's recurrent term
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh, k = n * hidden + j;
                            double r = act[row + j], z = act[row + hidden + j], nn = act[row + 2 * hidden + j];
                            double dn = dh[k] * (1 - z) * (1 - nn * nn);
                            dInput[row + hidden + j] = dh[k] * (hPrev[k] - nn) * z * (1 - z);
                            dInput[row + 2 * hidden + j] = dn;
                            dhPrev[k] += dh[k] * z;
                            if (after)
                            {
                                double hn = tape.HiddenN![t][k];
                                dInput[row + j] = dn * hn * r * (1 - r);
                                dCandidateRecurrent[k] = dn * r;
                            }
                            else
                            {
                                dCandidateRecurrent[k] = dn;
                            }
                        }
                    if (!after)
                    {
                        // n = tanh(… + W_hn (r ⊙ h) + b_hn): carry dn back through W_hn to r ⊙ h.
                        var drh = new double[nh];
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < hidden; j++)
                            {
                                double g = dCandidateRecurrent[n * hidden + j];
                                for (int k = 0; k < hidden; k++) drh[n * hidden + k] += w.WeightHH[(2 * hidden + j) * hidden + k] * g;
                            }
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < hidden; j++)
                            {
                                int row = n * gh, k = n * hidden + j;
                                double r = act[row + j];
                                dInput[row + j] = drh[k] * hPrev[k] * r * (1 - r);
                                dhPrev[k] += drh[k] * r;
                            }
                    }
                    for (int n = 0; n < batch; n++)
                        for (int j = 0; j < hidden; j++)
                        {
                            int row = n * gh;
                            dRecur[row + j] = dInput[row + j];
                            dRecur[row + hidden + j] = dInput[row + hidden + j];
                            dRecur[row + 2 * hidden + j] = dCandidateRecurrent[n * hidden + j];
                        }
                    if (after)
                    {
                        AddOuter(grads.WeightHH, grads.BiasHH, gh, hidden, dRecur, hPrev, batch);
                        AddMatTVec(w.WeightHH, gh, hidden, dRecur, batch, dhPrev);
                    }
                    else
                    {
                        // Rows r and z of W_hh see h; rows n see r ⊙ h.
                        var rh = new double[nh];
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < hidden; j++)
                                rh[n * hidden + j] = act[n * gh + j] * hPrev[n * hidden + j];
                        for (int n = 0; n < batch; n++)
                            for (int j = 0; j < gh; j++)
                            {
                                double g = dRecur[n * gh + j];
                                grads.BiasHH[j] += g;
                                var source = j < 2 * hidden ? hPrev : rh;
                                for (int k = 0; k < hidden; k++) grads.WeightHH[j * hidden + k] += g * source[n * hidden + k];
                                if (j < 2 * hidden)
                                    for (int k = 0; k < hidden; k++) dhPrev[n * hidden + k] += w.WeightHH[j * hidden + k] * g;
                            }
                    }
                    break;
            }
            AddOuter(grads.WeightIH, grads.BiasIH, gh, inputSize, dInput, xt, batch);
            AddMatTVec(w.WeightIH, gh, inputSize, dInput, batch, dx.Slice(t * batch * inputSize, batch * inputSize));
            dh = dhPrev;
        }
        dh.CopyTo(dh0);
        if (cell.HasCellState()) dc.CopyTo(dc0);
    }
}
