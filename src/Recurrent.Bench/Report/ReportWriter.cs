using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Recurrent.Bench.Report;

/// <summary>Writes a report folder: report.md, results.json and the charts, atomically (see <see cref="AtomicDirectory"/>).</summary>
internal static class ReportWriter
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Writes the folder <paramref name="directory"/> as a whole; a failure leaves the previous one intact.</summary>
    public static void Write(ReportResult result, string directory) => AtomicDirectory.Replace(directory, staging =>
    {
        var (charts, skipped) = Charts.Write(result, staging);
        File.WriteAllText(Path.Combine(staging, "results.json"), JsonSerializer.Serialize(ToJson(result), Json));
        File.WriteAllText(Path.Combine(staging, "report.md"), Markdown(result, charts, skipped));
    });

    private static object ToJson(ReportResult result) => new
    {
        schema = "recurrent-report/1",
        machine = result.Machine,
        ceiling = result.Ceiling,
        options = new
        {
            backend = result.Options.Backend.Name,
            cells = result.Options.Cells.Select(CellNames.Of),
            shapes = (result.Options.Full ? result.Options.Sweep.Select(p => p.Shape).Distinct() : result.Options.Shapes).Select(s => s.ToString()),
            modes = result.Options.Modes,
            result.Options.TargetSamples,
            budgetSeconds = result.Options.Budget.TotalSeconds,
            result.Options.Full,
            sweep = result.Options.Full ? result.Options.Sweep.Select(p => new { p.Factor, p.Value, shape = p.Shape.ToString() }) : null,
            result.Options.Peers,
            result.Options.Notes,
        },
        agreement = new { Agreement.Absolute, Agreement.Relative, Agreement.ReferenceSteps, Agreement.ReferenceRows },
        noisyThreshold = SampleStatistics.NoisyThreshold,
        implementations = result.Implementations,
        peers = result.PeerNames,
        unavailablePeers = result.UnavailablePeers,
        elapsedSeconds = result.Elapsed.TotalSeconds,
        measurements = result.Measurements.Select(m => new
        {
            m.Implementation,
            m.Role,
            cell = CellNames.Of(m.Cell),
            shape = new { t = m.Shape.Steps, n = m.Shape.Batch, i = m.Shape.InputSize, h = m.Shape.HiddenSize },
            m.Mode,
            gemmFlops = m.Flops,
            m.Error,
            m.Skipped,
            m.MaxDeviationFromReference,
            medianMs = m.Statistics?.Median,
            q1Ms = m.Statistics?.Q1,
            q3Ms = m.Statistics?.Q3,
            minMs = m.Statistics?.Min,
            maxMs = m.Statistics?.Max,
            madMs = m.Statistics?.Mad,
            relativeSpread = m.Statistics?.RelativeSpread,
            noisy = m.Statistics?.IsNoisy,
            gflops = m.Gflops,
            iterationsPerSample = m.Samples?.IterationsPerSample,
            warmupIterations = m.Samples?.WarmupIterations,
            samplesMs = m.Samples?.MillisecondsPerIteration,
            outliers = m.Statistics?.IsOutlier,
        }),
        teacherForcing = (result.TeacherForcing ?? []).Select(m => new
        {
            m.Model,
            shape = new { t = m.Shape.Steps, n = m.Shape.Batch, i = m.Shape.InputSize, h = m.Shape.HiddenSize },
            outputSize = TeacherForcingShapes.OutputSize,
            m.Error,
            m.MaxDeviation,
            ratio = m.Ratio,
            stepByStep = Timing(m.StepByStep, m.StepByStepSamples),
            parallel = Timing(m.Parallel, m.ParallelSamples),
        }),
    };

    private static object? Timing(SampleStatistics? statistics, Samples? samples) => statistics is null ? null : new
    {
        medianMs = statistics.Median,
        q1Ms = statistics.Q1,
        q3Ms = statistics.Q3,
        relativeSpread = statistics.RelativeSpread,
        noisy = statistics.IsNoisy,
        iterationsPerSample = samples?.IterationsPerSample,
        samplesMs = samples?.MillisecondsPerIteration,
    };

    private static string Markdown(ReportResult result, IReadOnlyList<(string Stem, string Title)> charts, IReadOnlyList<string> chartsNotDrawn)
    {
        var inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        var machine = result.Machine;
        var ceiling = result.Ceiling;
        md.AppendLine("# Recurrent benchmark report").AppendLine();
        md.AppendLine(inv, $"Measured {machine.StartedUtc:yyyy-MM-dd HH:mm} UTC in {result.Elapsed.TotalSeconds:F0} s, backend **{result.Options.Backend.Name}** ({result.Options.Backend.Description}).");
        md.AppendLine();
        foreach (var note in result.Options.Notes) md.AppendLine(inv, $"> {note}").AppendLine();

        md.AppendLine("## Machine").AppendLine();
        md.AppendLine(inv, $"- CPU: {machine.CpuModel}, {machine.LogicalCores} logical cores; native CPU features: {machine.CpuFeatures}; Vector512 accelerated: {machine.Vector512Accelerated}");
        md.AppendLine(inv, $"- OS: {machine.Os} ({machine.Architecture}); {machine.DotNet}");
        md.AppendLine(inv, $"- Libraries: {string.Join("; ", machine.Libraries.Select(l => $"{l.Key} {l.Value}"))}");
        if (machine.Environment.Count > 0)
            md.AppendLine(inv, $"- Environment: {string.Join(", ", machine.Environment.Select(e => $"{e.Key}={e.Value}"))}");
        md.Append(inv, $"- Measured ceiling: FMA peak {ceiling.FmaPeakGflops:F1} GFLOP/s ({ceiling.FmaVectorBits}-bit vectors, {ceiling.FmaThreads} threads, 12 independent accumulators each, per CPU-second the probe got × cores; it got {ceiling.FmaWallGflops:F1} GFLOP/s of wall-clock time, so the cores were {100 * ceiling.FmaShare:F0}% ours{(ceiling.FmaShare < 0.8 ? ": the machine was busy, every time below is contended too" : "")}); ");
        md.AppendLine(ceiling.GemmGflops is { } g ? string.Create(inv, $"native SGEMM {ceiling.GemmShape}: {g:F1} GFLOP/s (wall-clock, as contended as the run)") : $"native SGEMM failed: {ceiling.GemmError}");
        md.AppendLine();

        md.AppendLine("## Summary").AppendLine();
        md.Append(SummaryTable.ToMarkdown(result)).AppendLine();
        md.AppendLine("Times are medians per iteration, ± the interquartile range over the median; \"noisy\" marks a spread above "
            + $"{SampleStatistics.NoisyThreshold * 100:F0}% (treat it as a lead, not a result). GFLOP/s counts only the matrix products: forward "
            + "2·T·N·G·H·(I+H) with G = 4 (LSTM), 3 (GRU), 1 (RNN); a training step (forward keeping the tape, then backward with dy = 1) counts 3× "
            + "forward. \"% FMA peak\" and \"% GEMM\" divide by the ceilings measured above on this machine in this run. Fusion speedup = unfused / fused; "
            + "peer / ours above 1 means Recurrent is faster.");
        md.AppendLine();
        md.AppendLine(inv, $"Before any time counts, every implementation's output y must agree with the double-precision reference on the first {Agreement.ReferenceSteps} steps of the first {Agreement.ReferenceRows} batch rows and with the first implementation measured on all steps, within |a − e| ≤ {Agreement.Absolute:G2} + {Agreement.Relative:G2}·|e|; a failure is listed with its error instead of a time.");
        md.AppendLine();

        if (result.TeacherForcing is { Count: > 0 } teacher)
        {
            md.AppendLine("## Teacher-forced training: parallel over time vs step by step").AppendLine();
            md.Append(SummaryTable.ToMarkdown(TeacherForcingSection.Headers, TeacherForcingSection.Rows(teacher))).AppendLine();
            md.AppendLine(TeacherForcingSection.Explanation).AppendLine();
        }

        md.AppendLine("## Peers").AppendLine();
        if (!result.Options.Peers) md.AppendLine("Peers were not run (--no-peers).");
        foreach (var peer in result.PeerNames) md.AppendLine(inv, $"- {peer}: measured.");
        foreach (var peer in result.UnavailablePeers)
            md.AppendLine(inv, $"- {peer.Name}: not present ({peer.Reason}). Install: `{peer.InstallHint}`");
        if (result.Options.Peers && result.PeerNames.Count == 0 && result.UnavailablePeers.Count == 0) md.AppendLine("No peer is known to this build.");
        md.AppendLine();

        var failures = result.Measurements.Where(m => m.Failed).ToList();
        if (failures.Count > 0)
        {
            md.AppendLine("## Failures").AppendLine();
            foreach (var f in failures) md.AppendLine(inv, $"- {f.Implementation}, {f.ConfigurationLabel}: {f.Error}");
            md.AppendLine();
        }
        var notMeasured = result.Measurements.Where(m => m.Skipped).ToList();
        if (notMeasured.Count > 0)
        {
            md.AppendLine("## Skipped").AppendLine();
            md.AppendLine(inv, $"{notMeasured.Count} configurations were not measured: {notMeasured[0].Error}.").AppendLine();
            foreach (var m in notMeasured) md.AppendLine(inv, $"- {m.Implementation}, {m.ConfigurationLabel}");
            md.AppendLine();
        }

        md.AppendLine("## Charts").AppendLine();
        foreach (var (stem, title) in charts) md.AppendLine(inv, $"### {title}").AppendLine().AppendLine(inv, $"![{title}]({stem}.svg)").AppendLine().AppendLine(inv, $"PNG: [{stem}.png]({stem}.png)").AppendLine();
        foreach (var note in chartsNotDrawn) md.AppendLine(inv, $"- Not drawn: {note}");
        md.AppendLine();

        md.AppendLine("## Statistics of every configuration").AppendLine();
        md.AppendLine("| implementation | configuration | median ms | Q1 | Q3 | MAD | spread | samples × iterations | outliers | max abs dev. from reference |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var m in result.Measurements)
        {
            var s = m.Statistics;
            string dev = m.MaxDeviationFromReference is { } d ? d.ToString("G2", inv) : "–";
            md.AppendLine(s is null
                ? $"| {m.Implementation} | {m.ConfigurationLabel} | failed | | | | | | | {dev} |"
                : string.Create(inv, $"| {m.Implementation} | {m.ConfigurationLabel} | {s.Median:G4} | {s.Q1:G4} | {s.Q3:G4} | {s.Mad:G3} | {s.RelativeSpread * 100:F1}%{(s.IsNoisy ? " noisy" : "")} | {s.Count} × {m.Samples!.IterationsPerSample} | {s.OutlierCount} | {dev} |"));
        }
        md.AppendLine();
        md.AppendLine("Every raw sample is in results.json. Outliers are samples beyond 1.5 IQR outside the quartiles; they stay in the median (which they barely move) and are flagged in results.json.");
        return md.ToString();
    }
}
