using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>
/// The computation of <see cref="OutputRecurrentNetwork"/> in any element type, on any <see cref="IMatrixOps{T}"/>:
/// h_t = act(b + o′_{t−1}·W + x_t·U), o_t = c + h_t·V, where o′_{t−1} is the fed-back value (the target y_{t−1} under
/// teacher forcing, the model's own output when free running, the start value at t = 0). Weights are stored
/// [in, out] (U [I, H], W [O, H], V [H, O]) so that a one-hot fed-back token selects a row of W.
/// Callers validate every argument; nothing here checks shapes. Not for concurrent use: it keeps workspaces between calls.
/// </summary>
internal sealed class OutputRecurrentEngine<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public const int InputWeight = 0, FeedbackWeight = 1, HiddenBias = 2, OutputWeight = 3, OutputBias = 4;

    public OutputRecurrentEngine(int inputSize, int hiddenSize, int outputSize, SequenceLoss loss, RnnActivation activation, int startToken, IMatrixOps<T> ops)
    {
        (InputSize, HiddenSize, OutputSize, Loss, Activation, StartToken, Ops) = (inputSize, hiddenSize, outputSize, loss, activation, startToken, ops);
        int[] lengths = [inputSize * hiddenSize, outputSize * hiddenSize, hiddenSize, hiddenSize * outputSize, outputSize];
        Values = Array.ConvertAll(lengths, n => new T[n]);
        Grads = Array.ConvertAll(lengths, n => new T[n]);
    }

    public int InputSize { get; }
    public int HiddenSize { get; }
    public int OutputSize { get; }
    public SequenceLoss Loss { get; }
    public RnnActivation Activation { get; }
    /// <summary>The token fed back at t = 0 (<see cref="SequenceLoss.SoftmaxCrossEntropy"/>); −1 feeds zeros.</summary>
    public int StartToken { get; }
    public IMatrixOps<T> Ops { get; }
    /// <summary>U [I, H], W [O, H], b [H], V [H, O], c [O], in that order (the constants above).</summary>
    public T[][] Values { get; }
    /// <summary>Gradients, same order and shapes as <see cref="Values"/>; training steps add into them.</summary>
    public T[][] Grads { get; }

    private bool Discrete => Loss == SequenceLoss.SoftmaxCrossEntropy;

    private T[] _hidden = [], _output = [], _hiddenGradient = [], _outputTable = [], _tableSums = [];

    /// <summary>
    /// One teacher-forced training step: returns the mean loss over the T·N predictions and adds its gradients into
    /// <see cref="Grads"/>. <paramref name="x"/> [T, N, I] (empty when I = 0); targets are <paramref name="ids"/> [T, N]
    /// or <paramref name="values"/> [T, N, O].
    /// </summary>
    public T Train(TrainingSchedule schedule, ReadOnlySpan<T> x, int steps, int batch, int[]? ids, ReadOnlySpan<T> values) =>
        schedule == TrainingSchedule.StepByStep
            ? TrainStepByStep(x, steps, batch, ids, values)
            : TrainParallel(x, steps, batch, ids, values);

    private T TrainParallel(ReadOnlySpan<T> x, int steps, int batch, int[]? ids, ReadOnlySpan<T> values)
    {
        int rows = steps * batch, hidden = HiddenSize, outputs = OutputSize;
        int[]? fedBack = Discrete ? TeacherForcing.FedBackTokens(ids!, steps, batch, StartToken) : null;
        if (Discrete && InputSize == 0 && OutputSize + 1 < rows) return TrainParallelByToken(fedBack!, ids!, rows);
        var h = Workspace(ref _hidden, rows * hidden);
        HiddenForward(x, fedBack, values, 0, rows, batch, h);
        var o = Workspace(ref _output, rows * outputs);
        OutputForward(h, rows, o);

        T scale = T.One / T.CreateChecked(rows);
        T loss = Discrete ? Ops.SoftmaxCrossEntropy(o, outputs, ids, scale) : Ops.SquaredError(o, values, scale);
        var dh = Workspace(ref _hiddenGradient, rows * hidden);
        OutputBackward(h, o, rows, dh);
        HiddenBackward(x, fedBack, values, 0, rows, batch, h, dh);
        return loss * scale;
    }

    /// <summary>
    /// The parallel step of a network driven by its fed-back tokens alone (I = 0): h_t = act(b + W[y_{t−1}]) depends on
    /// nothing but the token, so of the T·N rows there are only O + 1 different hidden states and logits (the last for the
    /// zero start value). They are computed once per token, gathered into the T·N rows for the loss, and the loss's
    /// gradient is summed per fed-back token before every product: the products run over O + 1 rows instead of T·N, which
    /// only the parallel schedule can do, as it sees every step's token at once.
    /// </summary>
    private T TrainParallelByToken(int[] fedBack, int[] ids, int rows)
    {
        int hidden = HiddenSize, outputs = OutputSize, tokens = outputs + 1, zeroStart = outputs;
        // Row v of the tables is token v; row O is the zero start value (fedBack −1), which adds no row of W.
        var tokenIds = new int[tokens];
        for (int v = 0; v < tokens; v++) tokenIds[v] = v < outputs ? v : -1;
        var rowTokens = Array.ConvertAll(fedBack, token => token < 0 ? zeroStart : token);

        var hTable = Workspace(ref _hidden, tokens * hidden);
        Ops.BroadcastRows(Values[HiddenBias], hTable);
        Ops.GatherRowsAdd(Values[FeedbackWeight], hidden, tokenIds, hTable);
        Ops.Activate(Activation, hTable);
        var oTable = Workspace(ref _outputTable, tokens * outputs);
        OutputForward(hTable, tokens, oTable);

        var logits = Workspace(ref _output, rows * outputs);
        logits.Clear();
        Ops.GatherRowsAdd(oTable, outputs, rowTokens, logits);
        T scale = T.One / T.CreateChecked(rows);
        T loss = Ops.SoftmaxCrossEntropy(logits, outputs, ids, scale);

        var dOutputTable = Workspace(ref _tableSums, tokens * outputs);
        dOutputTable.Clear();
        Ops.ScatterRowsAdd(logits, outputs, rowTokens, dOutputTable);
        var dhTable = Workspace(ref _hiddenGradient, tokens * hidden);
        OutputBackward(hTable, dOutputTable, tokens, dhTable);
        Ops.ActivationBackward(Activation, hTable, dhTable, hidden, Grads[HiddenBias]);
        Ops.ScatterRowsAdd(dhTable, hidden, tokenIds, Grads[FeedbackWeight]);
        return loss * scale;
    }

    private T TrainStepByStep(ReadOnlySpan<T> x, int steps, int batch, int[]? ids, ReadOnlySpan<T> values)
    {
        int hidden = HiddenSize, outputs = OutputSize, nh = batch * hidden, no = batch * outputs;
        int[]? fedBack = Discrete ? TeacherForcing.FedBackTokens(ids!, steps, batch, StartToken) : null;
        T scale = T.One / T.CreateChecked(steps * batch), loss = T.Zero;
        // As autograd runs a loop written over t: every step's activations kept, then backward from the last step.
        // The buffers are the parallel schedule's, used one step-sized slice at a time.
        var h = Workspace(ref _hidden, steps * nh);
        var dOutput = Workspace(ref _output, steps * no);
        for (int t = 0; t < steps; t++)
        {
            HiddenForward(x, fedBack, values, t * batch, batch, batch, h.Slice(t * nh, nh));
            OutputForward(h.Slice(t * nh, nh), batch, dOutput.Slice(t * no, no));
            loss += Discrete
                ? Ops.SoftmaxCrossEntropy(dOutput.Slice(t * no, no), outputs, ids.AsSpan(t * batch, batch), scale)
                : Ops.SquaredError(dOutput.Slice(t * no, no), values.Slice(t * no, no), scale);
        }
        var dh = Workspace(ref _hiddenGradient, nh);
        for (int t = steps - 1; t >= 0; t--)
        {
            OutputBackward(h.Slice(t * nh, nh), dOutput.Slice(t * no, no), batch, dh);
            HiddenBackward(x, fedBack, values, t * batch, batch, batch, h.Slice(t * nh, nh), dh);
        }
        return loss * scale;
    }

    /// <summary>
    /// A buffer of <paramref name="length"/> elements, kept between calls: a training step at T = 100, N = 64, H = 512
    /// needs tens of MB, and fresh large arrays cost page faults and full collections on every step. Contents are stale;
    /// every user overwrites before reading.
    /// </summary>
    private static Span<T> Workspace(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer.AsSpan(0, length);
    }

    /// <summary>The outputs o [T, N, O] (logits or values) under teacher forcing, computed over all T·N rows at once.</summary>
    public void TeacherForcedOutputs(ReadOnlySpan<T> x, int steps, int batch, int[]? ids, ReadOnlySpan<T> values, Span<T> outputs)
    {
        int rows = steps * batch;
        var h = new T[rows * HiddenSize];
        HiddenForward(x, Discrete ? TeacherForcing.FedBackTokens(ids!, steps, batch, StartToken) : null, values, 0, rows, batch, h);
        OutputForward(h, rows, outputs);
    }

    /// <summary>
    /// Free running: each step feeds back the model's own previous output (its argmax token for discrete outputs).
    /// Writes o [T, N, O] and, for discrete outputs, the tokens [T, N].
    /// </summary>
    public void Generate(ReadOnlySpan<T> x, int steps, int batch, Span<T> outputs, int[]? tokens)
    {
        int hidden = HiddenSize, width = OutputSize;
        var h = new T[batch * hidden];
        var fedBack = new int[steps * batch];
        if (Discrete) fedBack.AsSpan(0, batch).Fill(StartToken);
        for (int t = 0; t < steps; t++)
        {
            // At step t the fed-back values are rows [t−1] of outputs (real) or fedBack (tokens): both were written by step t−1.
            HiddenForward(x, fedBack, outputs, t * batch, batch, batch, h);
            var o = outputs.Slice(t * batch * width, batch * width);
            OutputForward(h, batch, o);
            if (!Discrete) continue;
            for (int n = 0; n < batch; n++)
            {
                int token = TeacherForcing.ArgMax<T>(o.Slice(n * width, width));
                tokens![t * batch + n] = token;
                if (t + 1 < steps) fedBack[(t + 1) * batch + n] = token;
            }
        }
    }

    /// <summary>Adds −learningRate · gradient to every parameter.</summary>
    public void SgdStep(T learningRate)
    {
        for (int p = 0; p < Values.Length; p++)
            for (int i = 0; i < Values[p].Length; i++) Values[p][i] -= learningRate * Grads[p][i];
    }

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrad()
    {
        foreach (var g in Grads) Array.Clear(g);
    }


    /// <summary>
    /// h = act(b + o′·W + x·U) for rows [firstRow, firstRow + rows) of the T·N rows. The fed-back value of row r is
    /// fedBack[r] (a token) or row r − N of <paramref name="fedBackValues"/> (real), nothing in the first N rows but the start value (zeros or start token).
    /// </summary>
    private void HiddenForward(ReadOnlySpan<T> x, int[]? fedBack, ReadOnlySpan<T> fedBackValues, int firstRow, int rows, int batch, Span<T> h)
    {
        int hidden = HiddenSize, inputs = InputSize, outputs = OutputSize;
        Ops.BroadcastRows(Values[HiddenBias], h);
        if (inputs > 0)
            Ops.Gemm(false, false, rows, hidden, inputs, T.One, x.Slice(firstRow * inputs, rows * inputs), inputs, Values[InputWeight], hidden, T.One, h, hidden);
        if (Discrete)
            Ops.GatherRowsAdd(Values[FeedbackWeight], hidden, fedBack.AsSpan(firstRow, rows), h);
        else
        {
            // Rows of the first step have the zero start value: they skip the product.
            int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
            if (fed > 0)
                Ops.Gemm(false, false, fed, hidden, outputs, T.One, fedBackValues.Slice((firstRow + skipped - batch) * outputs, fed * outputs), outputs,
                    Values[FeedbackWeight], hidden, T.One, h.Slice(skipped * hidden), hidden);
        }
        Ops.Activate(Activation, h);
    }

    /// <summary>o = c + h·V over <paramref name="rows"/> rows.</summary>
    private void OutputForward(ReadOnlySpan<T> h, int rows, Span<T> o)
    {
        Ops.BroadcastRows(Values[OutputBias], o);
        Ops.Gemm(false, false, rows, OutputSize, HiddenSize, T.One, h, HiddenSize, Values[OutputWeight], OutputSize, T.One, o, OutputSize);
    }

    /// <summary>From dO [rows, O]: adds dV and dc, writes dh [rows, H].</summary>
    private void OutputBackward(ReadOnlySpan<T> h, ReadOnlySpan<T> dOutput, int rows, Span<T> dh)
    {
        int hidden = HiddenSize, outputs = OutputSize;
        Ops.Gemm(true, false, hidden, outputs, rows, T.One, h, hidden, dOutput, outputs, T.One, Grads[OutputWeight], outputs);
        Ops.AddColumnSums(dOutput, outputs, Grads[OutputBias]);
        Ops.Gemm(false, true, rows, hidden, outputs, T.One, dOutput, outputs, Values[OutputWeight], outputs, T.Zero, dh, hidden);
    }

    /// <summary>From dh [rows, H] (overwritten with dz): adds db, dU and dW for rows [firstRow, firstRow + rows).</summary>
    private void HiddenBackward(ReadOnlySpan<T> x, int[]? fedBack, ReadOnlySpan<T> fedBackValues, int firstRow, int rows, int batch, ReadOnlySpan<T> h, Span<T> dh)
    {
        int hidden = HiddenSize, inputs = InputSize, outputs = OutputSize;
        Ops.ActivationBackward(Activation, h, dh, hidden, Grads[HiddenBias]);
        if (inputs > 0)
            Ops.Gemm(true, false, inputs, hidden, rows, T.One, x.Slice(firstRow * inputs, rows * inputs), inputs, dh, hidden, T.One, Grads[InputWeight], hidden);
        if (Discrete)
            Ops.ScatterRowsAdd(dh, hidden, fedBack.AsSpan(firstRow, rows), Grads[FeedbackWeight]);
        else
        {
            int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
            if (fed > 0)
                Ops.Gemm(true, false, outputs, hidden, fed, T.One, fedBackValues.Slice((firstRow + skipped - batch) * outputs, fed * outputs), outputs,
                    dh.Slice(skipped * hidden), hidden, T.One, Grads[FeedbackWeight], hidden);
        }
    }

}
