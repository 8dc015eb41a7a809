using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>
/// What <see cref="OutputRecurrentNetwork"/> sees of its computation, whatever it runs on: the sizes and the parameters
/// with their gradients, on the host (the truth: users read and change them between steps), and the three entry points.
/// The computation itself is <see cref="OutputRecurrentEngine{T, TData, TIds}"/>, written once over
/// <see cref="IMatrixOps{T, TData, TIds}"/>.
/// </summary>
internal abstract class OutputRecurrentEngine<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public const int InputWeight = 0, FeedbackWeight = 1, HiddenBias = 2, OutputWeight = 3, OutputBias = 4, ParameterCount = 5;

    /// <summary>An engine over the given host parameters (5 each, in the order of the constants above), or over arrays of its own when null.</summary>
    protected OutputRecurrentEngine(int inputSize, int hiddenSize, int outputSize, SequenceLoss loss, RnnActivation activation, int startToken,
        Memory<T>[]? values, Memory<T>[]? grads)
    {
        (InputSize, HiddenSize, OutputSize, Loss, Activation, StartToken) = (inputSize, hiddenSize, outputSize, loss, activation, startToken);
        int[] lengths = [inputSize * hiddenSize, outputSize * hiddenSize, hiddenSize, hiddenSize * outputSize, outputSize];
        Values = values ?? Array.ConvertAll(lengths, n => (Memory<T>)new T[n]);
        Grads = grads ?? Array.ConvertAll(lengths, n => (Memory<T>)new T[n]);
    }

    public int InputSize { get; }
    public int HiddenSize { get; }
    public int OutputSize { get; }
    public SequenceLoss Loss { get; }
    public RnnActivation Activation { get; }
    /// <summary>The token fed back at t = 0 (<see cref="SequenceLoss.SoftmaxCrossEntropy"/>); −1 feeds zeros.</summary>
    public int StartToken { get; }
    /// <summary>The name of the operations it runs on.</summary>
    public abstract string OpsName { get; }
    /// <summary>U [I, H], W [O, H], b [H], V [H, O], c [O], in that order (the constants above), on the host.</summary>
    public Memory<T>[] Values { get; }
    /// <summary>Gradients on the host, same order and shapes as <see cref="Values"/>; training steps add into them.</summary>
    public Memory<T>[] Grads { get; }

    protected bool Discrete => Loss == SequenceLoss.SoftmaxCrossEntropy;

    /// <summary>
    /// One teacher-forced training step: returns the mean loss over the real predictions (T·N, or Σ lengths) and adds its
    /// gradients into <see cref="Grads"/>. <paramref name="x"/> [T, N, I] (empty when I = 0); targets are
    /// <paramref name="ids"/> [T, N] or <paramref name="values"/> [T, N, O]; <paramref name="lengths"/> [N] or null (see
    /// <see cref="SequenceTargets"/>). The steps do not depend on each other under teacher forcing, so lengths only mask
    /// the loss: every row is computed, and those past an end (fed back a −1 token or a zero row, see
    /// <see cref="TeacherForcing"/>) get a zero output gradient, which makes their share of every gradient zero.
    /// </summary>
    public abstract T Train(TrainingSchedule schedule, ReadOnlyMemory<T> x, int steps, int batch, int[]? ids, ReadOnlyMemory<T> values, int[]? lengths = null);

    /// <summary>
    /// The outputs o [T, N, O] (logits or values) under teacher forcing, computed over all T·N rows at once; zero past
    /// each end with <paramref name="lengths"/>.
    /// </summary>
    public abstract void TeacherForcedOutputs(ReadOnlyMemory<T> x, int steps, int batch, int[]? ids, ReadOnlyMemory<T> values, Memory<T> outputs, int[]? lengths = null);

    /// <summary>
    /// Free running: each step feeds back the model's own previous output (its argmax token for discrete outputs).
    /// Writes o [T, N, O] and, for discrete outputs, the tokens [T, N].
    /// </summary>
    public abstract void Generate(ReadOnlyMemory<T> x, int steps, int batch, Memory<T> outputs, int[]? tokens);
}

