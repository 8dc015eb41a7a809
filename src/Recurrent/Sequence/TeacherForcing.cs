using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>What teacher forcing and free running feed back, and how a padded batch is masked, shared by the sequence models.</summary>
internal static class TeacherForcing
{
    /// <summary>
    /// The tokens [T + 1, N] of a step, in <paramref name="buffer"/> (grown when too short, kept by the caller): the start
    /// token (−1: zeros) in row 0, then the targets. The fed-back tokens of the T·N rows are then [0, T·N) and the
    /// targets [N, N + T·N): row r is fed its target one step earlier, y_{t−1}, so one upload serves both. With
    /// <paramref name="ids"/> null only row 0 is written (free running fills the rest).
    /// </summary>
    /// <remarks>
    /// With per-sequence <c>lengths</c> (<see cref="SequenceTargets.Padding"/>) a target past a sequence's end is written
    /// as −1 and its id is not read: the losses ignore a −1 target, and fed back (at step length + 1 and later, past the
    /// end) it is the zero row, so padding ids outside the vocabulary never reach a gather.
    /// </remarks>
    public static Memory<int> StartAndTargets(int[]? ids, int steps, int batch, int startToken, ref int[] buffer, int[]? lengths = null)
    {
        int length = (steps + 1) * batch;
        if (buffer.Length < length) buffer = new int[length];
        buffer.AsSpan(0, batch).Fill(startToken);
        ids?.AsSpan(0, steps * batch).CopyTo(buffer.AsSpan(batch));
        if (ids is not null && lengths is not null)
            for (int n = 0; n < batch; n++)
                for (int t = lengths[n]; t < steps; t++) buffer[(t + 1) * batch + n] = -1;
        return buffer.AsMemory(0, length);
    }

    /// <summary>
    /// Real-valued targets [T, N, O] as the operations read them: <paramref name="values"/> itself without
    /// <paramref name="lengths"/>, else a copy in <paramref name="buffer"/> (grown when too short) with the rows past each
    /// end zeroed. Those rows are fed back past the end, where the products read them: an unchecked NaN there would turn a
    /// zero gradient into NaN (0 · NaN).
    /// </summary>
    public static ReadOnlyMemory<T> RealTargets<T>(ReadOnlyMemory<T> values, int steps, int batch, int width, int[]? lengths, ref T[] buffer)
        where T : unmanaged
    {
        if (lengths is null) return values;
        int length = steps * batch * width;
        if (buffer.Length < length) buffer = new T[length];
        var source = values.Span;
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++)
            {
                var row = buffer.AsSpan((t * batch + n) * width, width);
                if (t < lengths[n]) source.Slice((t * batch + n) * width, width).CopyTo(row);
                else row.Clear();
            }
        return buffer.AsMemory(0, length);
    }

    /// <summary>
    /// The row mask [T·N] of squared error (<see cref="IMatrixOps{T, TData, TIds}.SquaredError"/>): 0 for a real row, −1
    /// past a sequence's end, as a token target is marked; empty without <paramref name="lengths"/>.
    /// </summary>
    public static Memory<int> RowMask(int[]? lengths, int steps, int batch, ref int[] buffer)
    {
        if (lengths is null) return Memory<int>.Empty;
        int length = steps * batch;
        if (buffer.Length < length) buffer = new int[length];
        for (int t = 0; t < steps; t++)
            for (int n = 0; n < batch; n++) buffer[t * batch + n] = t < lengths[n] ? 0 : -1;
        return buffer.AsMemory(0, length);
    }

    /// <summary>Zeroes the rows of <paramref name="outputs"/> [T, N, O] past each sequence's end (none without <paramref name="lengths"/>).</summary>
    public static void ClearPastEnds<T>(Span<T> outputs, int steps, int batch, int width, int[]? lengths)
    {
        if (lengths is null) return;
        for (int n = 0; n < batch; n++)
            for (int t = lengths[n]; t < steps; t++) outputs.Slice((t * batch + n) * width, width).Clear();
    }

    /// <summary>The index of the largest element, the first on ties: the token free running feeds back.</summary>
    public static int ArgMax<T>(ReadOnlySpan<T> row) where T : IComparisonOperators<T, T, bool>
    {
        int best = 0;
        // A NaN counts as the largest value (its first one wins), as torch.argmax: `>` alone would skip it.
        for (int i = 1; i < row.Length && row[best] == row[best]; i++)
            if (row[i] > row[best] || row[i] != row[i]) best = i;
        return best;
    }
}

