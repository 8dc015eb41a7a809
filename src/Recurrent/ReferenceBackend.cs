using Recurrent.Reference;

namespace Recurrent;

/// <summary>
/// The reference as a backend: widens to double, runs <see cref="ReferenceRnn"/>, narrows the results.
/// Slow by design; the ground truth behind the same interface as the fast backends. Thread-safety: safe; it holds no state.
/// </summary>
/// <remarks>Lifetime: holds nothing (not IDisposable); its tapes are managed.</remarks>
public sealed class ReferenceBackend : IRnnBackend
{
    /// <summary>The shared instance (the backend holds no state).</summary>
    public static ReferenceBackend Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "reference";

    private sealed class Tape(ReferenceForward forward) : IRnnTape
    {
        public ReferenceForward Forward { get; } = forward;
        public void Dispose() { }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentOutOfRangeException">The gate pre-activations [T·N, G·H] of a layer would have more elements than one array holds.</exception>
    public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null)
    {
        var config = parameters.Config;
        // The reference keeps every step's gates in one array per layer and direction.
        Sizes.Elements(nameof(x), "the reference's gates [T, N, G·H]", ("T", x.Shape[0]), ("N", x.Shape[1]), ("G", config.GateCount), ("H", config.HiddenSize));
        var forward = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Widen(x), x.Shape[0], x.Shape[1], Widen(h0), c0 is null ? null : Widen(c0), lengths);
        Narrow(forward.Output, y);
        Narrow(forward.HiddenN, hN);
        if (cN is not null) Narrow(forward.CellN!, cN);
        return keepForBackward ? new Tape(forward) : null;
    }

    /// <inheritdoc />
    public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0)
    {
        if (tape is not Tape reference)
            throw new ArgumentException("tape: expected a tape made by the reference backend.", nameof(tape));
        var grads = ReferenceRnn.Backward(reference.Forward, Widen(dy), Widen(dhN), dcN is null ? null : Widen(dcN));
        Narrow(grads.Input, dx);
        Narrow(grads.HiddenZero, dh0);
        if (dc0 is not null) Narrow(grads.CellZero!, dc0);
        for (int i = 0; i < grads.Weights.Values.Length; i++)
        {
            var source = grads.Weights.Values[i];
            var destination = parameters.All[i].Grad.Span;
            for (int k = 0; k < source.Length; k++) destination[k] += (float)source[k];
        }
    }

    private static double[] Widen(FloatTensor t) => ReferenceWeights.Widen(t.Span);

    private static void Narrow(double[] source, FloatTensor destination)
    {
        var values = destination.Span;
        for (int i = 0; i < source.Length; i++) values[i] = (float)source[i];
    }
}
