namespace Recurrent.Reference;

/// <summary>Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu.</summary>
internal sealed class ElmanReference : IReferenceCell
{
    public static readonly ElmanReference Tanh = new(CellKind.RnnTanh);
    public static readonly ElmanReference Relu = new(CellKind.RnnRelu);

    private ElmanReference(CellKind kind) => Kind = kind;

    public CellKind Kind { get; }

    public ReferenceStep Forward(DirectionWeights w, int batch, int hidden, double[] input, double[][] states)
    {
        double[] h = states[0];
        int nh = batch * hidden;
        var recur = new double[nh];    // W_hh h + b_hh
        ReferenceCell.AddMatVec(w.WeightHH, w.BiasHH, hidden, hidden, h, batch, recur);
        var act = new double[nh];
        var hNew = new double[nh];
        for (int i = 0; i < nh; i++)
        {
            double a = input[i] + recur[i];
            hNew[i] = act[i] = Kind == CellKind.RnnTanh ? Math.Tanh(a) : Math.Max(a, 0);
        }
        return new ReferenceStep { Start = states, End = [hNew], Gates = act };
    }

    public double[][] Backward(DirectionWeights w, ReferenceStep step, int batch, int hidden, double[][] dStates, double[] dInput, DirectionWeights grads)
    {
        double[] dh = dStates[0], act = step.Gates, hPrev = step.Start[0];
        int nh = batch * hidden;
        var dhPrev = new double[nh];
        for (int i = 0; i < nh; i++)
        {
            double hv = act[i];
            // relu: 1 where h is NaN, as PyTorch's threshold_backward passes the gradient there (not
            // `hv > 0 ? 1 : 0`, which would zero it); a factor, so a NaN dh stays NaN.
            dInput[i] = dh[i] * (Kind == CellKind.RnnTanh ? 1 - hv * hv : hv <= 0 ? 0 : 1);
        }
        // One gate block: the pre-activation's gradient is the same for W_ih x and W_hh h.
        ReferenceCell.AddOuter(grads.WeightHH, grads.BiasHH, hidden, hidden, dInput, hPrev, batch);
        ReferenceCell.AddMatTVec(w.WeightHH, hidden, hidden, dInput, batch, dhPrev);
        return [dhPrev];
    }
}
