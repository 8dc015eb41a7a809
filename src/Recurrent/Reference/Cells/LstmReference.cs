namespace Recurrent.Reference;

/// <summary>LSTM: gates i, f, g, o; c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').</summary>
internal sealed class LstmReference : IReferenceCell
{
    private static double Sigmoid(double v) => ReferenceCell.Sigmoid(v);

    public CellKind Kind => CellKind.Lstm;

    public ReferenceStep Forward(DirectionWeights w, int batch, int hidden, double[] input, double[][] states)
    {
        double[] h = states[0], c = states[1];
        int gh = 4 * hidden, nh = batch * hidden;
        var recur = new double[batch * gh];    // W_hh h + b_hh
        ReferenceCell.AddMatVec(w.WeightHH, w.BiasHH, gh, hidden, h, batch, recur);
        var act = new double[batch * gh];
        var hNew = new double[nh];
        var cNew = new double[nh];
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
                cNew[k] = fg * c[k] + ig * gg;
                hNew[k] = og * Math.Tanh(cNew[k]);
            }
        return new ReferenceStep { Start = states, End = [hNew, cNew], Gates = act };
    }

    public double[][] Backward(DirectionWeights w, ReferenceStep step, int batch, int hidden, double[][] dStates, double[] dInput, DirectionWeights grads)
    {
        double[] dh = dStates[0], dc = dStates[1];
        double[] act = step.Gates, hPrev = step.Start[0], cPrev = step.Start[1], cNew = step.End[1];
        int gh = 4 * hidden, nh = batch * hidden;
        var dhPrev = new double[nh];
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
        // Every gate sees W_ih x and W_hh h alike: the pre-activation's gradient serves both products.
        ReferenceCell.AddOuter(grads.WeightHH, grads.BiasHH, gh, hidden, dInput, hPrev, batch);
        ReferenceCell.AddMatTVec(w.WeightHH, gh, hidden, dInput, batch, dhPrev);
        return [dhPrev, dc];
    }
}
