using Recurrent.Bench.Peers;
using Recurrent.Bench.Report;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>The report: measure, print the summary table, write the report folder.</summary>
internal sealed class ReportCommand(IAnsiConsole console) : Command<ReportSettings>
{
    /// <summary>Loads the peers; tests replace it to run without the real libraries.</summary>
    public static Func<(IReadOnlyList<IPeer> Available, IReadOnlyList<UnavailablePeer> Unavailable)> LoadPeers { get; set; } = PeerCatalog.Load;

    public override int Execute(CommandContext context, ReportSettings settings, CancellationToken cancellationToken)
    {
        var options = settings.Resolved!;
        foreach (var note in options.Notes) console.MarkupLine($"[yellow]{Markup.Escape(note)}[/]");
        IReadOnlyList<IPeer> peers = [];
        IReadOnlyList<UnavailablePeer> unavailable = [];
        if (options.Peers)
        {
            // The peers load native libraries of other projects; whatever goes wrong there must not cost our report.
            try { (peers, unavailable) = LoadPeers(); }
            catch (Exception e) { unavailable = [new UnavailablePeer("peers", $"the peer catalog failed to load: {e.GetType().Name}: {e.Message}", "see src/Recurrent.Bench/Peers")]; }
        }
        try
        {
            var result = new ReportRunner(options, console).Run(peers, unavailable);
            console.Write(SummaryTable.ToSpectre(result));
            if (result.TeacherForcing is { Count: > 0 } teacher)
                console.Write(SummaryTable.ToSpectre(TeacherForcingSection.Headers, TeacherForcingSection.Rows(teacher)));
            var ceiling = result.Ceiling;
            console.MarkupLine(Markup.Escape($"Ceiling: FMA peak {ceiling.FmaPeakGflops:F1} GFLOP/s (the probe got {100 * ceiling.FmaShare:F0}% of the cores); native SGEMM {ceiling.GemmShape}: "
                + (ceiling.GemmGflops is { } g ? $"{g:F1} GFLOP/s" : $"failed ({ceiling.GemmError})")));
            foreach (var peer in unavailable)
                console.MarkupLine(Markup.Escape($"Peer {peer.Name} not present: {peer.Reason}. Install: {peer.InstallHint}"));
            ReportWriter.Write(result, options.OutputDirectory);
            console.MarkupLine(Markup.Escape($"Report written to {Path.GetFullPath(options.OutputDirectory)} (report.md, results.json, charts) in {result.Elapsed.TotalSeconds:F0} s."));
            // A peer that fails is the peer's problem and is reported as such; one of our own backends failing fails the run.
            return result.Measurements.Any(m => m.Failed && m.Role != VariantRole.Peer) || (result.TeacherForcing ?? []).Any(m => m.Error is not null) ? 1 : 0;
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }
}
