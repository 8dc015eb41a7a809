namespace Recurrent.Bench.Peers;

/// <summary>
/// Moves whole gate blocks between Recurrent's (PyTorch's) gate order and a peer's. Recurrent's order is
/// defined once, in <see cref="CellKind"/>; each peer states its own order as a map onto it.
/// </summary>
internal static class GateBlocks
{
    /// <summary>
    /// Reorders the gate blocks of a parameter: destination block g is source block <paramref name="sourceGateOf"/>[g].
    /// </summary>
    /// <param name="source">G blocks of <paramref name="blockLength"/> floats each, such as weight_ih [G·H, I] (block H·I) or a bias [G·H] (block H).</param>
    /// <param name="blockLength">Floats per gate block.</param>
    /// <param name="sourceGateOf">For each destination gate, the index of the source gate it takes.</param>
    /// <param name="destination">Receives G blocks; must not overlap <paramref name="source"/>.</param>
    public static void Permute(ReadOnlySpan<float> source, int blockLength, ReadOnlySpan<int> sourceGateOf, Span<float> destination)
    {
        if (source.Length != blockLength * sourceGateOf.Length || destination.Length != source.Length)
            throw new ArgumentException($"expected {sourceGateOf.Length} blocks of {blockLength} floats, got source {source.Length} and destination {destination.Length}.");
        for (int g = 0; g < sourceGateOf.Length; g++)
            source.Slice(sourceGateOf[g] * blockLength, blockLength).CopyTo(destination.Slice(g * blockLength, blockLength));
    }

    /// <summary>The inverse of <see cref="Permute"/> with the same map: source block g goes back to <paramref name="sourceGateOf"/>[g].</summary>
    public static void Unpermute(ReadOnlySpan<float> permuted, int blockLength, ReadOnlySpan<int> sourceGateOf, Span<float> original)
    {
        if (permuted.Length != blockLength * sourceGateOf.Length || original.Length != permuted.Length)
            throw new ArgumentException($"expected {sourceGateOf.Length} blocks of {blockLength} floats, got {permuted.Length} and {original.Length}.");
        for (int g = 0; g < sourceGateOf.Length; g++)
            permuted.Slice(g * blockLength, blockLength).CopyTo(original.Slice(sourceGateOf[g] * blockLength, blockLength));
    }
}
