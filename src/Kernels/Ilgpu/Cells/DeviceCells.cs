using System.Collections.Frozen;

namespace Recurrent.Kernels.Ilgpu.Cells;

/// <summary>
/// Which implementation each <see cref="CellKind"/> has on the device: the one place that maps a cell to its code, so
/// a new cell is its own file (its kernels, fused and unfused step, in <c>Cells/</c>) and one line here. Its kernels are
/// found for the compile tests by <see cref="IlgpuKernels.All"/> (any static class named <c>…Kernels</c>).
/// </summary>
/// <remarks>Thread-safety: safe; it holds no state. The cells it returns are shared, stateless instances. Lifetime: nothing to free.</remarks>
public static class DeviceCells
{
    private static readonly FrozenDictionary<CellKind, IDeviceCell> Table = new Dictionary<CellKind, IDeviceCell>
    {
        [CellKind.RnnTanh] = new ElmanDeviceCell<TanhActivation, UnaryOps.Tanh, UnaryOps.TanhDerivative>(),
        [CellKind.RnnRelu] = new ElmanDeviceCell<ReluActivation, UnaryOps.Relu, UnaryOps.ReluDerivative>(),
        [CellKind.Lstm] = new LstmDeviceCell(),
        [CellKind.GruResetAfter] = new GruResetAfterDeviceCell(),
        [CellKind.GruResetBefore] = new GruResetBeforeDeviceCell(),
    }.ToFrozenDictionary();

    /// <summary>The device implementation of <paramref name="cell"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No implementation is registered for <paramref name="cell"/>.</exception>
    public static IDeviceCell For(CellKind cell) =>
        Table.TryGetValue(cell, out var implementation) ? implementation
            : throw new ArgumentOutOfRangeException(nameof(cell), cell, "no ILGPU implementation is registered for this cell kind");
}
