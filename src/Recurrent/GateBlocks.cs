namespace Recurrent;

/// <summary>
/// Moves whole gate blocks between Recurrent's gate order (PyTorch's: <see cref="CellDefinition.Gates"/>) and another
/// framework's. The other order is stated once, as a map onto Recurrent's: for each of its gate blocks, the index of
/// Recurrent's block it is (ONNX's map is in <see cref="Onnx.OnnxExport"/>'s notes; oneDNN's in the benchmark's peer).
/// Thread-safety: safe; it holds no state.
/// </summary>
/// <remarks>Lifetime: nothing to free.</remarks>
public static class GateBlocks
{
    /// <summary>
    /// Reorders the gate blocks of a parameter into another order: destination block g is source block
    /// <paramref name="sourceGateOf"/>[g].
    /// </summary>
    /// <param name="source">G blocks of <paramref name="blockLength"/> floats each, in Recurrent's order, such as weight_ih
    /// [G·H, I] (block H·I) or a bias [G·H] (block H).</param>
    /// <param name="blockLength">Floats per gate block.</param>
    /// <param name="sourceGateOf">For each destination gate, the index of the source gate it takes (a permutation of 0 … G−1).</param>
    /// <param name="destination">Receives the G blocks; must not overlap <paramref name="source"/>.</param>
    /// <exception cref="ArgumentException">The lengths are not G blocks of <paramref name="blockLength"/> floats, or the map is not a permutation.</exception>
    public static void Permute(ReadOnlySpan<float> source, int blockLength, ReadOnlySpan<int> sourceGateOf, Span<float> destination)
    {
        Require(source.Length, destination.Length, blockLength, sourceGateOf);
        for (int g = 0; g < sourceGateOf.Length; g++)
            source.Slice(sourceGateOf[g] * blockLength, blockLength).CopyTo(destination.Slice(g * blockLength, blockLength));
    }

    /// <summary>
    /// The inverse of <see cref="Permute"/> with the same map: block g of <paramref name="permuted"/> goes back to block
    /// <paramref name="sourceGateOf"/>[g] of <paramref name="original"/>.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Permute"/>.</exception>
    public static void Unpermute(ReadOnlySpan<float> permuted, int blockLength, ReadOnlySpan<int> sourceGateOf, Span<float> original)
    {
        Require(permuted.Length, original.Length, blockLength, sourceGateOf);
        for (int g = 0; g < sourceGateOf.Length; g++)
            permuted.Slice(g * blockLength, blockLength).CopyTo(original.Slice(sourceGateOf[g] * blockLength, blockLength));
    }

    private static void Require(int source, int destination, int blockLength, ReadOnlySpan<int> sourceGateOf)
    {
        if (blockLength < 0 || source != (long)blockLength * sourceGateOf.Length || destination != source)
            throw new ArgumentException($"expected {sourceGateOf.Length} blocks of {blockLength} floats each side, got {source} and {destination}.");
        // A repeated index would copy one block twice and leave another stale, silently.
        Span<bool> seen = stackalloc bool[sourceGateOf.Length];
        foreach (int g in sourceGateOf)
        {
            if ((uint)g >= (uint)sourceGateOf.Length || seen[g])
                throw new ArgumentException($"sourceGateOf: [{string.Join(", ", sourceGateOf.ToArray())}] is not a permutation of 0 … {sourceGateOf.Length - 1}.", nameof(sourceGateOf));
            seen[g] = true;
        }
    }
}
