namespace Recurrent.Sequence;

/// <summary>
/// A sequence model with a hidden-to-hidden recurrence (an <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/>
/// stack) trained with teacher forcing; with <see cref="SequenceLoss.SoftmaxCrossEntropy"/> it is a language model:
/// <code>
/// x_t = e(y_{t−1})                       [N, I]   e: row y_{t−1} of the embedding E [O, I] (tokens), or y_{t−1}·E (real values)
/// h_t = recurrent stack(x_t, h_{t−1})    [N, H]
/// o_t = c + h_t·V                        [N, O]   logits or values
/// </code>
/// At t = 0 the fed-back value is the start value (the <see cref="StartToken"/>'s embedding, else zeros); the initial
/// state is zeros. With <see cref="TrainingSchedule.ParallelOverTime"/> the embedding, the output layer and the loss with
/// their gradients run over all T·N rows at once and only the recurrence is sequential, inside the layer's backend (which
/// batches the input projections and weight gradients over time). With token outputs the stack reads its inputs straight
/// from the embedding table: on the native backend each of the O rows is projected through W_ih once, instead of each of
/// the T·N uses, and the gates' gradients are summed per token before dW_ih and the embedding's gradient are formed, so
/// with O &lt; T·N those three products cost O rows instead of T·N. Not thread-safe: a training step accumulates into
/// shared gradients.
/// </summary>
public sealed class RecurrentSequenceModel
{
    private const int Embedding = 0, OutputWeight = 1, OutputBias = 2;
    private readonly IMatrixOps<float> _ops;
    private readonly float[][] _values;
    private readonly float[][] _grads;
    private readonly int _startToken;

    /// <summary>Creates the model around <paramref name="recurrent"/> (whose parameters it trains too), seeded so runs repeat.</summary>
    /// <param name="recurrent">A unidirectional stack with input size I and hidden size H; a bidirectional one would see the future.</param>
    /// <param name="outputSize">O ≥ 1: the vocabulary size for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, else the features of o_t.</param>
    /// <param name="loss">Discrete (softmax cross-entropy) or real-valued (squared error) outputs.</param>
    /// <param name="startToken">The token fed back at t = 0 (discrete outputs only), in [0, O); null feeds zeros.</param>
    /// <param name="seed">Seed of the initialisation: embedding uniform in ±1 (tokens) or ±1/√O (projection), output layer in ±1/√H.</param>
    /// <exception cref="ArgumentException">The stack is bidirectional, or a start token was given for real-valued outputs.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size or enum value is out of range, or the start token is outside the vocabulary.</exception>
    public RecurrentSequenceModel(RecurrentLayer recurrent, int outputSize, SequenceLoss loss, int? startToken = null, int seed = 0)
        : this(recurrent, outputSize, loss, startToken, seed, CpuMatrixOps.Instance) { }

    internal RecurrentSequenceModel(RecurrentLayer recurrent, int outputSize, SequenceLoss loss, int? startToken, int seed, IMatrixOps<float> ops)
    {
        ArgumentNullException.ThrowIfNull(recurrent);
        if (recurrent.Config.Bidirectional)
            throw new ArgumentException("recurrent: a bidirectional stack reads the future of the sequence it predicts; expected a unidirectional one.", nameof(recurrent));
        ArgumentOutOfRangeException.ThrowIfLessThan(outputSize, 1);
        if (!Enum.IsDefined(loss)) throw new ArgumentOutOfRangeException(nameof(loss), loss, "expected SoftmaxCrossEntropy or SquaredError");
        if (startToken is not null)
        {
            if (loss != SequenceLoss.SoftmaxCrossEntropy)
                throw new ArgumentException("startToken: only discrete outputs have a start token; real-valued outputs start from zeros. Pass null.", nameof(startToken));
            if ((uint)startToken.Value >= (uint)outputSize)
                throw new ArgumentOutOfRangeException(nameof(startToken), startToken, $"expected a token in [0, {outputSize}).");
        }
        (Recurrent, OutputSize, Loss, _startToken, _ops) = (recurrent, outputSize, loss, startToken ?? -1, ops);
        int input = recurrent.Config.InputSize, hidden = recurrent.Config.HiddenSize;
        int[][] shapes = [[outputSize, input], [hidden, outputSize], [outputSize]];
        _values = Array.ConvertAll(shapes, s => new float[s.Aggregate(1, (a, b) => a * b)]);
        _grads = Array.ConvertAll(_values, v => new float[v.Length]);
        string[] names = ["embedding", "output_weight", "output_bias"];
        Parameters = names.Select((name, p) => new SequenceParameter(name, _values[p], _grads[p], shapes[p])).ToArray();
        var random = new Random(seed);
        float[] bounds = [Discrete ? 1f : 1f / MathF.Sqrt(outputSize), 1f / MathF.Sqrt(hidden), 1f / MathF.Sqrt(hidden)];
        for (int p = 0; p < _values.Length; p++)
            for (int i = 0; i < _values[p].Length; i++) _values[p][i] = (float)((random.NextDouble() * 2 - 1) * bounds[p]);
    }

