namespace Recurrent.Sequence;

/// <summary>What a sequence model predicts at each step, and the loss it is trained with.</summary>
public enum SequenceLoss
{
    /// <summary>
    /// Discrete outputs: the model emits logits over a vocabulary of size O, the loss is softmax cross-entropy averaged over
    /// the T·N predictions (the Σ lengths real ones of a padded batch, see <see cref="SequenceTargets"/>), and the fed-back value is the token (a one-hot vector, applied as a row gather).
    /// </summary>
    SoftmaxCrossEntropy,

    /// <summary>
    /// Real-valued outputs of O features: the loss is ½‖o − y‖² summed over features and averaged over the T·N predictions
    /// (the Σ lengths real ones of a padded batch),
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
/// or values [T, N, O] for <see cref="SequenceLoss.SquaredError"/>, with optional per-sequence lengths for a padded batch.
/// Under teacher forcing, y_{t−1} is also the model's fed-back input at step t. Immutable itself; it wraps the caller's
/// target arrays, which must not change while a call reads them (the lengths are copied).
/// </summary>
/// <remarks>
/// With lengths [N], sequence n is y[0 … lengths[n]−1, n] alone: the loss is the mean over the Σ lengths real tokens (not
/// over T·N), and the steps past a sequence's end contribute nothing to it or to any gradient. Targets past an end are
/// never read, so they need not be valid (a padding id outside the vocabulary, a NaN value): they are not checked. A
/// model trained on such a batch gets the loss and gradients of its sequences trained one at a time, each truncated to
/// its length, weighted by their lengths (the mean over all real tokens).
/// <para>Thread-safety: immutable itself, so several calls may read one instance at once while the wrapped arrays are not written. Lifetime: managed; nothing to free.</para>
/// </remarks>
public sealed class SequenceTargets
{
    private SequenceTargets(int steps, int batch, int[]? tokens, FloatTensor? values, int[]? lengths)
    {
        (Steps, Batch, TokenIds, Values) = (steps, batch, tokens, values);
        if (lengths is not null)
        {
            var copy = (int[])lengths.Clone();
            Lengths = Array.AsReadOnly(copy);
            // All T is the dense batch: the models then take their unmasked path.
            if (Array.Exists(copy, length => length < steps)) Padding = copy;
        }
    }

    /// <summary>T: the number of steps.</summary>
    public int Steps { get; }
    /// <summary>N: the number of sequences.</summary>
    public int Batch { get; }
    /// <summary>Token ids [T, N] (element (t, n) at t·N + n), or null for real-valued targets.</summary>
    public int[]? TokenIds { get; }
    /// <summary>Real-valued targets [T, N, O], or null for token targets.</summary>
    public FloatTensor? Values { get; }
    /// <summary>The per-sequence lengths [N] (a copy of those given), or null when every sequence runs all T steps.</summary>
    public IReadOnlyList<int>? Lengths { get; }

    /// <summary>Which loss these targets belong to.</summary>
    public SequenceLoss Loss => TokenIds is null ? SequenceLoss.SquaredError : SequenceLoss.SoftmaxCrossEntropy;

    /// <summary>The lengths when some sequence ends before step T, else null (no lengths, or all T: nothing to mask).</summary>
    internal int[]? Padding { get; }

    /// <summary>Token targets, wrapping <paramref name="ids"/> (not copied).</summary>
    /// <param name="ids">Token ids [T, N], row-major: the id of sequence n at step t is at t·N + n. Ids past a sequence's end are not read.</param>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="batch">N ≥ 1.</param>
    /// <param name="lengths">Per-sequence lengths [N], each in [1, T], in any order (as <see cref="SequenceLengths.Validate"/> takes
    /// them; copied); null when every sequence runs all T steps. See the class remarks.</param>
    /// <exception cref="ArgumentException">The length of <paramref name="ids"/> is not T·N, or T or N is below 1 (an empty sequence);
    /// or (ParamName "lengths") <paramref name="lengths"/> does not have N entries or holds a length outside [1, T].</exception>
    public static SequenceTargets Tokens(int[] ids, int steps, int batch, int[]? lengths = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (steps < 1 || batch < 1)
            throw new ArgumentException($"ids: expected shape [T, N] with T ≥ 1 and N ≥ 1, got [{steps}, {batch}] (an empty sequence).", nameof(ids));
        if (ids.Length != (long)steps * batch)
            throw new ArgumentException($"ids: expected shape [{steps}, {batch}] ({(long)steps * batch} ids), got {ids.Length} ids.", nameof(ids));
        SequenceLengths.Validate(lengths, steps, batch);
        return new SequenceTargets(steps, batch, ids, null, lengths);
    }

