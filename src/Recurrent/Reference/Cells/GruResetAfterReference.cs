namespace Recurrent.Reference;

/// <summary>GRU, PyTorch's and cuDNN's form: gates r, z, n; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.</summary>
internal sealed class GruResetAfterReference : IReferenceCell
{
    private static double Sigmoid(double v) => ReferenceCell.Sigmoid(v);

    public CellKind Kind => CellKind.GruResetAfter;

    public ReferenceStep Forward(DirectionWeights w, int batch, int hidden, double[] input, double[][] states)
    {
        double[] h = states[0];
        int gh = 3 * hidden, nh = batch * hidden;
        var recur = new double[batch * gh];    // W_hh h + b_hh, all three blocks
        ReferenceCell.AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
        var act = new double[batch * gh];
        var hNew = new double[nh];
        var hiddenN = new double[nh];          // W_hn h + b_hn, which backward needs for dr
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh;
                act[row + j] = Sigmoid(input[row + j] + recur[row + j]);
                act[row + hidden + j] = Sigmoid(input[row + hidden + j] + recur[row + hidden + j]);
            }
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh, k = n * hidden + j;
                double hn = recur[row + 2 * hidden + j];
                double r = act[row + j], z = act[row + hidden + j];
                double nn = Math.Tanh(input[row + 2 * hidden + j] + r * hn);
                hiddenN[k] = hn;
                act[row + 2 * hidden + j] = nn;
                hNew[k] = (1 - z) * nn + z * h[k];
            }
        return new ReferenceStep { Start = states, End = [hNew], Gates = act, Saved = hiddenN };
    }

    public double[][] Backward(DirectionWeights w, ReferenceStep step, int batch, int hidden, double[][] dStates, double[] dInput, DirectionWeights grads)
    {
        double[] dh = dStates[0], act = step.Gates, hPrev = step.Start[0], hiddenN = step.Saved!;
        int gh = 3 * hidden, nh = batch * hidden;
        var dhPrev = new double[nh];
        var dRecur = new double[batch * gh];    // gradient of W_hh h + b_hh
        var dCandidateRecurrent = new double[nh];    // gradient of W_hn h + b_hn
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh, k = n * hidden + j;
                double r = act[row + j], z = act[row + hidden + j], nn = act[row + 2 * hidden + j];
                double dn = dh[k] * (1 - z) * (1 - nn * nn);
                dInput[row + hidden + j] = dh[k] * (hPrev[k] - nn) * z * (1 - z);
                dInput[row + 2 * hidden + j] = dn;
                dhPrev[k] += dh[k] * z;
                double hn = hiddenN[k];
                dInput[row + j] = dn * hn * r * (1 - r);
                dCandidateRecurrent[k] = dn * r;
            }
        // r and z see both products alike; the candidate's recurrent term is scaled by r, its input term is not.
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < hidden; j++)
            {
                int row = n * gh;
                dRecur[row + j] = dInput[row + j];
                dRecur[row + hidden + j] = dInput[row + hidden + j];
                dRecur[row + 2 * hidden + j] = dCandidateRecurrent[n * hidden + j];
            }
        ReferenceCell.AddOuter(grads.WeightHH, grads.BiasHH, gh, hidden, dRecur, hPrev, batch);
        ReferenceCell.AddMatTVec(w.WeightHH, gh, hidden, dRecur, batch, dhPrev);
        return [dhPrev];
    }
}
