namespace Recurrent.Bench.Peers;

/// <summary>
/// Placeholder on the report branch so it compiles: the peers branch has the real catalog (oneDNN, ONNX Runtime)
/// with this exact signature, which replaces this file at merge.
/// </summary>
public static class PeerCatalog
{
    /// <summary>The peers that load on this machine, and those that do not with the reason and an install hint.</summary>
    public static (IReadOnlyList<IPeer> Available, IReadOnlyList<UnavailablePeer> Unavailable) Load() => ([], []);
}
