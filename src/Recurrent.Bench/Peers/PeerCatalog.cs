namespace Recurrent.Bench.Peers;

/// <summary>Every peer the report knows, loaded where this machine has it.</summary>
public static class PeerCatalog
{
    /// <summary>
    /// Loads every peer. Never throws for a missing library: a peer that cannot load is listed in
    /// <c>Unavailable</c> with the reason and an install hint. The caller owns (and disposes) the available peers.
    /// </summary>
    public static (IReadOnlyList<IPeer> Available, IReadOnlyList<UnavailablePeer> Unavailable) Load()
    {
        var available = new List<IPeer>();
        var unavailable = new List<UnavailablePeer>();
        if (OneDnnPeer.TryCreate(out var oneDnn, out var oneDnnAbsent)) available.Add(oneDnn!);
        else unavailable.Add(oneDnnAbsent!);
        if (OnnxRuntimePeer.TryCreate(out var onnxRuntime, out var onnxRuntimeAbsent)) available.Add(onnxRuntime!);
        else unavailable.Add(onnxRuntimeAbsent!);
        return (available, unavailable);
    }
}