/// <summary>
/// The targets of one teacher-forced call where the operations read them, and the loss over them: what both sequence
/// models' engines share. <see cref="Stage"/> puts them in place once per call (one upload on a device), with a padded
/// batch's rows past each end marked (<see cref="TeacherForcing"/>); <see cref="AddLoss"/> then adds the loss of any range
/// of the T·N rows, ignoring those rows, scaled to the mean over the real tokens. Keeps its buffers between calls.
/// </summary>
internal sealed class TeacherForcedTargets<T, TData, TIds>(IMatrixOps<T, TData, TIds> ops, SequenceLoss loss, int outputSize)
    where T : unmanaged, IFloatingPointIeee754<T> where TData : struct where TIds : struct
{
    private int[] _tokens = [], _rowMask = [];
    private T[] _paddedValues = [];
    private TIds _tokenStage, _maskStage, _mask;
    private TData _valueStage;
    private bool _masked;

    private bool Discrete => loss == SequenceLoss.SoftmaxCrossEntropy;

    /// <summary>Tokens [T + 1, N] (<see cref="TeacherForcing.StartAndTargets"/>): row r of the T·N rows is fed back [r] and has target [N + r].</summary>
    public TIds Tokens { get; private set; }

    /// <summary><see cref="Tokens"/> on the host, as staged (valid until the next <see cref="Stage"/>).</summary>
    public ReadOnlySpan<int> HostTokens => _tokens;

    /// <summary>Real-valued targets [T, N, O], zero past each end (<see cref="TeacherForcing.RealTargets"/>).</summary>
    public TData Values { get; private set; }

    /// <summary>1 / the real tokens (T·N, or Σ lengths): the loss is their mean.</summary>
    public T Scale { get; private set; }

    /// <summary>
    /// Stages the targets of a call: <paramref name="ids"/> [T, N] or <paramref name="values"/> [T, N, O], per-sequence
    /// <paramref name="lengths"/> or null. For free running (ids null) only the start token row is written.
    /// </summary>
    public void Stage(int[]? ids, ReadOnlyMemory<T> values, int steps, int batch, int startToken, int[]? lengths)
    {
        Scale = T.One / T.CreateChecked(SequenceLengths.Tokens(lengths, steps, batch));
        _masked = lengths is not null;
        if (Discrete)
        {
            Tokens = ops.UploadIds(TeacherForcing.StartAndTargets(ids, steps, batch, startToken, ref _tokens, lengths), ref _tokenStage);
            return;
        }
        Values = ops.Upload(TeacherForcing.RealTargets(values, steps, batch, outputSize, lengths, ref _paddedValues), ref _valueStage);
        if (_masked) _mask = ops.UploadIds(TeacherForcing.RowMask(lengths, steps, batch, ref _rowMask), ref _maskStage);
    }

    /// <summary>
    /// Adds the loss of rows [firstRow, firstRow + rows) of the T·N rows, whose outputs are <paramref name="o"/> [rows, O],
    /// into <paramref name="lossSum"/> and overwrites o with its gradient (scaled by <see cref="Scale"/>); rows past an end
    /// add nothing and get a zero gradient.
    /// </summary>
    public void AddLoss(TData o, int batch, int firstRow, int rows, TData lossSum)
    {
        if (Discrete)
            ops.SoftmaxCrossEntropy(o, outputSize, ops.SliceIds(Tokens, batch + firstRow, rows), Scale, lossSum);
        else
            ops.SquaredError(o, ops.Slice(Values, firstRow * outputSize, rows * outputSize), outputSize,
                _masked ? ops.SliceIds(_mask, firstRow, rows) : default, Scale, lossSum);
    }
}