    /// <summary>Real-valued targets, wrapping <paramref name="values"/> (not copied).</summary>
    /// <param name="values">Targets [T, N, O] with T, N, O ≥ 1. Rows past a sequence's end are not read.</param>
    /// <param name="lengths">Per-sequence lengths [N], each in [1, T], in any order (copied); null when every sequence runs all
    /// T steps. See the class remarks.</param>
    /// <exception cref="ArgumentException">The tensor is not of rank 3 or has an empty dimension; or (ParamName "lengths")
    /// <paramref name="lengths"/> does not have N entries or holds a length outside [1, T].</exception>
    public static SequenceTargets Real(FloatTensor values, int[]? lengths = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Rank != 3 || values.Shape[0] < 1 || values.Shape[1] < 1 || values.Shape[2] < 1)
            throw new ArgumentException($"values: expected shape [T, N, O] with T, N, O ≥ 1, got {FloatTensor.FormatShape(values.Shape)}.", nameof(values));
        SequenceLengths.Validate(lengths, values.Shape[0], values.Shape[1]);
        return new SequenceTargets(values.Shape[0], values.Shape[1], null, values, lengths);
    }

    /// <summary>Checks these targets against a model before any work starts; targets past a sequence's end are not checked.</summary>
    internal void Validate(SequenceLoss loss, int outputSize, string argumentName)
    {
        if (loss != Loss)
            throw new ArgumentException($"{argumentName}: the model is trained with {loss}, expected {(loss == SequenceLoss.SoftmaxCrossEntropy ? "token targets (SequenceTargets.Tokens)" : "real-valued targets (SequenceTargets.Real)")}, got {Loss} targets.", argumentName);
        if (TokenIds is not null)
        {
            for (int i = 0; i < TokenIds.Length; i++)
                if ((uint)TokenIds[i] >= (uint)outputSize && SequenceLengths.Runs(Padding, i % Batch, i / Batch))
                    throw new ArgumentOutOfRangeException(argumentName, TokenIds[i],
                        $"{argumentName}: token id at step {i / Batch}, sequence {i % Batch} is {TokenIds[i]}; expected an id in [0, {outputSize}) (the vocabulary).");
            return;
        }
        FloatTensor.RequireShape(Values!, argumentName, Steps, Batch, outputSize);
        for (int n = 0; n < Batch; n++)
            for (int t = 0; t < (Padding?[n] ?? Steps); t++)
            {
                var row = Values!.Span.Slice((t * Batch + n) * outputSize, outputSize);
                int bad = FloatTensor.IndexOfNonFinite(row);
                if (bad >= 0)
                    throw new ArgumentException(
                        $"{argumentName}: the value at step {t}, sequence {n}, feature {bad} is {row[bad]}; expected finite values{(Padding is null ? "" : " (within each sequence's length)")}.", argumentName);
            }
    }
}

/// <summary>What free-running generation produced.</summary>
/// <remarks>Thread-safety: an immutable record holding new arrays that belong to the caller. Lifetime: managed; nothing to free.</remarks>
/// <param name="Outputs">The model's outputs o [T, N, O]: logits for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, values for <see cref="SequenceLoss.SquaredError"/>.</param>
/// <param name="Tokens">The fed-back tokens [T, N] (argmax of each step's logits) for <see cref="SequenceLoss.SoftmaxCrossEntropy"/>, else null.</param>
public sealed record GeneratedSequence(FloatTensor Outputs, int[]? Tokens);
