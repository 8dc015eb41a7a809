namespace Recurrent.Bench.Peers;

/// <summary>
/// Another RNN library measured beside Recurrent in the report (oneDNN, ONNX Runtime). A peer is given the
/// same weights and input as Recurrent, and its output is checked against Recurrent's before any time counts.
/// </summary>
public interface IPeer : IDisposable
{
    /// <summary>Name and version for tables, such as "oneDNN 2.6.3".</summary>
    string Name { get; }

    /// <summary>Whether <see cref="Prepare"/> accepts training (forward + backward) runs.</summary>
    bool SupportsTraining { get; }

    /// <summary>
    /// Whether the peer computes <paramref name="cell"/> at all. oneDNN and ONNX Runtime both compute every
    /// <see cref="CellKind"/> (the reset-before GRU as oneDNN's vanilla_gru and ONNX's GRU with linear_before_reset = 0).
    /// </summary>
    bool Supports(CellKind cell);

    /// <summary>
    /// Sets up one configuration: copies <paramref name="parameters"/> (PyTorch layout) and x [T, N, I] into the
    /// peer's own layout, creates its primitives/sessions, allocates everything a run needs.
    /// </summary>
    /// <exception cref="NotSupportedException">The cell, or training, is not supported by this peer.</exception>
    IPeerRun Prepare(RnnParameters parameters, FloatTensor x, bool training);
}

/// <summary>One prepared configuration of a peer; <see cref="Run"/> is what the report times.</summary>
public interface IPeerRun : IDisposable
{
    /// <summary>One iteration: inference forward, or forward + backward (with dy = 1) when prepared for training.</summary>
    void Run();

    /// <summary>y [T, N, D·H] of the last <see cref="Run"/>, in Recurrent's layout, for the agreement check.</summary>
    FloatTensor Output { get; }
}

/// <summary>A peer that could not be loaded on this machine, with the reason and how to get it.</summary>
/// <param name="Name">The peer's name.</param>
/// <param name="Reason">Why it is absent, such as "libdnnl.so.2 not found".</param>
/// <param name="InstallHint">A command that installs it, such as "sudo apt-get install libdnnl-dev".</param>
public sealed record UnavailablePeer(string Name, string Reason, string InstallHint);
