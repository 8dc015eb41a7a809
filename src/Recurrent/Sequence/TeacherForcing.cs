using System.Numerics;

namespace Recurrent.Sequence;

/// <summary>What teacher forcing and free running feed back, shared by the sequence models.</summary>
internal static class TeacherForcing
{
    /// <summary>
    /// The token fed back at each of the T·N rows under teacher forcing: <paramref name="startToken"/> (−1: zeros) in the
    /// first N rows, then y_{t−1}: row r is fed ids[r − N].
    /// </summary>
    public static int[] FedBackTokens(int[] ids, int steps, int batch, int startToken)
    {
        var fedBack = new int[steps * batch];
        fedBack.AsSpan(0, batch).Fill(startToken);
        ids.AsSpan(0, (steps - 1) * batch).CopyTo(fedBack.AsSpan(batch));
        return fedBack;
    }

    /// <summary>The index of the largest element, the first on ties: the token free running feeds back.</summary>
    public static int ArgMax<T>(ReadOnlySpan<T> row) where T : IComparisonOperators<T, T, bool>
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++)
            if (row[i] > row[best]) best = i;
        return best;
    }
}
