using System.Globalization;
using Spectre.Console;

namespace Recurrent.Bench.Report;

/// <summary>
/// The summary table, built once as plain text cells and rendered both to the console (Spectre) and to Markdown,
/// so the two never disagree.
/// </summary>
internal static class SummaryTable
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static IReadOnlyList<string> Headers(ReportResult result)
    {
        var headers = new List<string> { "cell", "shape", "mode", result.Implementations.FirstOrDefault() ?? "backend" };
        bool unfused = result.Options.Backend.HasUnfusedVariant;
        if (unfused) headers.AddRange([result.Implementations.ElementAtOrDefault(1) ?? "unfused", "fusion speedup"]);
        headers.AddRange(["GFLOP/s", "% FMA peak", "% GEMM"]);
        foreach (var peer in result.PeerNames) headers.AddRange([peer, $"{peer} / ours"]);
        return headers;
    }

    public static IReadOnlyList<IReadOnlyList<string>> Rows(ReportResult result)
    {
        bool unfused = result.Options.Backend.HasUnfusedVariant;
        var rows = new List<IReadOnlyList<string>>();
        foreach (var row in result.Rows())
        {
            var cells = new List<string>
            {
                CellNames.Of(row.Cell), row.Shape.ToString(), row.Mode == RunMode.Inference ? "inference" : "training", Time(row.Primary),
            };
            if (unfused) cells.AddRange([Time(row.Unfused), Times(row.Speedup)]);
            double? gflops = row.Primary?.Gflops;
            cells.Add(gflops is null ? "–" : gflops.Value.ToString("F1", Invariant));
            cells.Add(Percent(gflops, result.Ceiling.FmaPeakGflops));
            cells.Add(Percent(gflops, result.Ceiling.GemmGflops));
            foreach (var peer in result.PeerNames)
            {
                var measurement = row.Peers[peer];
                cells.AddRange([measurement is null ? "not supported" : Time(measurement), Times(row.PeerRatio(peer))]);
            }
            rows.Add(cells);
        }
        return rows;
    }

    /// <summary>"12.3 ms ±4%", with "noisy" when the spread is over 10%, or the error when it failed.</summary>
    public static string Time(Measurement? measurement)
    {
        if (measurement is null) return "–";
        if (measurement.Skipped) return "skipped (time budget spent)";
        if (measurement.Error is not null) return "FAILED: " + measurement.Error;
        return Time(measurement.Statistics!);
    }

    /// <summary>"12.3 ms ±4%", with "noisy" when the spread is over 10%.</summary>
    public static string Time(SampleStatistics s)
    {
        string text = $"{Milliseconds(s.Median)} ms ±{s.RelativeSpread * 100:F0}%";
        return s.IsNoisy ? text + " noisy" : text;
    }

    public static string Milliseconds(double ms) =>
        ms >= 100 ? ms.ToString("F0", Invariant) : ms >= 1 ? ms.ToString("F2", Invariant) : ms.ToString("G3", Invariant);

    public static string Times(double? ratio) => ratio is null ? "–" : ratio.Value.ToString("F2", Invariant) + "×";

    private static string Percent(double? value, double? of) =>
        value is null || of is null or <= 0 ? "–" : (100 * value.Value / of.Value).ToString("F0", Invariant) + "%";

    /// <summary>The table for the console; failures in red, noisy times in yellow.</summary>
    public static Table ToSpectre(ReportResult result) => ToSpectre(Headers(result), Rows(result));

    /// <summary>The table as GitHub Markdown; pipes inside cells are escaped.</summary>
    public static string ToMarkdown(ReportResult result) => ToMarkdown(Headers(result), Rows(result));

    /// <summary>Any table of plain text cells for the console: cells starting "FAILED" in red, cells ending "noisy" in yellow.</summary>
    public static Table ToSpectre(IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var header in headers) table.AddColumn(new TableColumn(Markup.Escape(header)));
        foreach (var row in rows)
            table.AddRow(row.Select(cell => (Spectre.Console.Rendering.IRenderable)new Markup(
                cell.StartsWith("FAILED", StringComparison.Ordinal) ? $"[red]{Markup.Escape(Shorten(cell))}[/]"
                : cell.EndsWith("noisy", StringComparison.Ordinal) ? $"[yellow]{Markup.Escape(cell)}[/]"
                : Markup.Escape(cell))).ToArray());
        return table;
    }

    /// <summary>Any table of plain text cells as GitHub Markdown.</summary>
    public static string ToMarkdown(IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        static string Line(IEnumerable<string> cells) => "| " + string.Join(" | ", cells.Select(c => c.Replace("|", "\\|"))) + " |";
        var lines = new List<string> { Line(headers), Line(headers.Select(_ => "---")) };
        lines.AddRange(rows.Select(Line));
        return string.Join('\n', lines) + '\n';
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";
}
