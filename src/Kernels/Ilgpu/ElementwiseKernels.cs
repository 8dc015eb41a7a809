using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// A rows × cols block of a buffer: element (row, col) is at Offset + row · Stride + col. Stride 0 repeats one row
/// for every row, which is how a bias [cols] is broadcast over a batch.
/// </summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct Block(int offset, int stride)
{
    /// <summary>Index of element (0, 0).</summary>
    public readonly int Offset = offset;
    /// <summary>Distance between rows; 0 to broadcast one row.</summary>
    public readonly int Stride = stride;

    /// <summary>The index of element (row, col).</summary>
    public int At(int row, int col) => Offset + row * Stride + col;
}

/// <summary>y = op(x), passed into <see cref="ElementwiseKernels.Unary{TOp}"/> as a type.</summary>
/// <remarks>Thread-safety: implementations are stateless values. Lifetime: nothing to free.</remarks>
public interface IUnaryOp
{
    /// <summary>The operation.</summary>
    float Apply(float x);
}

/// <summary>y = op(a, b), passed into <see cref="ElementwiseKernels.Binary{TOp}"/> as a type.</summary>
/// <remarks>Thread-safety: implementations are stateless values. Lifetime: nothing to free.</remarks>
public interface IBinaryOp
{
    /// <summary>The operation.</summary>
    float Apply(float a, float b);
}

/// <summary>The unary operations of the unfused cells.</summary>
/// <remarks>Thread-safety: its operations are stateless values, safe from any thread. Lifetime: nothing to free.</remarks>
public static class UnaryOps
{
    /// <summary>1 / (1 + e^−x).</summary>
    public readonly struct Sigmoid : IUnaryOp { /** <inheritdoc /> */ public float Apply(float x) => 1f / (1f + MathF.Exp(-x)); }
    /// <summary>tanh x.</summary>
    public readonly struct Tanh : IUnaryOp { /** <inheritdoc /> */ public float Apply(float x) => DeviceMath.Tanh(x); }
    /// <summary>max(x, 0), NaN for NaN.</summary>
    public readonly struct Relu : IUnaryOp { /** <inheritdoc /> */ public float Apply(float x) => DeviceMath.Relu(x); }
    /// <summary>x.</summary>
    public readonly struct Copy : IUnaryOp { /** <inheritdoc /> */ public float Apply(float x) => x; }
    /// <summary>1 − x.</summary>
    public readonly struct OneMinus : IUnaryOp { /** <inheritdoc /> */ public float Apply(float x) => 1 - x; }
    /// <summary>σ'(·) from y = σ(·): y (1 − y).</summary>
    public readonly struct SigmoidDerivative : IUnaryOp { /** <inheritdoc /> */ public float Apply(float y) => y * (1 - y); }
    /// <summary>tanh'(·) from y = tanh(·): 1 − y².</summary>
    public readonly struct TanhDerivative : IUnaryOp { /** <inheritdoc /> */ public float Apply(float y) => 1 - y * y; }
    /// <summary>relu'(·) from y = relu(·): 1 where y &gt; 0.</summary>
    public readonly struct ReluDerivative : IUnaryOp { /** <inheritdoc /> */ public float Apply(float y) => y <= 0 ? 0 : 1; }
}

/// <summary>The binary operations of the unfused cells.</summary>
/// <remarks>Thread-safety: its operations are stateless values, safe from any thread. Lifetime: nothing to free.</remarks>
public static class BinaryOps
{
    /// <summary>a + b.</summary>
    public readonly struct Add : IBinaryOp { /** <inheritdoc /> */ public float Apply(float a, float b) => a + b; }
    /// <summary>a − b.</summary>
    public readonly struct Subtract : IBinaryOp { /** <inheritdoc /> */ public float Apply(float a, float b) => a - b; }
    /// <summary>a · b.</summary>
    public readonly struct Multiply : IBinaryOp { /** <inheritdoc /> */ public float Apply(float a, float b) => a * b; }
}

/// <summary>
/// One elementwise operation per launch over a whole rows × cols block: the unfused baseline that the fused cell
/// kernels are measured against. Launched over Index2D(cols, rows); destination may be a source (same element).
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class ElementwiseKernels
{
    /// <summary>destination = op(source), blockwise.</summary>
    public static void Unary<TOp>(Index2D index, ArrayView<float> source, Block sourceBlock, ArrayView<float> destination, Block destinationBlock)
        where TOp : struct, IUnaryOp =>
        destination[destinationBlock.At(index.Y, index.X)] = default(TOp).Apply(source[sourceBlock.At(index.Y, index.X)]);

    /// <summary>destination = op(a, b), blockwise.</summary>
    public static void Binary<TOp>(Index2D index, ArrayView<float> a, Block aBlock, ArrayView<float> b, Block bBlock,
        ArrayView<float> destination, Block destinationBlock)
        where TOp : struct, IBinaryOp =>
        destination[destinationBlock.At(index.Y, index.X)] = default(TOp).Apply(a[aBlock.At(index.Y, index.X)], b[bBlock.At(index.Y, index.X)]);
}
