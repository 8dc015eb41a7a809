namespace Recurrent.Tests;

/// <summary>
/// Every tolerance of the suite, in one place. A check passes when |actual − expected| ≤ Absolute + Relative·|expected|.
/// </summary>
public static class Tolerances
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
    /// The same double-precision terms added in another order (a batch's parameter gradients against the sum of its
    /// sequences' gradients computed one at a time): each addition rounds by ≤ 1.1e-16 relative, so over hundreds of
    /// terms of order one the sums differ by ≈ 1e-14; a term missing or added twice errs by the term's size, ≫ 1e-10.
    /// </summary>
    public static readonly Tolerance DoubleSummationOrder = new(Absolute: 1e-12, Relative: 1e-10);

    /// <summary>
    /// The same float32 terms added in another order (concurrent backward passes into one layer, ILGPU's reductions on
    /// the CPU accelerator): each addition rounds once (≈ 6e-8 relative), so over tens of terms the sums differ by far
    /// less than 1e-5 + 1e-4·|e|; a lost update or a term from another input misses by the term's size.
    /// </summary>
    public static readonly Tolerance SummationOrder = new(Absolute: 1e-5, Relative: 1e-4);

    /// <summary>
    /// The native vector exp, sigmoid and tanh against double precision. exp is Cephes' polynomial (≈ 1e-7 relative);
    /// tanh = (1 − e)/(1 + e) amplifies it by at most e/(1 − e) ≈ 1.6 above |x| = 0.25, its Taylor series below;
    /// 2e-6 relative leaves a wide margin. The absolute floor only covers sigmoid far below zero (≈ 1e-38 against 1e-44).
    /// </summary>
    public static readonly Tolerance Activation = new(Absolute: 1e-30, Relative: 2e-6);

    /// <summary>
    /// The reference (and the layer API on the reference backend) against PyTorch computing in float64
    /// (Data/pytorch/*_f64, made by scripts/make_reference_data.py). Inputs and parameters are float32 values, so both
    /// sides compute the same function in double; PyTorch's results are stored rounded to float32 (unit roundoff
    /// 2⁻²⁴ ≈ 6e-8), and the layer API rounds its double results to float32 too, so the two differ by at most one
    /// float32 ulp, ≤ 2⁻²³·|value| ≈ 1.2e-7·|value|. Relative 2.5e-7 is that bound with a factor two of margin; the
    /// absolute 1e-12 covers the double rounding of sums that cancel to nearly zero. A wrong gate order or
    /// cell form errs by 0.26 and more in these cases.
    /// </summary>
    public static readonly Tolerance PyTorchFloat64 = new(Absolute: 1e-12, Relative: 2.5e-7);

    /// <summary>
    /// The reference (double) against PyTorch computing in float32 (Data/pytorch/*_f32: T=6, I=17, H=9, two layers,
    /// both directions). PyTorch's own float32 rounding dominates: sums of ≤ 26 products per gate and 6 steps of
    /// recurrence per layer. The largest error measured is 3.7e-7 absolute (PyTorchParityTests'
    /// Float32Case_LargestErrorIsWellInsideTheTolerance prints it); this bound, as in <see cref="Float32"/> but over
    /// fewer steps, leaves a margin of about 50 and stays far below the errors of a wrong gate order or cell form
    /// (0.26 to 2.8 in these cases, printed by Comparison_FailsForAWrongGateOrderOrCell).
    /// </summary>
    public static readonly Tolerance PyTorchFloat32 = new(Absolute: 2e-5, Relative: 2e-4);
}

public readonly record struct Tolerance(double Absolute, double Relative)
{
    public bool Accepts(double actual, double expected) =>
        Math.Abs(actual - expected) <= Absolute + Relative * Math.Abs(expected);
}
