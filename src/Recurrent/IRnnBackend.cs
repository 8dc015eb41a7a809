namespace Recurrent;

/// <summary>
/// What a backend keeps from a forward pass for the backward pass. Opaque to callers; owned by the
/// <see cref="RnnForwardResult"/> that holds it.
/// </summary>
/// <remarks>Thread-safety: one pass's record, not for concurrent use; backward runs on it once at a time and <see cref="IDisposable.Dispose"/> may come from any thread. Lifetime: <see cref="IDisposable.Dispose"/> frees what the pass kept (native memory on the native backend, device buffers on ILGPU); a tape must not be used after it is disposed, nor after its backend is disposed.</remarks>
public interface IRnnTape : IDisposable
{
}

/// <summary>
/// A compute backend for whole recurrent stacks: the reference, the native CPU library, ILGPU.
/// Layers validate every shape before calling, so a backend may rely on them.
/// </summary>
/// <remarks>Thread-safety: every implementation in this library is safe to call from several threads (the ILGPU backend serialises its calls under a lock). Lifetime: a backend is borrowed by the layers and models that use it; one that holds device memory (<see cref="IlgpuBackend"/>) is <see cref="IDisposable"/> and is disposed by its creator after every layer, model and tape that uses it.</remarks>
public interface IRnnBackend
{
    /// <summary>A short name for reports, such as <c>reference</c> or <c>native-cpu</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Runs the stack over a sequence.
    /// </summary>
    /// <param name="parameters">Weights in PyTorch's layout; read only.</param>
    /// <param name="x">Input [T, N, I].</param>
    /// <param name="h0">Initial hidden state [L·D, N, H].</param>
    /// <param name="c0">Initial cell state [L·D, N, H] for LSTM, else null.</param>
    /// <param name="y">Output [T, N, D·H], overwritten: forward direction in the first H features, reverse in the last H.</param>
    /// <param name="hN">Final hidden state [L·D, N, H], overwritten.</param>
    /// <param name="cN">Final cell state [L·D, N, H] for LSTM, else null; overwritten.</param>
    /// <param name="keepForBackward">Whether to return a tape; without it nothing is kept per step. The tape must not refer to
    /// <paramref name="x"/>, <paramref name="h0"/> or <paramref name="c0"/>: callers may change them before backward, which must
    /// differentiate the pass that ran (keep copies of what backward reads).</param>
    /// <returns>The tape for <see cref="Backward"/> when <paramref name="keepForBackward"/>, else null.</returns>
    /// <param name="lengths">Per-sequence lengths [N], each in [1, T], any order (checked by the caller,
    /// <see cref="SequenceLengths.Validate"/>), or null when every sequence runs all T steps. Sequence n is then
    /// x[0 … lengths[n]−1, n] alone, as PyTorch's <c>pack_padded_sequence(enforce_sorted=False)</c> → RNN →
    /// <c>pad_packed_sequence(total_length=T)</c>: y is zero past its end, its final states are those at its own end (the
    /// reverse direction starts there), x past its end is not read, and backward ignores dy there and writes zero dx there.
    /// The tape keeps them (a copy) for <see cref="Backward"/>.</param>
    IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null);

    /// <summary>
    /// Back-propagates through the sequence of the forward pass that made <paramref name="tape"/>,
    /// adding every parameter's gradient into <see cref="Parameter.Grad"/>.
    /// </summary>
    /// <param name="parameters">The weights of the forward pass; their gradients are accumulated.</param>
    /// <param name="tape">What <see cref="Forward"/> kept.</param>
    /// <param name="dy">Gradient of the output [T, N, D·H].</param>
    /// <param name="dhN">Gradient of the final hidden state [L·D, N, H].</param>
    /// <param name="dcN">Gradient of the final cell state [L·D, N, H] for LSTM, else null.</param>
    /// <param name="dx">Gradient of the input [T, N, I], overwritten.</param>
    /// <param name="dh0">Gradient of the initial hidden state [L·D, N, H], overwritten.</param>
    /// <param name="dc0">Gradient of the initial cell state for LSTM, else null; overwritten.</param>
    void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0);
}

/// <summary>
/// A backend that steps a stack with its own <see cref="RecurrentStepper"/> (weights resident between steps);
/// <see cref="RecurrentLayer.CreateStepper"/> asks it, and runs any other backend's steps as whole-sequence passes with T = 1.
/// </summary>
internal interface IStepperFactory
{
    /// <summary>A stepper of <paramref name="layer"/> (unidirectional, on this backend; its parameters prepared here, once).</summary>
    RecurrentStepper CreateStepper(RecurrentLayer layer, bool training);
}