    /// <summary>The recurrent stack; its <see cref="RecurrentLayer.Parameters"/> are trained with the model's own.</summary>
    public RecurrentLayer Recurrent { get; }
    /// <summary>O: vocabulary size or output features.</summary>
    public int OutputSize { get; }
    /// <summary>The loss and kind of output.</summary>
    public SequenceLoss Loss { get; }
    /// <summary>The token fed back at t = 0, or null when the start value is zeros.</summary>
    public int? StartToken => _startToken < 0 ? null : _startToken;

    /// <summary>
    /// The model's own parameters besides the recurrent stack's: embedding [O, I] (a token's row, or the projection of a
    /// real-valued y_{t−1}), output_weight V [H, O], output_bias c [O], with their gradients.
    /// </summary>
    public IReadOnlyList<SequenceParameter> Parameters { get; }

    private bool Discrete => Loss == SequenceLoss.SoftmaxCrossEntropy;
    private int InputSize => Recurrent.Config.InputSize;
    private int HiddenSize => Recurrent.Config.HiddenSize;

    /// <summary>
    /// One teacher-forced training step: returns the loss (mean over the T·N predictions) and adds its gradient into the
    /// model's and the recurrent stack's parameter gradients. Both schedules compute the same loss and gradients.
    /// </summary>
    /// <param name="targets">y: token ids [T, N] or values [T, N, O], matching <see cref="Loss"/>; y_{t−1} is the input at step t.</param>
    /// <param name="schedule">Parallel over time (the default) or the step-by-step baseline: the stack run with T = 1 per call, chained through its states.</param>
    /// <exception cref="ArgumentException">A shape does not match, a value is not finite, or the targets are of the other kind.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O).</exception>
    public float Train(SequenceTargets targets, TrainingSchedule schedule = TrainingSchedule.ParallelOverTime)
    {
        if (!Enum.IsDefined(schedule)) throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "expected ParallelOverTime or StepByStep");
        ArgumentNullException.ThrowIfNull(targets);
        targets.Validate(Loss, OutputSize, nameof(targets));
        return schedule == TrainingSchedule.StepByStep ? TrainStepByStep(targets) : TrainParallel(targets);
    }

    /// <summary>The outputs o [T, N, O] (logits or values) under teacher forcing, as <see cref="Train"/> computes them.</summary>
    /// <exception cref="ArgumentException">As <see cref="Train"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside [0, O).</exception>
    public Tensor TeacherForcedOutputs(SequenceTargets targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        targets.Validate(Loss, OutputSize, nameof(targets));
        int steps = targets.Steps, batch = targets.Batch;
        var outputs = new Tensor(steps, batch, OutputSize);
        using var forward = RecurrentForward(targets, keepForBackward: false, out _);
        OutputForward(forward.Output.Data, steps * batch, outputs.Data);
        return outputs;
    }

    /// <summary>
    /// Free-running generation, one step at a time: step t feeds back the model's own output of step t − 1 (its argmax
    /// token, or its values), the start value at t = 0. It sees no targets.
    /// </summary>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <exception cref="ArgumentException">A size is below 1.</exception>
    public GeneratedSequence Generate(int steps, int batch)
    {
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"steps, batch: expected T ≥ 1 and N ≥ 1, got T = {steps}, N = {batch} (an empty sequence).", steps < 1 ? nameof(steps) : nameof(batch));
        int input = InputSize, width = OutputSize;
        var outputs = new Tensor(steps, batch, width);
        var tokens = Discrete ? new int[steps * batch] : null;
        var fedBack = new int[batch];
        fedBack.AsSpan().Fill(_startToken);
        Tensor? h = null, c = null;
        for (int t = 0; t < steps; t++)
        {
            var x = new float[batch * input];
            if (Discrete) _ops.GatherRowsAdd(_values[Embedding], input, fedBack, x);
            else if (t > 0) _ops.Gemm(false, false, batch, input, width, 1, outputs.Data.AsSpan((t - 1) * batch * width, batch * width), width, _values[Embedding], input, 0, x, input);
            using var step = Recurrent.Forward(new Tensor(x, 1, batch, input), h, c);
            (h, c) = (step.HiddenState, step.CellState);
            var o = outputs.Data.AsSpan(t * batch * width, batch * width);
            OutputForward(step.Output.Data, batch, o);
            if (!Discrete) continue;
            for (int n = 0; n < batch; n++)
                tokens![t * batch + n] = fedBack[n] = TeacherForcing.ArgMax<float>(o.Slice(n * width, width));
        }
        return new GeneratedSequence(outputs, tokens);
    }

    /// <summary>Plain gradient descent on the model's and the recurrent stack's parameters: value −= learningRate · gradient.</summary>
    public void SgdStep(float learningRate)
    {
        for (int p = 0; p < _values.Length; p++)
            for (int i = 0; i < _values[p].Length; i++) _values[p][i] -= learningRate * _grads[p][i];
        foreach (var p in Recurrent.Parameters.All)
            for (int i = 0; i < p.Value.Length; i++) p.Value.Data[i] -= learningRate * p.Grad.Data[i];
    }

    /// <summary>Sets every gradient (the model's and the recurrent stack's) to zero.</summary>
    public void ZeroGrad()
    {
        foreach (var g in _grads) Array.Clear(g);
        Recurrent.ZeroGrad();
    }

    private float TrainParallel(SequenceTargets targets)
    {
        int steps = targets.Steps, batch = targets.Batch, rows = steps * batch, hidden = HiddenSize, width = OutputSize;
        using var forward = RecurrentForward(targets, keepForBackward: true, out var fedBack);
        var y = forward.Output.Data;
        var dOutput = new float[rows * width];
        OutputForward(y, rows, dOutput);
        float scale = 1f / rows;
        float loss = Discrete
            ? _ops.SoftmaxCrossEntropy(dOutput, width, targets.TokenIds, scale)
            : _ops.SquaredError(dOutput, targets.Values!.Data, scale);
        var dy = new Tensor(steps, batch, hidden);
        OutputBackward(y, dOutput, rows, dy.Data);
        if (Discrete)
            Recurrent.BackwardFromTable(forward, dy, _grads[Embedding]);
        else
            EmbeddingBackward(targets, fedBack, Recurrent.Backward(forward, dy).Input.Data, 0, rows);
        return loss * scale;
    }

    /// <summary>
    /// The stack over every step under teacher forcing. A token's embedding row is the stack's input, so the stack reads
    /// its input rows straight from the embedding table: each of the O rows is projected once instead of each of the T·N
    /// uses (see <see cref="RecurrentLayer.ForwardFromTable"/>).
    /// </summary>
    private RnnForwardResult RecurrentForward(SequenceTargets targets, bool keepForBackward, out int[]? fedBack)
    {
        int steps = targets.Steps, batch = targets.Batch;
        if (Discrete)
        {
            fedBack = TeacherForcing.FedBackTokens(targets.TokenIds!, steps, batch, _startToken);
            return Recurrent.ForwardFromTable(_values[Embedding], OutputSize, fedBack, steps, batch, keepForBackward);
        }
        var x = TeacherInputs(targets, out fedBack);
        return Recurrent.Forward(new Tensor(x, steps, batch, InputSize), keepForBackward: keepForBackward);
    }

    private float TrainStepByStep(SequenceTargets targets)
    {
        int steps = targets.Steps, batch = targets.Batch, input = InputSize, hidden = HiddenSize, width = OutputSize;
        float scale = 1f / (steps * batch), loss = 0;
        int[]? fedBack = Discrete ? TeacherForcing.FedBackTokens(targets.TokenIds!, steps, batch, _startToken) : null;
        var forward = new RnnForwardResult[steps];
        var dOutput = new float[steps][];
        try
        {
            Tensor? h = null, c = null;
            for (int t = 0; t < steps; t++)
            {
                var x = new float[batch * input];
                EmbeddingForward(targets, fedBack, t * batch, batch, x);
                forward[t] = Recurrent.Forward(new Tensor(x, 1, batch, input), h, c, keepForBackward: true);
                (h, c) = (forward[t].HiddenState, forward[t].CellState);
                dOutput[t] = new float[batch * width];
                OutputForward(forward[t].Output.Data, batch, dOutput[t]);
                loss += Discrete
                    ? _ops.SoftmaxCrossEntropy(dOutput[t], width, targets.TokenIds.AsSpan(t * batch, batch), scale)
                    : _ops.SquaredError(dOutput[t], targets.Values!.Data.AsSpan(t * batch * width, batch * width), scale);
            }
            Tensor? dh = null, dc = null;
            for (int t = steps - 1; t >= 0; t--)
            {
                var dy = new Tensor(1, batch, hidden);
                OutputBackward(forward[t].Output.Data, dOutput[t], batch, dy.Data);
                var grads = Recurrent.Backward(forward[t], dy, dh, dc);
                (dh, dc) = (grads.InitialHidden, grads.InitialCell);
                EmbeddingBackward(targets, fedBack, grads.Input.Data, t * batch, batch);
            }
            return loss * scale;
        }
        finally
        {
            foreach (var f in forward) f?.Dispose();
        }
    }

    /// <summary>The inputs x [T·N, I] of every step under teacher forcing: e(start), then e(y_{t−1}).</summary>
    private float[] TeacherInputs(SequenceTargets targets, out int[]? fedBack)
    {
        int rows = targets.Steps * targets.Batch;
        fedBack = Discrete ? TeacherForcing.FedBackTokens(targets.TokenIds!, targets.Steps, targets.Batch, _startToken) : null;
        var x = new float[rows * InputSize];
        EmbeddingForward(targets, fedBack, 0, rows, x);
        return x;
    }

    /// <summary>x [rows, I] (zeroed by the caller) for rows [firstRow, firstRow + rows) of the T·N rows.</summary>
    private void EmbeddingForward(SequenceTargets targets, int[]? fedBack, int firstRow, int rows, Span<float> x)
    {
        int input = InputSize, width = OutputSize, batch = targets.Batch;
        if (Discrete)
        {
            _ops.GatherRowsAdd(_values[Embedding], input, fedBack.AsSpan(firstRow, rows), x);
            return;
        }
        // Rows of the first step have the zero start value.
        int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
        if (fed > 0)
            _ops.Gemm(false, false, fed, input, width, 1, targets.Values!.Data.AsSpan((firstRow + skipped - batch) * width, fed * width), width,
                _values[Embedding], input, 0, x[(skipped * input)..], input);
    }

    /// <summary>Adds the embedding's gradient from dx [rows, I] of rows [firstRow, firstRow + rows).</summary>
    private void EmbeddingBackward(SequenceTargets targets, int[]? fedBack, ReadOnlySpan<float> dx, int firstRow, int rows)
    {
        int input = InputSize, width = OutputSize, batch = targets.Batch;
        if (Discrete)
        {
            _ops.ScatterRowsAdd(dx, input, fedBack.AsSpan(firstRow, rows), _grads[Embedding]);
            return;
        }
        int skipped = Math.Max(batch - firstRow, 0), fed = rows - skipped;
        if (fed > 0)
            _ops.Gemm(true, false, width, input, fed, 1, targets.Values!.Data.AsSpan((firstRow + skipped - batch) * width, fed * width), width,
                dx[(skipped * input)..], input, 1, _grads[Embedding], input);
    }

    /// <summary>o = c + y·V over <paramref name="rows"/> rows.</summary>
    private void OutputForward(ReadOnlySpan<float> y, int rows, Span<float> o)
    {
        _ops.BroadcastRows(_values[OutputBias], o);
        _ops.Gemm(false, false, rows, OutputSize, HiddenSize, 1, y, HiddenSize, _values[OutputWeight], OutputSize, 1, o, OutputSize);
    }

    /// <summary>From dO [rows, O]: adds dV and dc, writes dy [rows, H].</summary>
    private void OutputBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dOutput, int rows, Span<float> dy)
    {
        int hidden = HiddenSize, width = OutputSize;
        _ops.Gemm(true, false, hidden, width, rows, 1, y, hidden, dOutput, width, 1, _grads[OutputWeight], width);
        _ops.AddColumnSums(dOutput, width, _grads[OutputBias]);
        _ops.Gemm(false, true, rows, hidden, width, 1, dOutput, width, _values[OutputWeight], width, 0, dy, hidden);
    }

}
