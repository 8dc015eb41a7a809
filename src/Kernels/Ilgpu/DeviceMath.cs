using System.Runtime.CompilerServices;
using ILGPU;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// Device functions the kernels share, most of them because the obvious spelling loses a NaN or ±∞ that arose inside a
/// pass, or can hang. Every result here is what IEEE arithmetic and the double-precision reference give: a NaN operand
/// gives NaN, tanh(±∞) is ±1. Not a kernel class: <see cref="IlgpuKernels.All"/> does not list it.
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. Lifetime: nothing to free.</remarks>
public static class DeviceMath
{
    /// <summary>The largest group a kernel using <see cref="GroupReduce{TOp}"/> may be launched with (CUDA's limit).</summary>
    public const int MaxGroupSize = 1024;

    /// <summary>1 / (1 + e^−x), the gates' sigmoid; NaN stays NaN and ±∞ give 0 and 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>
    /// max(x, 0), NaN for NaN as the reference's Math.Max gives; <c>x &gt; 0 ? x : 0</c> would turn a NaN into 0 and let a
    /// model with a NaN parameter report finite outputs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu(float x) => x > 0 || float.IsNaN(x) ? x : 0;

    /// <summary>
    /// max(a, b) that is NaN when either is, as the reference's Math.Max; PTX's max.f32 (XMath.Max) and <c>a &gt; b ? a : b</c>
    /// both return the other operand.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Max(float a, float b) => a > b || float.IsNaN(a) ? a : b;

    /// <summary>
    /// tanh x. Beyond |x| = 15 tanh rounds to ±1 in float, and returning that directly keeps the value right on every
    /// backend: without libdevice ILGPU's PTX tanh is (e^{2x} − 1) / (e^{2x} + 1), which is ∞ · 0 = NaN once e^{2x}
    /// overflows (x above about 44), and ±∞ land here too. NaN fails both comparisons and stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Tanh(float x) => x > 15f ? 1f : x < -15f ? -1f : MathF.Tanh(x);

    /// <summary>
    /// The reduction of <paramref name="value"/> over the group's threads, returned to every thread: a tree in shared
    /// memory, combining in a fixed order (so the result is reproducible) and with no atomics. ILGPU.Algorithms' group
    /// reductions combine the warps with atomics that ILGPU builds from a compare-exchange loop comparing floats: on
    /// ILGPU's CPU accelerator that loop never ends once the target holds NaN (and on PTX their Max drops a NaN). Every thread
    /// of the group must call it; the group may be any size up to <see cref="MaxGroupSize"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GroupReduce<TOp>(float value) where TOp : struct, IReduceOp
    {
        var slots = SharedMemory.Allocate<float>(MaxGroupSize);
        int i = Group.IdxX, n = Group.DimX;
        slots[i] = value;
        Group.Barrier();
        int half = 1;
        while (half * 2 < n) half *= 2;
        for (int stride = half; stride > 0; stride >>= 1)
        {
            if (i < stride && i + stride < n) slots[i] = default(TOp).Apply(slots[i], slots[i + stride]);
            Group.Barrier();
        }
        float result = slots[0];
        // Nobody may write the slots again (a reduction in a loop) before every thread has read the result.
        Group.Barrier();
        return result;
    }
}

/// <summary>An associative operation for <see cref="DeviceMath.GroupReduce{TOp}"/>.</summary>
/// <remarks>Thread-safety: implementations are stateless values. Lifetime: nothing to free.</remarks>
public interface IReduceOp
{
    /// <summary>The operation.</summary>
    float Apply(float a, float b);
}

/// <summary>a + b.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct SumOp : IReduceOp
{
    /// <inheritdoc />
    public float Apply(float a, float b) => a + b;
}

/// <summary><see cref="DeviceMath.Max"/>: NaN when either operand is.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct MaxOp : IReduceOp
{
    /// <inheritdoc />
    public float Apply(float a, float b) => DeviceMath.Max(a, b);
}

/// <summary>target[index] += value, atomically: how <see cref="SequenceKernels.ScatterRowsAdd{TAdd}"/> adds rows whose ids repeat.</summary>
/// <remarks>Thread-safety: implementations are stateless values; the add itself is atomic on the device. Lifetime: nothing to free.</remarks>
public interface IAtomicAdd
{
    /// <summary>Adds <paramref name="value"/> into <paramref name="target"/>[<paramref name="index"/>].</summary>
    void Add(ArrayView<float> target, long index, float value);
}

/// <summary>
/// ILGPU's float <c>Atomic.Add</c>: on CUDA one <c>red.add.f32</c>, which adds a NaN like any value. Only for CUDA:
/// elsewhere ILGPU builds it from a compare-exchange loop that compares floats, and that never ends once the target is NaN.
/// </summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct HardwareAtomicAdd : IAtomicAdd
{
    /// <inheritdoc />
    public void Add(ArrayView<float> target, long index, float value) => Atomic.Add(ref target[index], value);
}

/// <summary>
/// A compare-exchange loop on the float's bits: it retries only while another thread changed those bits in between,
/// so it ends whatever the target holds, NaN included (a float compare would see NaN ≠ NaN and retry forever).
/// </summary>
/// <remarks>Lifetime: an immutable value with nothing to free.</remarks>
public readonly struct BitCompareExchangeAdd : IAtomicAdd
{
    /// <inheritdoc />
    public void Add(ArrayView<float> target, long index, float value)
    {
        var bits = target.Cast<uint>();
        uint current = bits[index];
        for (;;)
        {
            uint expected = current;
            uint sum = Interop.FloatAsInt(Interop.IntAsFloat(expected) + value);
            current = Atomic.CompareExchange(ref bits[index], expected, sum);
            if (current == expected) break;
        }
    }
}
