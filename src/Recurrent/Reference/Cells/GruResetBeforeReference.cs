namespace Recurrent.Reference;

/// <summary>
/// GRU, the Deep Learning book's form: gates r, z, n; n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn),
/// h' = (1 − z) ⊙ n + z ⊙ h. W_hh's rows r and z act on h, its rows n on r ⊙ h.
/// </summary>
internal sealed class GruResetBeforeReference : IReferenceCell
{
    private static double Sigmoid(double v) => ReferenceCell.Sigmoid(v);

    public CellKind Kind => CellKind.GruResetBefore;

    public ReferenceStep Forward(DirectionWeights w, int batch, int hidden, double[] input, double[][] states)
    {
        double[] h = states[0];
        int gh = 3 * hidden, nh = batch * hidden;
        // All three blocks of W_hh h + b_hh, though only r and z use theirs: the rows n wait for r.
        var recur = new double[batch * gh];
        ReferenceCell.AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
        var act = new double[batch * gh];
        var hNew = new double[nh];
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh;
                act[row + j] = Sigmoid(input[row + j] + recur[row + j]);
                act[row + hidden + j] = Sigmoid(input[row + hidden + j] + recur[row + hidden + j]);
            }
        var rh = new double[nh];
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
                rh[n * hidden + j] = act[n * gh + j] * h[n * hidden + j];
        var rowsN = new double[nh];    // W_hn (r ⊙ h) + b_hn
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                double sum = w.BiasHH[2 * hidden + j];
                for (int k = 0; k < hidden; k++) sum += w.WeightHH[(2 * hidden + j) * hidden + k] * rh[n * hidden + k];
                rowsN[n * hidden + j] = sum;
            }
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh, k = n * hidden + j;
                double z = act[row + hidden + j];
                double nn = Math.Tanh(input[row + 2 * hidden + j] + rowsN[k]);
                act[row + 2 * hidden + j] = nn;
                hNew[k] = (1 - z) * nn + z * h[k];
            }
        return new ReferenceStep { Start = states, End = [hNew], Gates = act };
    }

    public double[][] Backward(DirectionWeights w, ReferenceStep step, int batch, int hidden, double[][] dStates, double[] dInput, DirectionWeights grads)
    {
        double[] dh = dStates[0], act = step.Gates, hPrev = step.Start[0];
        int gh = 3 * hidden, nh = batch * hidden;
        var dhPrev = new double[nh];
        var dRecur = new double[batch * gh];    // gradient of W_hh's products: rows r, z of W_hh h, rows n of W_hn (r ⊙ h)
        var dCandidateRecurrent = new double[nh];    // gradient of W_hn (r ⊙ h) + b_hn
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh, k = n * hidden + j;
                double z = act[row + hidden + j], nn = act[row + 2 * hidden + j];
                double dn = dh[k] * (1 - z) * (1 - nn * nn);
                dInput[row + hidden + j] = dh[k] * (hPrev[k] - nn) * z * (1 - z);
                dInput[row + 2 * hidden + j] = dn;
                dhPrev[k] += dh[k] * z;
                dCandidateRecurrent[k] = dn;
            }
        // Carry dn back through W_hn to r ⊙ h, then to r and h.
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
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh;
                dRecur[row + j] = dInput[row + j];
                dRecur[row + hidden + j] = dInput[row + hidden + j];
                dRecur[row + 2 * hidden + j] = dCandidateRecurrent[n * hidden + j];
            }
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
                // Rows n reached h through r ⊙ h above; only rows r and z carry it back directly.
                if (j < 2 * hidden)
                    for (int k = 0; k < hidden; k++) dhPrev[n * hidden + k] += w.WeightHH[j * hidden + k] * g;
            }
        return [dhPrev];
    }
}