/// <summary>Creates engines, inferring the buffer types from the operations.</summary>
internal static class OutputRecurrentEngine
{
    /// <summary>An engine on <paramref name="ops"/> over the given host parameters, or over arrays of its own when null.</summary>
    public static OutputRecurrentEngine<T, TData, TIds> Create<T, TData, TIds>(int inputSize, int hiddenSize, int outputSize, SequenceLoss loss,
        RnnActivation activation, int startToken, IMatrixOps<T, TData, TIds> ops, Memory<T>[]? values = null, Memory<T>[]? grads = null)
        where T : unmanaged, IFloatingPointIeee754<T> where TData : struct where TIds : struct =>
        new(inputSize, hiddenSize, outputSize, loss, activation, startToken, ops, values, grads);
}

/// <summary>
/// The computation of <see cref="OutputRecurrentNetwork"/> in any element type, on any <see cref="IMatrixOps{T, TData, TIds}"/>:
/// h_t = act(b + o′_{t−1}·W + x_t·U), o_t = c + h_t·V, where o′_{t−1} is the fed-back value (the target y_{t−1} under
/// teacher forcing, the model's own output when free running, the start value at t = 0). Weights are stored
/// [in, out] (U [I, H], W [O, H], V [H, O]) so that a one-hot fed-back token selects a row of W.
/// Each call first makes the host parameters readable by the operations and ends by adding the gradients into the host
/// ones; on the host both are the identity, on a device they are one upload of every value and one download of every
/// gradient per call (see <see cref="IMatrixOps{T, TData, TIds}.Upload"/>). Inputs and targets go over once per call.
/// Callers validate every argument; nothing here checks shapes. Not for concurrent use: it keeps workspaces between calls.
/// </summary>
internal sealed class OutputRecurrentEngine<T, TData, TIds> : OutputRecurrentEngine<T>
    where T : unmanaged, IFloatingPointIeee754<T> where TData : struct where TIds : struct
{
    public OutputRecurrentEngine(int inputSize, int hiddenSize, int outputSize, SequenceLoss loss, RnnActivation activation, int startToken, IMatrixOps<T, TData, TIds> ops,
        Memory<T>[]? values = null, Memory<T>[]? grads = null)
        : base(inputSize, hiddenSize, outputSize, loss, activation, startToken, values, grads)
    {
        Ops = ops;
        _targets = new(ops, loss, outputSize);
    }

    public IMatrixOps<T, TData, TIds> Ops { get; }

    public override string OpsName => Ops.Name;

    /// <summary>The parameters and gradients as the operations see them during a call, and where they are staged.</summary>
    private readonly TData[] _values = new TData[ParameterCount], _grads = new TData[ParameterCount];
    private readonly TData[] _valueStages = new TData[ParameterCount], _gradStages = new TData[ParameterCount];

    private readonly TeacherForcedTargets<T, TData, TIds> _targets;
    private TData _inputStage, _hidden, _output, _hiddenGradient, _outputTable, _countStage, _lossSum;
    private TIds _tableTokenStage;
    /// <summary><see cref="TrainParallelByToken"/>'s host data: the table's tokens [O + 1] and the target counts [O + 1, O].</summary>
    private int[] _tableTokens = [];
    private T[] _counts = [];

    public override T Train(TrainingSchedule schedule, ReadOnlyMemory<T> x, int steps, int batch, int[]? ids, ReadOnlyMemory<T> values, int[]? lengths = null)
    {
        BindParameters(withGradients: true);
        var input = Ops.Upload(x, ref _inputStage);
        _targets.Stage(ids, values, steps, batch, StartToken, lengths);
        T loss = schedule == TrainingSchedule.StepByStep ? TrainStepByStep(input, steps, batch)
            : Discrete && InputSize == 0 && OutputSize + 1 < steps * batch ? TrainParallelByToken(steps, batch)
            : TrainParallel(input, steps, batch);
        for (int p = 0; p < ParameterCount; p++) Ops.AddToHost(_grads[p], Grads[p]);
        return loss;
    }

    /// <summary>Values (and zeroed gradient accumulators) where the operations read them.</summary>
    private void BindParameters(bool withGradients)
    {
        for (int p = 0; p < ParameterCount; p++)
        {
            _values[p] = Ops.Upload(Values[p], ref _valueStages[p]);
            if (withGradients) _grads[p] = Ops.GradientAccumulator(Grads[p], ref _gradStages[p]);
        }
    }

    private T TrainParallel(TData x, int steps, int batch)
    {
        int rows = steps * batch, hidden = HiddenSize, outputs = OutputSize;
        var h = Ops.Workspace(ref _hidden, rows * hidden);
        HiddenForward(x, _targets.Tokens, _targets.Values, 0, rows, batch, h);
        var o = Ops.Workspace(ref _output, rows * outputs);
        OutputForward(h, rows, o);

        var lossSum = ZeroLoss();
        _targets.AddLoss(o, batch, 0, rows, lossSum);
        var dh = Ops.Workspace(ref _hiddenGradient, rows * hidden);
        OutputBackward(h, o, rows, dh);
        HiddenBackward(x, _targets.Tokens, _targets.Values, 0, rows, batch, h, dh);
        return Ops.ReadScalar(lossSum) * _targets.Scale;
    }

    /// <summary>
    /// The parallel step of a network driven by its fed-back tokens alone (I = 0): h_t = act(b + W[y_{t−1}]) depends on
    /// nothing but the token, so of the T·N predictions there are only O + 1 different ones (the last for the zero start
    /// value). Each is computed once, and the loss needs of the T·N rows only how often each (fed-back token, target) pair
    /// occurs: the cross-entropy of O + 1 rows against those counts has the same value and gradient as that of the T·N
    /// rows. Every product and pass then runs over O + 1 rows instead of T·N, which only the parallel schedule can do, as
    /// it sees every step's token at once; a hand-written loop over t sees N tokens at a time. Reads the staged host
    /// tokens (<see cref="TeacherForcedTargets{T, TData, TIds}.HostTokens"/>): row r is fed back tokens[r] and has target
    /// tokens[N + r], −1 past a sequence's end, where the row is not counted at all.
    /// </summary>
    private T TrainParallelByToken(int steps, int batch)
    {
        int rows = steps * batch, hidden = HiddenSize, outputs = OutputSize, zeroStart = outputs;
        var tokens = _targets.HostTokens;
        // One table row per fed-back value that occurs in a counted row (a token, or the zero start value fed back as −1,
        // which adds no row of W), in order of value. Values that never occur get no row: the T·N rows never compute
        // them (or only past an end), so a NaN in an unused row of W must not reach the loss or the gradients through a
        // zero count.
        var rowOf = new int[outputs + 1];
        for (int r = 0; r < rows; r++)
        {
            if (tokens[batch + r] < 0) continue;
            int fedBack = tokens[r];
            rowOf[fedBack < 0 ? zeroStart : fedBack] = 1;
        }
        int tableRows = 0;
        for (int v = 0; v <= outputs; v++) rowOf[v] = rowOf[v] == 0 ? -1 : tableRows++;
        if (_tableTokens.Length != tableRows) _tableTokens = new int[tableRows];
        for (int v = 0; v <= outputs; v++)
            if (rowOf[v] >= 0) _tableTokens[rowOf[v]] = v < outputs ? v : -1;
        var tableIds = Ops.UploadIds(_tableTokens, ref _tableTokenStage);
        // counts[row of v, y]: how many predictions fed back v have target y (exact in float up to 2^24 rows).
        if (_counts.Length != tableRows * outputs) _counts = new T[tableRows * outputs];
        else Array.Clear(_counts);
        for (int r = 0; r < rows; r++)
        {
            int fedBack = tokens[r], target = tokens[batch + r];
            if (target >= 0) _counts[rowOf[fedBack < 0 ? zeroStart : fedBack] * outputs + target] += T.One;
        }
        var counts = Ops.Upload(_counts, ref _countStage);

        var hTable = Ops.Workspace(ref _hidden, tableRows * hidden);
        Ops.BroadcastRows(_values[HiddenBias], hTable);
        Ops.GatherRowsAdd(_values[FeedbackWeight], hidden, tableIds, hTable);
        Ops.Activate(Activation, hTable);
        var oTable = Ops.Workspace(ref _outputTable, tableRows * outputs);
        OutputForward(hTable, tableRows, oTable);

        var lossSum = ZeroLoss();
        Ops.SoftmaxCrossEntropyCounts(oTable, outputs, counts, _targets.Scale, lossSum);
        var dhTable = Ops.Workspace(ref _hiddenGradient, tableRows * hidden);
        OutputBackward(hTable, oTable, tableRows, dhTable);
        Ops.ActivationBackward(Activation, hTable, dhTable, hidden, _grads[HiddenBias]);
        Ops.ScatterRowsAdd(dhTable, hidden, tableIds, _grads[FeedbackWeight]);
        return Ops.ReadScalar(lossSum) * _targets.Scale;
    }

    private T TrainStepByStep(TData x, int steps, int batch)
    {
        int hidden = HiddenSize, nh = batch * hidden, no = batch * OutputSize;
        var (tokens, values) = (_targets.Tokens, _targets.Values);
        var lossSum = ZeroLoss();
        // As autograd runs a loop written over t: every step's activations kept, then backward from the last step.
        // The buffers are the parallel schedule's, used one step-sized slice at a time.
        var h = Ops.Workspace(ref _hidden, steps * nh);
        var dOutput = Ops.Workspace(ref _output, steps * no);
        for (int t = 0; t < steps; t++)
        {
            var ht = Ops.Slice(h, t * nh, nh);
            var ot = Ops.Slice(dOutput, t * no, no);
            HiddenForward(x, tokens, values, t * batch, batch, batch, ht);
            OutputForward(ht, batch, ot);
            _targets.AddLoss(ot, batch, t * batch, batch, lossSum);
        }
        var dh = Ops.Workspace(ref _hiddenGradient, nh);
        for (int t = steps - 1; t >= 0; t--)
        {
            var ht = Ops.Slice(h, t * nh, nh);
            OutputBackward(ht, Ops.Slice(dOutput, t * no, no), batch, dh);
            HiddenBackward(x, tokens, values, t * batch, batch, batch, ht, dh);
        }
        return Ops.ReadScalar(lossSum) * _targets.Scale;
    }

    /// <summary>The loss accumulator [1], zeroed: the losses add into it where they run, and it is read once per step.</summary>
    private TData ZeroLoss()
    {
        var lossSum = Ops.Workspace(ref _lossSum, 1);
        Ops.Clear(lossSum);
        return lossSum;
    }

    public override void TeacherForcedOutputs(ReadOnlyMemory<T> x, int steps, int batch, int[]? ids, ReadOnlyMemory<T> values, Memory<T> outputs, int[]? lengths = null)
    {
        int rows = steps * batch;
        BindParameters(withGradients: false);
        var input = Ops.Upload(x, ref _inputStage);
        _targets.Stage(ids, values, steps, batch, StartToken, lengths);
        var h = Ops.Workspace(ref _hidden, rows * HiddenSize);
        var o = Ops.Destination(outputs, ref _output);
        HiddenForward(input, _targets.Tokens, _targets.Values, 0, rows, batch, h);
        OutputForward(h, rows, o);
        Ops.Download(o, outputs);
        TeacherForcing.ClearPastEnds(outputs.Span, steps, batch, OutputSize, lengths);
    }

    public override void Generate(ReadOnlyMemory<T> x, int steps, int batch, Memory<T> outputs, int[]? tokens)
    {
        int width = OutputSize;
        BindParameters(withGradients: false);
        var input = Ops.Upload(x, ref _inputStage);
        var h = Ops.Workspace(ref _hidden, batch * HiddenSize);
        var o = Ops.Destination(outputs, ref _output);
        TIds fedBack = default;
        if (Discrete)
        {
            // Laid out as in teacher forcing: row 0 the start token, row t + 1 the token step t emits. Rows after 0 go
            // over stale and are written where the operations run before they are read.
            _targets.Stage(null, default, steps, batch, StartToken, null);
            fedBack = _targets.Tokens;
        }
        for (int t = 0; t < steps; t++)
        {
            // At step t the fed-back values are rows [t−1] of the outputs (real) or row t of the tokens: both written by step t−1.
            HiddenForward(input, fedBack, o, t * batch, batch, batch, h);
            var ot = Ops.Slice(o, t * batch * width, batch * width);
            OutputForward(h, batch, ot);
            if (Discrete) Ops.ArgMaxRows(ot, width, Ops.SliceIds(fedBack, (t + 1) * batch, batch));
        }
        Ops.Download(o, outputs);
        if (Discrete) Ops.DownloadIds(Ops.SliceIds(fedBack, batch, steps * batch), tokens);
    }

    /// <summary>
    /// h = act(b + o′·W + x·U) for rows [firstRow, firstRow + rows) of the T·N rows. The fed-back value of row r is
    /// fedBack[r] (a token) or row r − N of <paramref name="fedBackValues"/> (real), nothing in the first N rows but the start value (zeros or start token).
    /// </summary>
    private void HiddenForward(TData x, TIds fedBack, TData fedBackValues, int firstRow, int rows, int batch, TData h)
    {
        int hidden = HiddenSize, inputs = InputSize, outputs = OutputSize;
        Ops.BroadcastRows(_values[HiddenBias], h);
        if (inputs > 0)
            Ops.Gemm(false, false, rows, hidden, inputs, T.One, Ops.Slice(x, firstRow * inputs, rows * inputs), inputs, _values[InputWeight], hidden, T.One, h, hidden);
        if (Discrete)
            Ops.GatherRowsAdd(_values[FeedbackWeight], hidden, Ops.SliceIds(fedBack, firstRow, rows), h);
        else
        {
            // Rows of the first step have the zero start value: they skip the product.
            int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
            if (fed > 0)
                Ops.Gemm(false, false, fed, hidden, outputs, T.One, Ops.Slice(fedBackValues, (firstRow + skipped - batch) * outputs, fed * outputs), outputs,
                    _values[FeedbackWeight], hidden, T.One, Ops.Slice(h, skipped * hidden, fed * hidden), hidden);
        }
        Ops.Activate(Activation, h);
    }

    /// <summary>o = c + h·V over <paramref name="rows"/> rows.</summary>
    private void OutputForward(TData h, int rows, TData o)
    {
        Ops.BroadcastRows(_values[OutputBias], o);
        Ops.Gemm(false, false, rows, OutputSize, HiddenSize, T.One, h, HiddenSize, _values[OutputWeight], OutputSize, T.One, o, OutputSize);
    }

    /// <summary>From dO [rows, O]: adds dV and dc, writes dh [rows, H].</summary>
    private void OutputBackward(TData h, TData dOutput, int rows, TData dh)
    {
        int hidden = HiddenSize, outputs = OutputSize;
        Ops.Gemm(true, false, hidden, outputs, rows, T.One, h, hidden, dOutput, outputs, T.One, _grads[OutputWeight], outputs);
        Ops.AddColumnSums(dOutput, outputs, _grads[OutputBias]);
        Ops.Gemm(false, true, rows, hidden, outputs, T.One, dOutput, outputs, _values[OutputWeight], outputs, T.Zero, dh, hidden);
    }

    /// <summary>From dh [rows, H] (overwritten with dz): adds db, dU and dW for rows [firstRow, firstRow + rows).</summary>
    private void HiddenBackward(TData x, TIds fedBack, TData fedBackValues, int firstRow, int rows, int batch, TData h, TData dh)
    {
        int hidden = HiddenSize, inputs = InputSize, outputs = OutputSize;
        Ops.ActivationBackward(Activation, h, dh, hidden, _grads[HiddenBias]);
        if (inputs > 0)
            Ops.Gemm(true, false, inputs, hidden, rows, T.One, Ops.Slice(x, firstRow * inputs, rows * inputs), inputs, dh, hidden, T.One, _grads[InputWeight], hidden);
        if (Discrete)
            Ops.ScatterRowsAdd(dh, hidden, Ops.SliceIds(fedBack, firstRow, rows), _grads[FeedbackWeight]);
        else
        {
            int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
            if (fed > 0)
                Ops.Gemm(true, false, outputs, hidden, fed, T.One, Ops.Slice(fedBackValues, (firstRow + skipped - batch) * outputs, fed * outputs), outputs,
                    Ops.Slice(dh, skipped * hidden, fed * hidden), hidden, T.One, _grads[FeedbackWeight], hidden);
        }
    }
}
