namespace Recurrent.Kernels.Ilgpu;

/// <summary>An activation passed into a kernel as a type, so the kernel is specialised and the call inlined.</summary>
/// <remarks>Thread-safety: implementations are stateless values used inside kernels. Lifetime: nothing to free.</remarks>
public interface IActivation
{
    /// <summary>f(x).</summary>
    float Apply(float x);
    /// <summary>f'(x) written through y = f(x), which is what the forward pass keeps.</summary>
    float DerivativeFromOutput(float y);
}

/// <summary>tanh.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct TanhActivation : IActivation
{
    /// <inheritdoc />
    public float Apply(float x) => DeviceMath.Tanh(x);
    /// <inheritdoc />
    public float DerivativeFromOutput(float y) => 1 - y * y;
}

/// <summary>max(x, 0), NaN for NaN.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct ReluActivation : IActivation
{
    /// <inheritdoc />
    public float Apply(float x) => DeviceMath.Relu(x);
    /// <inheritdoc />
    /// <remarks>1 for a NaN output, as the reference and PyTorch's <c>threshold_backward</c>: the gradient passes a NaN h.</remarks>
    public float DerivativeFromOutput(float y) => y <= 0 ? 0 : 1;
}
