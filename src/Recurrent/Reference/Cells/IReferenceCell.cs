namespace Recurrent.Reference;

/// <summary>What one step of one direction keeps for its backward pass. Nothing in it is written after the step returns.</summary>
internal sealed class ReferenceStep
{
    /// <summary>The states the step began from, in the order of <see cref="CellDefinition.States"/>: h [N·H], then c.</summary>
    public required double[][] Start { get; init; }
    /// <summary>The states it produced, same order; <c>End[0]</c> is the step's output.</summary>
    public required double[][] End { get; init; }
    /// <summary>[N·G·H]: the activated gates, blocks in the definition's order (Elman: the new h).</summary>
    public required double[] Gates { get; init; }
    /// <summary>Whatever else the cell's backward needs (GRU reset-after: W_hn h + b_hn [N·H]); null when nothing.</summary>
    public double[]? Saved { get; init; }
}

/// <summary>
/// One cell's reference step in double precision, written for reading rather than speed. The caller
/// (<see cref="ReferenceCell"/>) owns the time loop and the input side, W_ih x + b_ih and its gradients; the cell owns
/// everything after it: the recurrent product, the activations and the state update, forward and backward.
/// </summary>
internal interface IReferenceCell
{
    /// <summary>The cell this implements.</summary>
    CellKind Kind { get; }

    /// <summary>One step for the batch.</summary>
    /// <param name="w">The direction's parameters.</param>
    /// <param name="batch">N.</param>
    /// <param name="hidden">H.</param>
    /// <param name="input">[N·G·H]: W_ih x_t + b_ih. Read only.</param>
    /// <param name="states">The states at the step's start (h, then c), each [N·H]. Read only: the step allocates its own.</param>
    ReferenceStep Forward(DirectionWeights w, int batch, int hidden, double[] input, double[][] states);

    /// <summary>
    /// Back through one step: from the gradients of the states it produced, writes the gradient of its input
    /// <paramref name="dInput"/>, adds into the recurrent parameters' gradients, and returns the gradients of the states it
    /// began from.
    /// </summary>
    /// <param name="w">The direction's parameters.</param>
    /// <param name="step">What the forward step kept.</param>
    /// <param name="batch">N.</param>
    /// <param name="hidden">H.</param>
    /// <param name="dStates">The gradients of <see cref="ReferenceStep.End"/>, dy included in dh; the cell may overwrite them.</param>
    /// <param name="dInput">[N·G·H], zeros on entry: receives the gradient of W_ih x_t + b_ih.</param>
    /// <param name="grads">Gradients to add into: the cell touches W_hh and b_hh (and any parameter of its own), not W_ih or b_ih.</param>
    double[][] Backward(DirectionWeights w, ReferenceStep step, int batch, int hidden, double[][] dStates, double[] dInput, DirectionWeights grads);
}
