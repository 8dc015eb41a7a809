using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>Sizes of a column sum: a [Rows, Cols] matrix with row stride Ld.</summary>
/// <remarks>Thread-safety: an immutable value, safe from any thread. Lifetime: nothing to free.</remarks>
public readonly struct ColumnSumShape(int rows, int cols, int ld, bool accumulate, int rowsPerChunk = 0)
{
    /// <summary>Rows summed.</summary>
    public readonly int Rows = rows;
    /// <summary>Columns, one sum each.</summary>
    public readonly int Cols = cols;
    /// <summary>Row stride of the matrix.</summary>
    public readonly int Ld = ld;
    /// <summary>1 to add into the destination, 0 to overwrite it.</summary>
    public readonly int Accumulate = accumulate ? 1 : 0;
    /// <summary>Rows each thread of <see cref="ReductionKernels.ColumnPartialSums"/> adds up.</summary>
    public readonly int RowsPerChunk = rowsPerChunk;
}

/// <summary>Reductions: bias gradients are column sums of the gate gradients [T·N, G·H].</summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class ReductionKernels
{
    /// <summary>
    /// sums[j] (+)= Σ_r matrix[r·Ld + j]. One group per column (grid = Cols, at most <see cref="DeviceMath.MaxGroupSize"/>
    /// threads); its threads stride over the rows and <see cref="DeviceMath.GroupReduce{TOp}"/> adds their partial sums:
    /// no atomics (which hang on a NaN on the CPU accelerator) and a fixed summation order.
    /// </summary>
    public static void ColumnSums(ArrayView<float> matrix, ArrayView<float> sums, ColumnSumShape s)
    {
        int col = Grid.IdxX;
        float partial = 0;
        for (int r = Group.IdxX; r < s.Rows; r += Group.DimX)
            partial += matrix[r * s.Ld + col];
        float total = DeviceMath.GroupReduce<SumOp>(partial);
        if (Group.IsFirstThread)
            sums[col] = s.Accumulate != 0 ? sums[col] + total : total;
    }

    /// <summary>
    /// First pass of a tall column sum: thread i adds rows [c·RowsPerChunk, (c+1)·RowsPerChunk) of column i mod Cols
    /// (c = i / Cols) into partial[c·Cols + column]. Neighbouring threads read neighbouring columns, so loads coalesce,
    /// which the one-group-per-column pass cannot do; that pass then adds the few partial rows.
    /// </summary>
    public static void ColumnPartialSums(Index1D index, ArrayView<float> matrix, ArrayView<float> partial, ColumnSumShape s)
    {
        int chunk = index / s.Cols, col = index - chunk * s.Cols;
        int first = chunk * s.RowsPerChunk, end = first + s.RowsPerChunk < s.Rows ? first + s.RowsPerChunk : s.Rows;
        float sum = 0;
        for (int r = first; r < end; r++)
            sum += matrix[r * s.Ld + col];
        partial[index] = sum;
    }
}
