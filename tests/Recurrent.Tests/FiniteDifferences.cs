namespace Recurrent.Tests;

/// <summary>Central finite differences in double, the check of every analytic gradient of the suite.</summary>
internal static class FiniteDifferences
{
    // See Tolerances.FiniteDifference for why this step.
    private const double Step = 1e-6;

    /// <summary>d loss / d variable[i] for every i, perturbing the variable in place and restoring it.</summary>
    public static double[] Numeric(Span<double> variable, Func<double> loss)
    {
        var numeric = new double[variable.Length];
        for (int i = 0; i < variable.Length; i++)
        {
            double saved = variable[i];
            variable[i] = saved + Step;
            double plus = loss();
            variable[i] = saved - Step;
            double minus = loss();
            variable[i] = saved;
            numeric[i] = (plus - minus) / (2 * Step);
        }
        return numeric;
    }

    /// <summary>Asserts that <paramref name="analytic"/> matches the finite differences of <paramref name="loss"/>.</summary>
    public static void Check(Span<double> variable, ReadOnlySpan<double> analytic, Func<double> loss, string name) =>
        Assertions.AllClose(analytic, Numeric(variable, loss), Tolerances.FiniteDifference, name);
}
