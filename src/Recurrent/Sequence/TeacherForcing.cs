using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>What teacher forcing and free running feed back, shared by the sequence models.</summary>
internal static class TeacherForcing
{
    /// <summary>
    /// The tokens [T + 1, N] of a step, in <paramref name="buffer"/> (grown when too short, kept by the caller): the start
    /// token (−1: zeros) in row 0, then the targets. The fed-back tokens of the T·N rows are then [0, T·N) and the
    /// targets [N, N + T·N): row r is fed its target one step earlier, y_{t−1}, so one upload serves both. With
    /// <paramref name="ids"/> null only row 0 is written (free running fills the rest).
    /// </summary>
    public static Memory<int> StartAndTargets(int[]? ids, int steps, int batch, int startToken, ref int[] buffer)
    {
        int length = (steps + 1) * batch;
        if (buffer.Length < length) buffer = new int[length];
        buffer.AsSpan(0, batch).Fill(startToken);
        ids?.AsSpan(0, steps * batch).CopyTo(buffer.AsSpan(batch));
        return buffer.AsMemory(0, length);
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
