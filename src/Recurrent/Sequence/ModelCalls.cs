namespace Recurrent.Sequence;

/// <summary>
/// What every call of a sequence model shares: one call at a time (a model reuses its workspaces and adds into shared
/// gradients, so a second thread would corrupt both), the size checks of a batch, and a loss that is never finite
/// while the gradients it produced are not.
/// </summary>
internal sealed class ModelCalls(string model)
{
    private int _busy;

    /// <summary>Marks a call in flight until the scope is disposed.</summary>
    /// <exception cref="InvalidOperationException">Another thread is inside a call of this model.</exception>
    public Scope Enter(string operation)
    {
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException(
                $"{operation}: another thread is running a call of this {model}. A {model} is not thread-safe (it reuses its workspaces and adds into shared gradients): use one per thread, or take turns.");
        return new Scope(this);
    }

    public readonly struct Scope(ModelCalls owner) : IDisposable
    {
        public void Dispose() => Volatile.Write(ref owner._busy, 0);
    }

    /// <summary>Checks that every per-row buffer of a batch of T·N rows fits one array: rows of each of <paramref name="widths"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">T·N·width exceeds what one array holds; the message names the sizes.</exception>
    public static void RequireBatchSizes(string argumentName, int steps, int batch, params ReadOnlySpan<(string Letter, int Width)> widths)
    {
        foreach (var (letter, width) in widths)
            Sizes.Elements(argumentName, $"a [T, N, {letter}] buffer", ("T", steps), ("N", batch), (letter, Math.Max(width, 1)));
    }

    /// <summary>
    /// <paramref name="loss"/>, or NaN when a gradient holds NaN or ∞ while the loss is finite (an overflow inside
    /// backward): a finite loss must mean usable gradients.
    /// </summary>
    public static float LossOrNaN(float loss, ParameterSet parameters) =>
        float.IsFinite(loss) && FloatTensor.IndexOfNonFinite(parameters.Gradients.Span) >= 0 ? float.NaN : loss;
}
