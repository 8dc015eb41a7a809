namespace Recurrent;

/// <summary>
/// Per-sequence lengths of a padded batch x [T, N, I], as PyTorch's <c>pack_padded_sequence(x, lengths,
/// enforce_sorted=False)</c> takes them: sequence n occupies steps 0 … lengths[n]−1, in any order of lengths. One place
/// checks them, so every entry point that takes lengths rejects the same inputs with the same message.
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class SequenceLengths
{
    /// <summary>
    /// Checks <paramref name="lengths"/> [N] against T and N before any work. Null means every sequence runs all T steps.
    /// </summary>
    /// <param name="lengths">[N], each in [1, T]; not modified, not kept.</param>
    /// <param name="steps">T.</param>
    /// <param name="batch">N.</param>
    /// <exception cref="ArgumentException">(ParamName "lengths") the count is not N, or a length is below 1 or above T.</exception>
    public static void Validate(int[]? lengths, int steps, int batch)
    {
        if (lengths is null) return;
        if (lengths.Length != batch)
            throw new ArgumentException($"lengths: expected {batch} lengths (one a sequence of the batch), got {lengths.Length}.", nameof(lengths));
        for (int n = 0; n < lengths.Length; n++)
            if (lengths[n] < 1 || lengths[n] > steps)
                throw new ArgumentException(
                    $"lengths[{n}] = {lengths[n]}: a sequence length must be in [1, {steps}] (an empty sequence has no final state).", nameof(lengths));
    }

    /// <summary>
    /// Lengths given as numbers (a float tensor's data, as PyTorch passes a lengths tensor): checked to be whole and in
    /// [1, T], then returned as integers.
    /// </summary>
    /// <param name="lengths">[N]; not modified.</param>
    /// <param name="steps">T.</param>
    /// <param name="batch">N.</param>
    /// <exception cref="ArgumentException">(ParamName "lengths") the count is not N, or a length is not a whole number (NaN included), below 1 or above T.</exception>
    public static int[] FromValues(ReadOnlySpan<float> lengths, int steps, int batch)
    {
        if (lengths.Length != batch)
            throw new ArgumentException($"lengths: expected {batch} lengths (one a sequence of the batch), got {lengths.Length}.", nameof(lengths));
        var result = new int[lengths.Length];
        for (int n = 0; n < lengths.Length; n++)
        {
            float value = lengths[n];
            // Checked before the cast, which would turn NaN or 1e10 into some unrelated integer.
            if (!float.IsFinite(value) || value != MathF.Floor(value))
                throw new ArgumentException($"lengths[{n}] = {value}: a sequence length must be a whole number.", nameof(lengths));
            if (value < 1 || value > steps)
                throw new ArgumentException(
                    $"lengths[{n}] = {value}: a sequence length must be in [1, {steps}] (an empty sequence has no final state).", nameof(lengths));
            result[n] = (int)value;
        }
        return result;
    }

    /// <summary>The real tokens of a batch: Σ lengths, or T·N without lengths.</summary>
    internal static long Tokens(int[]? lengths, int steps, int batch)
    {
        if (lengths is null) return (long)steps * batch;
        long sum = 0;
        foreach (int length in lengths) sum += length;
        return sum;
    }

    /// <summary>Whether sequence n computes step t: t &lt; lengths[n] in either direction (null: always).</summary>
    internal static bool Runs(int[]? lengths, int n, int t) => lengths is null || t < lengths[n];
}
