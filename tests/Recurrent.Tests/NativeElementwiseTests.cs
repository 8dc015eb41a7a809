using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

/// <summary>
/// The elementwise operations the native pointwise kernels are built from, on every instruction-set path, against
/// double precision: every length 0..70 (all remainders of 8- and 16-wide vectors) and the special values.
/// </summary>
[TestFixture]
public class NativeElementwiseTests
{
    private static readonly float[] SpecialValues =
        [0f, -0f, 1e-8f, -1e-8f, 0.2499f, 0.25f, -0.25f, 0.2501f, 1f, -1f, 9.5f, -9.5f, 20f, -20f, 87f, -87f, 88.7f, -88.7f, 100f, -100f, 1e30f, -1e30f];

    private static IEnumerable<TestCaseData> Cases() =>
        from isa in new[] { NativeIsa.Auto, NativeIsa.Avx2, NativeIsa.Portable }
        from op in Enum.GetValues<NativeElementwise>()
        select new TestCaseData(isa, (int)op).SetArgDisplayNames(isa.ToString(), op.ToString());

    [TestCaseSource(nameof(Cases))]
    public void Operation_MatchesDoublePrecision_AtEveryLengthAndSpecialValue(NativeIsa isa, int operation)
    {
        var op = (NativeElementwise)operation;  // the enum is internal to the library
        var random = new Random(11 + (int)op);
        try
        {
            NativeLibrary.Isa = isa;
            for (int length = 0; length <= 70; length++)
                Check(op, TestData.UniformSingle(random, length, bound: 10), TestData.UniformSingle(random, length, bound: 10), $"length {length}");
            Check(op, SpecialValues, SpecialValues.Reverse().ToArray(), "special values");
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
    }

    /// <summary>
    /// NaN, ±∞, ±0 and values around exp's clamps (88.4 and 89 overflow it to ∞, as sigmoid(−x) → 0 needs) at every
    /// position of every length 1..33, so each lands in a full vector and in the scalar remainder of every width:
    /// NaN stays NaN, tanh and sigmoid of ±∞ are their limits, relu(∞) is ∞, 0·∞ is NaN.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void Operation_KeepsNaNAndInfinities_AtEveryLengthAndPosition(NativeIsa isa, int operation)
    {
        var op = (NativeElementwise)operation;
        float[] specials = [float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 88.4f, -88.4f, 89f, -89f, 1e30f, -1e30f];
        var random = new Random(5 + (int)op);
        try
        {
            NativeLibrary.Isa = isa;
            for (int length = 1; length <= 33; length++)
                for (int position = 0; position < length; position++)
                    foreach (float special in specials)
                    {
                        var a = TestData.UniformSingle(random, length, bound: 3);
                        var b = TestData.UniformSingle(random, length, bound: 3);
                        a[position] = special;
                        b[length - 1 - position] = specials[(Array.IndexOf(specials, special) + 3) % specials.Length];
                        Check(op, a, b, $"length {length}, {special} at {position}");
                    }
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
    }

    [Test]
    public void Tanh_KeepsItsRelativeAccuracy_NearZero()
    {
        var x = Enumerable.Range(0, 64).Select(i => MathF.Pow(2, -i * 0.5f) * (i % 2 == 0 ? 1 : -1)).ToArray();
        var output = new float[x.Length];
        NativeRnn.Elementwise(NativeElementwise.Tanh, x, default, output);
        Assertions.AllClose(output, x.Select(v => Math.Tanh(v)).ToArray(), Tolerances.Activation, "tanh near 0");
    }

    private static void Check(NativeElementwise op, float[] a, float[] b, string what)
    {
        var output = new float[a.Length];
        NativeRnn.Elementwise(op, a, b, output);
        var expected = new double[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            double x = a[i], y = b[i];
            expected[i] = op switch
            {
                NativeElementwise.Add => (float)(x + y),
                NativeElementwise.Sub => (float)(x - y),
                NativeElementwise.Mul => (float)(x * y),
                NativeElementwise.Sigmoid => 1 / (1 + Math.Exp(-x)),
                NativeElementwise.Tanh => Math.Tanh(x),
                NativeElementwise.Relu => Math.Max(x, 0),
                NativeElementwise.OneMinus => (float)(1 - x),
                NativeElementwise.ReluMask => x <= 0 ? 0 : 1,  // 1 for NaN: the gradient passes, as in PyTorch
                NativeElementwise.Copy => x,
                _ => throw new ArgumentOutOfRangeException(nameof(op)),
            };
        }
        bool exact = op is not (NativeElementwise.Sigmoid or NativeElementwise.Tanh);
        NonFinite.AssertSame(output, expected, exact ? new Tolerance(0, 0) : Tolerances.Activation, $"{op} {what}");
    }
}
