namespace Recurrent.Tests;

/// <summary>
/// Every tolerance of the suite, in one place. A check passes when |actual − expected| ≤ Absolute + Relative·|expected|.
/// </summary>
internal static class Tolerances
{
    /// <summary>
    /// Central differences in double with step 1e-6 have truncation error O(h²·f''') ≈ 1e-12 and rounding error
    /// O(ε/h) ≈ 1e-10 on values of order one; 1e-7 leaves a wide margin yet catches any wrong term.
    /// </summary>
    public static readonly Tolerance FiniteDifference = new(Absolute: 1e-7, Relative: 1e-6);

    /// <summary>
    /// A float32 backend against the double reference. Sums of up to a few hundred products of values ≈ 1 lose
    /// ≈ √K·ε32 relatively; errors grow through T steps of recurrence. 1e-4 absolute plus 1e-3 relative holds for
    /// the shapes tested (T ≤ 20, H ≤ 129) with margin.
    /// </summary>
    public static readonly Tolerance Float32 = new(Absolute: 1e-4, Relative: 1e-3);

    /// <summary>
    /// The native vector exp, sigmoid and tanh against double precision. exp is Cephes' polynomial (≈ 1e-7 relative);
    /// tanh = (1 − e)/(1 + e) amplifies it by at most e/(1 − e) ≈ 1.6 above |x| = 0.25, its Taylor series below;
    /// 2e-6 relative leaves a wide margin. The absolute floor only covers sigmoid far below zero (≈ 1e-38 against 1e-44).
    /// </summary>
    public static readonly Tolerance Activation = new(Absolute: 1e-30, Relative: 2e-6);

    /// <summary>
    /// The reference (double) against PyTorch's float32 results stored as text with 9 significant digits:
    /// PyTorch's own float32 rounding dominates, as in <see cref="Float32"/> but over fewer steps.
    /// </summary>
    public static readonly Tolerance PyTorch = new(Absolute: 2e-5, Relative: 2e-4);
}

internal readonly record struct Tolerance(double Absolute, double Relative)
{
    public bool Accepts(double actual, double expected) =>
        Math.Abs(actual - expected) <= Absolute + Relative * Math.Abs(expected);
}
