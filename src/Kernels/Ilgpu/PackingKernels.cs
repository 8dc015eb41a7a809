using ILGPU;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// Row gathers of a variable-length batch (cuDNN's packed layout, Recurrent's <c>PackedBatch</c>): every move between
/// padded rows [T, N, F] and packed rows [Σ b, F], between batch and sorted order of the states, and the previous hidden
/// state of every packed row, is a gather through an index buffer built once per batch on the host. A gather writes every
/// destination row, so no launch has to clear a buffer first. Launched over the destination's rows · columns elements (a
/// flat index: a 2-D launch caps the rows at 65 535).
/// </summary>
/// <remarks>Thread-safety: safe; a kernel is a pure function of its arguments, and the class holds no state. Lifetime: nothing to free; the compiled kernels belong to the <see cref="IlgpuKernels"/> that loaded them.</remarks>
public static class PackingKernels
{
    /// <summary>
    /// destination[r, :] = source[rows[r], :], or zeros where rows[r] &lt; 0 (a padded row past its sequence's end).
    /// Both are dense with <paramref name="columns"/> columns.
    /// </summary>
    public static void GatherRows(Index1D index, ArrayView<float> source, ArrayView<int> rows, ArrayView<float> destination, int columns)
    {
        int r = index / columns, c = index - r * columns;
        int row = rows[r];
        destination[index] = row >= 0 ? source[(long)row * columns + c] : 0;
    }

    /// <summary>
    /// destination [Σ b, H] = h_{t−1} of every packed row: rows[r] ≥ 0 names the layer output's row (at
    /// <paramref name="outputs"/>, the direction's first feature, rows <paramref name="outputStride"/> apart) one step
    /// earlier in the direction's order; rows[r] = −1 − p names row p of the direction's initial state
    /// <paramref name="initial"/> [N, H], where the sequence starts. The operand of dW_hh as one product over all rows.
    /// </summary>
    public static void GatherPreviousHidden(Index1D index, ArrayView<float> outputs, int outputStride, ArrayView<float> initial,
        ArrayView<int> rows, ArrayView<float> destination, int hidden)
    {
        int r = index / hidden, c = index - r * hidden;
        int row = rows[r];
        destination[index] = row >= 0 ? outputs[(long)row * outputStride + c] : initial[(long)(-1 - row) * hidden + c];
    }
}
