namespace Recurrent.Bench.Report;

/// <summary>
/// The check every implementation passes before any of its time is recorded: its output y must match the
/// double-precision reference on the first steps of the first batch rows, and the first implementation measured (the fused backend) on
/// all steps.
/// </summary>
internal static class Agreement
{
    /// <summary>
    /// Absolute part of the tolerance. Looser than the unit tests' Float32 tolerance on purpose: here T reaches 1000 and
    /// peers use other summation orders (oneDNN's blocked GEMM, ONNX Runtime's MLAS), so float32 rounding compounds
    /// over many more steps; a real bug (a wrong gate, a transposed weight) is off by far more than 1e-2 relative.
    /// </summary>
    public const double Absolute = 1e-3;

    /// <summary>Relative part of the tolerance: a pass needs |actual − expected| ≤ 1e-3 + 1e-2·|expected|.</summary>
    public const double Relative = 1e-2;

    /// <summary>How many leading steps are checked against the reference.</summary>
    public const int ReferenceSteps = 3;

    /// <summary>How many leading batch rows are checked against the reference (with <see cref="ReferenceSteps"/>, cheap at any shape).</summary>
    public const int ReferenceRows = 4;

    /// <summary>
    /// Compares the first <paramref name="expected"/>.Length values of <paramref name="actual"/> with
    /// <paramref name="expected"/>; returns null when they agree, else a message naming the worst element.
    /// </summary>
    public static string? Check(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string against)
    {
        if (actual.Length < expected.Length)
            return $"output has {actual.Length} elements, expected at least {expected.Length}";
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double excess = Math.Abs((double)actual[i] - expected[i]) - (Absolute + Relative * Math.Abs((double)expected[i]));
            if (!float.IsFinite(actual[i])) excess = double.PositiveInfinity;
            if (excess > worstExcess)
            {
                worst = i;
                worstExcess = excess;
            }
        }
        return worst < 0 ? null
            : $"output disagrees with {against}: element {worst} is {actual[worst]:G9}, expected {expected[worst]:G9} (tolerance {Absolute:G2} + {Relative:G2}·|expected|)";
    }

    /// <summary>The largest |actual − expected| over the compared elements, for the report.</summary>
    public static double MaxDeviation(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double max = 0;
        for (int i = 0; i < Math.Min(actual.Length, expected.Length); i++)
            max = Math.Max(max, Math.Abs((double)actual[i] - expected[i]));
        return max;
    }
}
