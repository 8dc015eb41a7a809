using NUnit.Framework;

namespace Recurrent.Tests;

public static class Assertions
{
    /// <summary>Asserts element-wise closeness, reporting the worst element by index and values.</summary>
    public static void AllClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, Tolerance tolerance, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double excess = Math.Abs(actual[i] - expected[i]) - (tolerance.Absolute + tolerance.Relative * Math.Abs(expected[i]));
            if (double.IsNaN(actual[i]) != double.IsNaN(expected[i]) || excess > worstExcess || (double.IsNaN(excess) && !double.IsNaN(expected[i])))
            {
                worst = i;
                worstExcess = double.IsNaN(excess) ? double.PositiveInfinity : excess;
            }
        }
        if (worst >= 0)
            Assert.Fail($"{what}: element {worst} is {actual[worst]:R}, expected {expected[worst]:R} (tolerance {tolerance.Absolute:g3} + {tolerance.Relative:g3}·|expected|).");
    }

    public static void AllClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, Tolerance tolerance, string what)
    {
        var widened = new double[actual.Length];
        for (int i = 0; i < actual.Length; i++) widened[i] = actual[i];
        AllClose(widened, expected, tolerance, what);
    }
}
