using Recurrent.Stacking;

namespace Recurrent;

/// <summary>
/// A host backend that computes one layer and direction at a time on float memory: an <see cref="IRnnBackend"/> over
/// <see cref="RecurrentStacking{TBuffer}"/>, which stacks the layers and directions (in-place bidirectional halves, the
/// second direction adding its input gradient to the first's, a variable-length batch packed once and unpacked once).
/// This class adds what the host entry has beyond the stacking: a training pass's copy of x, and layer 0's input as rows of
/// a table. The native backend and tests' per-direction backends derive from it. Thread-safety: safe when their computes are: the
/// stacking keeps its state in the tape of each pass.
/// </summary>
/// <remarks>Lifetime: holds nothing itself; a training pass's native or managed memory lives in its tape, freed when the <see cref="RnnForwardResult"/> is disposed.</remarks>
public abstract class DirectionwiseBackend : IRnnBackend
{
    /// <inheritdoc />
    public abstract string Name { get; }

    /// <summary>
    /// A compute for one stack pass over <paramref name="parameters"/> (values read, gradients added into); with
    /// <paramref name="table"/>, layer 0's rows come from it and backward adds the table's gradient into <paramref name="tableGradient"/>.
    /// </summary>
    /// <remarks>
    /// Its backward may read a pass's <see cref="DirectionPass{TBuffer}.X"/>, H0 and C0 (a training pass keeps copies of
    /// layer 0's input and of the initial states, or packed and sorted ones) but not Y, which is the caller's output.
    /// </remarks>
    internal abstract IDirectionCompute<Memory<float>> Compute(RnnParameters parameters, TableInput? table, Memory<float> tableGradient);

    /// <summary>
    /// Whether the computes take layer 0's input as rows of a table (<see cref="DirectionPass{TBuffer}.FromTable"/>): then a
    /// stack fed by an embedding lookup projects each table row once rather than each of the T·N rows. Backends without it
    /// are given the rows gathered into a dense x.
    /// </summary>
    protected internal virtual bool SupportsTableInput => false;

    /// <summary>Layer 0's input when it is rows of a table: table [V, I], ids [T·N] (−1: zeros; packed rows' ids in a packed pass).</summary>
    internal sealed record TableInput(ReadOnlyMemory<float> Table, int Vocab, int[] Ids);

    private sealed class StackTape(StackingTape<Memory<float>> stacking, TableInput? table, int steps, int batch) : IRnnTape
    {
        public StackingTape<Memory<float>> Stacking { get; } = stacking;
        public TableInput? Table { get; } = table;
        public int Steps { get; } = steps;
        public int Batch { get; } = batch;
        public void Dispose() => Stacking.Dispose();
    }

    /// <inheritdoc />
    public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null) =>
        Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward, copyInput: true, lengths);

    /// <summary>
    /// <see cref="Forward(RnnParameters, FloatTensor, FloatTensor, FloatTensor?, FloatTensor, FloatTensor, FloatTensor?, bool, int[])"/>; without
    /// <paramref name="copyInput"/> a training pass keeps x itself for backward rather than a copy, for callers whose x
    /// nobody changes before backward.
    /// </summary>
    internal IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, bool copyInput,
        int[]? lengths = null)
    {
        int steps = x.Shape[0], batch = x.Shape[1];
        var packed = PackedBatch.Create(lengths, steps, batch);
        // Backward reads layer 0's input again (the per-direction tapes do not keep it): a copy keeps it the pass's own. Packed
        // rows are a copy already.
        var input = keepForBackward && copyInput && packed is null ? x.ToArray() : x.Memory;
        return Run(parameters, steps, batch, packed, input, null, h0, c0, y, hN, cN, keepForBackward);
    }

    /// <summary>
    /// <see cref="Forward(RnnParameters, FloatTensor, FloatTensor, FloatTensor?, FloatTensor, FloatTensor, FloatTensor?, bool, int[])"/> with layer 0's input rows taken from a table (an embedding lookup); only when
    /// <see cref="SupportsTableInput"/>. y [T, N, D·H] gives T and N.
    /// </summary>
    internal IRnnTape? ForwardFromTable(RnnParameters parameters, TableInput input, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward,
        int[]? lengths = null)
    {
        if (!SupportsTableInput) throw new NotSupportedException($"{Name}: this backend takes dense input only.");
        int steps = y.Shape[0], batch = y.Shape[1];
        var packed = PackedBatch.Create(lengths, steps, batch);
        if (packed is not null)
        {
            // The ids are the table input's rows: packed as x would be.
            var ids = new int[packed.Rows];
            packed.PackIds(input.Ids, ids);
            input = input with { Ids = ids };
        }
        return Run(parameters, steps, batch, packed, default, input, h0, c0, y, hN, cN, keepForBackward);
    }

    private StackTape? Run(RnnParameters parameters, int steps, int batch, PackedBatch? packed, Memory<float> x, TableInput? table, FloatTensor h0, FloatTensor? c0,
        FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward)
    {
        // The tape keeps the initial states for backward (a packed pass keeps sorted copies): copies of the caller's, so
        // changing h0 or c0 before backward changes nothing (IRnnBackend's contract). L·D·N·H floats, once a pass.
        bool copyStates = keepForBackward && packed is null;
        Memory<float> initialH = copyStates ? h0.ToArray() : h0.Memory;
        Memory<float> initialC = c0 is null ? default : copyStates ? c0.ToArray() : c0.Memory;
        var stacking = RecurrentStacking<Memory<float>>.Forward(Compute(parameters, table, default), parameters.Config, steps, batch, packed,
            x, table is not null, initialH, initialC, y.Memory, hN.Memory, cN?.Memory ?? default, keepForBackward);
        return stacking is null ? null : new StackTape(stacking, table, steps, batch);
    }

    /// <inheritdoc />
    public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0) =>
        BackwardCore(parameters, tape, dy, dhN, dcN, dx, default, dh0, dc0);

    /// <summary>
    /// <see cref="Backward"/> through a pass of <see cref="ForwardFromTable"/>: the table's gradient [V, I] is accumulated
    /// into <paramref name="dTable"/> instead of dx being written.
    /// </summary>
    internal void BackwardFromTable(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, Memory<float> dTable, FloatTensor dh0, FloatTensor? dc0) =>
        BackwardCore(parameters, tape, dy, dhN, dcN, null, dTable, dh0, dc0);

    private void BackwardCore(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor? dx, Memory<float> dTable, FloatTensor dh0, FloatTensor? dc0)
    {
        if (tape is not StackTape stack)
            throw new ArgumentException($"tape: expected a tape made by the {Name} backend.", nameof(tape));
        ObjectDisposedException.ThrowIf(stack.Stacking.IsDisposed, stack);
        if ((stack.Table is null) != (dx is not null))
            throw new ArgumentException(stack.Table is null
                ? "tape: this pass had dense input; back-propagate it with Backward."
                : "tape: this pass read its input from a table; back-propagate it with BackwardFromTable.", nameof(tape));
        RecurrentStacking<Memory<float>>.Backward(Compute(parameters, stack.Table, dTable), parameters.Config, stack.Stacking, stack.Steps, stack.Batch,
            dy.Memory, dhN.Memory, dcN?.Memory ?? default, dx?.Memory ?? default, dh0.Memory, dc0?.Memory ?? default);
    }
}
