using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// What a cell's step runs on, for one accelerator: its kernels and matrix product, whether the pointwise part is one
/// fused kernel or the unfused baseline, and the unfused baseline's launches and temporaries. The cells themselves hold
/// no state, so this is the one thing a backend creates (and disposes) per accelerator.
/// </summary>
/// <remarks>Thread-safety: not safe; its unfused temporaries are shared by every step, so its user serialises the calls (the ILGPU backend under its lock). Lifetime: owned by the backend that made it; <see cref="Dispose"/> frees the unfused baseline's device temporaries (not the accelerator, which it borrows); do not use it after the accelerator is disposed.</remarks>
public sealed class CellContext(IlgpuAccelerator gpu, bool fused) : IDisposable
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _scratch;

    /// <summary>Whether each step's pointwise part is one kernel (else one launch per elementwise operation).</summary>
    public bool Fused { get; } = fused;

    /// <summary>The accelerator's kernels, loaded on first use.</summary>
    public IlgpuKernels Kernels { get; } = gpu.Kernels;

    /// <summary>The accelerator's matrix product.</summary>
    public IlgpuGemm Gemm { get; } = gpu.Gemm;

    /// <summary>
    /// Three [N, H] temporaries (<paramref name="nh"/> = N·H floats each) for an unfused step, grown on demand and kept:
    /// one step at a time uses them, so every cell shares them.
    /// </summary>
    public (ArrayView<float> T1, ArrayView<float> T2, ArrayView<float> T3) Temporaries(int nh)
    {
        if (_scratch is null || _scratch.Length < 3L * nh)
        {
            _scratch?.Dispose();
            _scratch = gpu.Allocate(3L * nh, "unfused step temporaries [3, N, H]");
        }
        var view = _scratch.View;
        return (view.SubView(0, nh), view.SubView(nh, nh), view.SubView(2 * nh, nh));
    }

    /// <summary>destination = op(source) over a rows × cols block: one <see cref="ElementwiseKernels.Unary{TOp}"/> launch.</summary>
    public void Unary<TOp>(ArrayView<float> source, Block sourceBlock, ArrayView<float> destination, Block destinationBlock, int rows, int cols)
        where TOp : struct, IUnaryOp =>
        Kernels.Unary<TOp>()(new Index2D(cols, rows), source, sourceBlock, destination, destinationBlock);

    /// <summary>destination = op(a, b) over a rows × cols block: one <see cref="ElementwiseKernels.Binary{TOp}"/> launch.</summary>
    public void Binary<TOp>(ArrayView<float> a, Block aBlock, ArrayView<float> b, Block bBlock, ArrayView<float> destination, Block destinationBlock,
        int rows, int cols)
        where TOp : struct, IBinaryOp =>
        Kernels.Binary<TOp>()(new Index2D(cols, rows), a, aBlock, b, bBlock, destination, destinationBlock);

    /// <inheritdoc />
    public void Dispose() => _scratch?.Dispose();
}
