namespace Recurrent.Sequence;

/// <summary>What a sequence model predicts at each step, and the loss it is trained with.</summary>
public enum SequenceLoss
{
    /// <summary>
    /// Discrete outputs: the model emits logits over a vocabulary of size O, the loss is softmax cross-entropy averaged over
    /// the T·N predictions, and the fed-back value is the token (a one-hot vector, applied as a row gather).
    /// </summary>
    SoftmaxCrossEntropy,

    /// <summary>
    /// Real-valued outputs of O features: the loss is ½‖o − y‖² summed over features and averaged over the T·N predictions,
    /// and the fed-back value is the vector itself.
    /// </summary>
    SquaredError,
}

/// <summary>How a teacher-forced training step is scheduled. Both give the same loss and gradients.</summary>
public enum TrainingSchedule
{
    /// <summary>
    /// Everything that does not depend on the previous step runs over all T·N rows at once: one matrix product per weight
    /// and fused pointwise passes. Only a hidden-to-hidden recurrence (if the model has one) stays sequential.
    /// </summary>
    ParallelOverTime,

    /// <summary>
    /// The baseline: a hand-written loop over t, as a framework runs back-propagation through time, with per-step
    /// products over N rows and a per-step output layer and loss; then backward step by step from t = T−1 down to 0.
    /// </summary>
    StepByStep,
}

/// <summary>
/// The targets y of a batch of sequences, sequence first: token ids [T, N] for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>
/// or values [T, N, O] for <see cref="SequenceLoss.SquaredError"/>. Under teacher forcing, y_{t−1} is also the model's
/// fed-back input at step t. Immutable itself; it wraps the caller's arrays, which must not change while a call reads them.
/// </summary>
public sealed class SequenceTargets
{
    private SequenceTargets(int steps, int batch, int[]? tokens, Tensor? values)
    {
        (Steps, Batch, TokenIds, Values) = (steps, batch, tokens, values);
    }

    /// <summary>T: the number of steps.</summary>
    public int Steps { get; }
    /// <summary>N: the number of sequences.</summary>
    public int Batch { get; }
    /// <summary>Token ids [T, N] (element (t, n) at t·N + n), or null for real-valued targets.</summary>
    public int[]? TokenIds { get; }
    /// <summary>Real-valued targets [T, N, O], or null for token targets.</summary>
    public Tensor? Values { get; }

    /// <summary>Which loss these targets belong to.</summary>
    public SequenceLoss Loss => TokenIds is null ? SequenceLoss.SquaredError : SequenceLoss.SoftmaxCrossEntropy;

    /// <summary>Token targets, wrapping <paramref name="ids"/> (not copied).</summary>
    /// <param name="ids">Token ids [T, N], row-major: the id of sequence n at step t is at t·N + n.</param>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <exception cref="ArgumentException">The length of <paramref name="ids"/> is not T·N, or T or N is below 1 (an empty sequence).</exception>
    public static SequenceTargets Tokens(int[] ids, int steps, int batch)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"ids: expected shape [T, N] with T ≥ 1 and N ≥ 1, got [{steps}, {batch}] (an empty sequence).", nameof(ids));
        if (ids.Length != (long)steps * batch)
            throw new ArgumentException($"ids: expected shape [{steps}, {batch}] ({(long)steps * batch} ids), got {ids.Length} ids.", nameof(ids));
        return new SequenceTargets(steps, batch, ids, null);
    }

    /// <summary>Real-valued targets, wrapping <paramref name="values"/> (not copied).</summary>
    /// <param name="values">Targets [T, N, O] with T, N, O ≥ 1.</param>
    /// <exception cref="ArgumentException">The tensor is not of rank 3 or has an empty dimension.</exception>
    public static SequenceTargets Real(Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Rank != 3 || values.Shape[0] < 1 || values.Shape[1] < 1 || values.Shape[2] < 1)
            throw new ArgumentException($"values: expected shape [T, N, O] with T, N, O ≥ 1, got {Tensor.FormatShape(values.Shape)}.", nameof(values));
        return new SequenceTargets(values.Shape[0], values.Shape[1], null, values);
    }

    /// <summary>Checks these targets against a model before any work starts.</summary>
    internal void Validate(SequenceLoss loss, int outputSize, string argumentName)
    {
        if (loss != Loss)
            throw new ArgumentException($"{argumentName}: the model is trained with {loss}, expected {(loss == SequenceLoss.SoftmaxCrossEntropy ? "token targets (SequenceTargets.Tokens)" : "real-valued targets (SequenceTargets.Real)")}, got {Loss} targets.", argumentName);
        if (TokenIds is not null)
        {
            for (int i = 0; i < TokenIds.Length; i++)
                if ((uint)TokenIds[i] >= (uint)outputSize)
                    throw new ArgumentOutOfRangeException(argumentName, TokenIds[i],
                        $"{argumentName}: token id at step {i / Batch}, sequence {i % Batch} is {TokenIds[i]}; expected an id in [0, {outputSize}) (the vocabulary).");
        }
        else
        {
            Tensor.RequireShape(Values!, argumentName, Steps, Batch, outputSize);
            Tensor.RequireFinite(Values!, argumentName);
        }
    }
}

/// <summary>What free-running generation produced.</summary>
/// <param name="Outputs">The model's outputs o [T, N, O]: logits for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, values for <see cref="SequenceLoss.SquaredError"/>.</param>
/// <param name="Tokens">The fed-back tokens [T, N] (argmax of each step's logits) for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, else null.</param>
public sealed record GeneratedSequence(Tensor Outputs, int[]? Tokens);

/// <summary>
/// A named weight of a sequence model with its value and the gradient that training steps accumulate into. Its tensors
/// are the model's own storage: change them only while no call of the model runs.
/// </summary>
public sealed class SequenceParameter
{
    internal SequenceParameter(string name, float[] value, float[] grad, params int[] shape)
    {
        Name = name;
        Value = new Tensor(value, shape);
        Grad = new Tensor(grad, shape);
    }

    /// <summary>The name, such as <c>output_weight</c>.</summary>
    public string Name { get; }
    /// <summary>The value; its shape never changes.</summary>
    public Tensor Value { get; }
    /// <summary>The accumulated gradient, same shape as <see cref="Value"/>.</summary>
    public Tensor Grad { get; }
}
