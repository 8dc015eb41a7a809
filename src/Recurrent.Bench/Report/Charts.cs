using ScottPlot;

namespace Recurrent.Bench.Report;

/// <summary>The report's charts, each saved as PNG and SVG. Horizontal bars, so configuration labels stay readable.</summary>
internal static class Charts
{
    private const int Width = 1400;

    /// <summary>Writes every chart the result has data for; returns the file stems written (without extension), and a note per chart skipped.</summary>
    public static (IReadOnlyList<(string Stem, string Title)> Written, IReadOnlyList<string> Skipped) Write(ReportResult result, string directory)
    {
        var written = new List<(string, string)>();
        var skipped = new List<string>();
        var rows = result.Rows();
        var ours = result.Implementations;

        void Save(Plot plot, string stem, string title, int height)
        {
            plot.SavePng(Path.Combine(directory, stem + ".png"), Width, height);
            plot.SaveSvg(Path.Combine(directory, stem + ".svg"), Width, height);
            written.Add((stem, title));
        }

        int Height(int bars) => Math.Clamp(140 + 22 * bars, 320, 4000);

        // Time: log scale, since the standard and small shapes differ by two orders of magnitude.
        var timeSeries = ours.Select(name => (name, rows.Select(r => Median(Find(r, name))).ToArray())).ToList();
        timeSeries.AddRange(result.PeerNames.Select(peer => (peer, rows.Select(r => Median(r.Peers[peer])).ToArray())));
        timeSeries = timeSeries.Where(s => s.Item2.Any(v => v is not null)).ToList();
        if (timeSeries.Count > 0)
        {
            const string title = "Time per configuration (median, ms, log scale; shorter is better)";
            var chart = GroupedBars(rows, timeSeries, title, "milliseconds", logScale: true);
            Save(chart.Plot, "time", title, Height(chart.Slots));
        }

        // GFLOP/s against the machine's measured ceilings.
        var gflopsSeries = ours.Select(name => (name, rows.Select(r => Find(r, name)?.Gflops).ToArray()))
            .Concat(result.PeerNames.Select(peer => (peer, rows.Select(r => r.Peers[peer]?.Gflops).ToArray())))
            .Where(s => s.Item2.Any(v => v is not null)).ToList();
        if (gflopsSeries.Count > 0)
        {
            const string title = "Matrix-product GFLOP/s against this machine's measured ceilings (longer is better)";
            var chart = GroupedBars(rows, gflopsSeries, title, "GFLOP/s", logScale: false);
            AddLimit(chart, result.Ceiling.FmaPeakGflops, $"FMA peak {Rate(result.Ceiling.FmaPeakGflops)}", Colors.Red);
            if (result.Ceiling.GemmGflops is { } gemm) AddLimit(chart, gemm, $"SGEMM {result.Ceiling.GemmShape} {Rate(gemm)}", Colors.DarkOrange);
            Save(chart.Plot, "gflops", title, Height(chart.Slots));
        }

        var speedups = rows.Select(r => r.Speedup).ToArray();
        if (speedups.Any(s => s is not null))
        {
            const string title = "Fusion speedup: unfused time / fused time (above 1, fusion helps)";
            var chart = GroupedBars(rows, [("speedup", speedups)], title, "×", logScale: false);
            AddLimit(chart, 1, "1× (no change)", Colors.Gray);
            Save(chart.Plot, "speedup", title, Height(chart.Slots));
        }
        else skipped.Add(result.Options.Backend.HasUnfusedVariant
            ? "speedup: no configuration has both a fused and an unfused time."
            : $"speedup: the {result.Options.Backend.Name} backend has no unfused variant.");

        var ratios = result.PeerNames.Select(peer => (peer, rows.Select(r => r.PeerRatio(peer)).ToArray())).Where(s => s.Item2.Any(v => v is not null)).ToList();
        if (ratios.Count > 0)
        {
            string title = $"Peers against {ours.FirstOrDefault()}: peer time / our time, log scale (above 1, Recurrent is faster)";
            // Ratios are multiplicative (0.5× and 2× are equally far from even), and they span orders of magnitude.
            var chart = GroupedBars(rows, ratios, title, "×", logScale: true);
            AddLimit(chart, 1, "1× (equal)", Colors.Gray);
            Save(chart.Plot, "peers", title, Height(chart.Slots));
        }
        else skipped.Add(result.PeerNames.Count == 0 ? "peers: no peer ran (see the peers section)." : "peers: no peer has a time beside ours.");

        if (result.Options.Full)
            foreach (var factor in result.Options.Sweep.Select(p => p.Factor).Distinct())
                foreach (var mode in result.Options.Modes)
                {
                    var fixedSizes = result.Options.Sweep.First(p => p.Factor == factor).Shape.ToString().Split(',')
                        .Where(field => !field.StartsWith(factor + "=", StringComparison.Ordinal) && !(factor == "H" && field.StartsWith("I=", StringComparison.Ordinal)));
                    string title = $"GFLOP/s against {factor} ({(mode == RunMode.Inference ? "inference" : "training")}; {string.Join(", ", fixedSizes)}{(factor == "H" ? ", I = H" : "")})";
                    var plot = Curves(result, factor, mode, title);
                    if (plot is null) skipped.Add($"sweep-{factor}-{mode}: nothing measured.");
                    else Save(plot, $"sweep-{factor}-{mode.ToString().ToLowerInvariant()}", title, 600);
                }
        return (written, skipped);
    }

    private static string Rate(double gflops) =>
        gflops.ToString(gflops >= 10 ? "F0" : "G2", System.Globalization.CultureInfo.InvariantCulture) + " GFLOP/s";

    private static Measurement? Find(SummaryRow row, string implementation) =>
        row.Primary?.Implementation == implementation ? row.Primary : row.Unfused?.Implementation == implementation ? row.Unfused : null;

    private static double? Median(Measurement? m) => m?.Statistics?.Median;

    private static (Plot Plot, Func<double, double> ToAxis, int Slots) GroupedBars(IReadOnlyList<SummaryRow> allRows, IReadOnlyList<(string Name, double?[] Values)> allSeries, string title, string unit, bool logScale)
    {
        // Only the configurations that have a bar: a peer chart would otherwise be mostly empty rows.
        var kept = Enumerable.Range(0, allRows.Count).Where(r => allSeries.Any(s => s.Values[r] is not null)).ToArray();
        var rows = kept.Select(r => allRows[r]).ToList();
        var series = allSeries.Select(s => (s.Name, Values: kept.Select(r => s.Values[r]).ToArray())).ToList();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var present = series.SelectMany(s => s.Values).Where(v => v is > 0).Select(v => v!.Value).ToList();
        double baseLog = logScale && present.Count > 0 ? Math.Floor(Math.Log10(present.Min())) : 0;
        int group = series.Count + 1;
        var bars = new List<Bar>();
        var tickPositions = new List<double>();
        var tickLabels = new List<string>();
        for (int r = 0; r < rows.Count; r++)
        {
            // First row at the top.
            double groupStart = (rows.Count - 1 - r) * group;
            for (int s = 0; s < series.Count; s++)
            {
                if (series[s].Values[r] is not { } value) continue;
                double position = groupStart + (series.Count - 1 - s);
                bars.Add(new Bar
                {
                    Position = position,
                    // Log bars are drawn from 0 at 10^baseLog: ScottPlot places value labels by sign, so values stay positive.
                    Value = logScale ? Math.Log10(value) - baseLog : value,
                    FillColor = palette.GetColor(s),
                    Label = logScale ? SummaryTable.Milliseconds(value) : value.ToString(value >= 10 ? "F0" : "F2", System.Globalization.CultureInfo.InvariantCulture),
                    Orientation = Orientation.Horizontal,
                });
            }
            tickPositions.Add(groupStart + (series.Count - 1) / 2.0);
            tickLabels.Add(rows[r].Label);
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontSize = 11;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. tickPositions], [.. tickLabels]);
        plot.Axes.Left.MajorTickStyle.Length = 0;
        if (logScale && present.Count > 0)
        {
            var ticks = new ScottPlot.TickGenerators.NumericManual();
            for (int k = (int)baseLog; k <= (int)Math.Ceiling(Math.Log10(present.Max())) + 1; k++)
                foreach (double step in new[] { 1.0, 2.0, 5.0 })
                    ticks.AddMajor(k + Math.Log10(step) - baseLog, (step * Math.Pow(10, k)).ToString("G6", System.Globalization.CultureInfo.InvariantCulture));
            plot.Axes.Bottom.TickGenerator = ticks;
            plot.Axes.SetLimitsX(0, Math.Log10(present.Max()) - baseLog + 0.4);
        }
        else if (present.Count > 0) plot.Axes.SetLimitsX(0, present.Max() * 1.15);
        plot.Axes.Bottom.Label.Text = unit;
        plot.Title(title);
        foreach (var (s, index) in series.Select((s, i) => (s, i)))
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = s.Name, FillColor = palette.GetColor(index) });
        plot.ShowLegend(Alignment.LowerRight);
        return (plot, logScale ? v => Math.Log10(v) - baseLog : v => v, rows.Count * group);
    }

    private static void AddLimit((Plot Plot, Func<double, double> ToAxis, int Slots) chart, double value, string label, Color color)
    {
        var (plot, toAxis, _) = chart;
        value = toAxis(value);
        var line = plot.Add.VerticalLine(value);
        line.Color = color;
        line.LinePattern = LinePattern.Dashed;
        line.LegendText = label;
        var limits = plot.Axes.GetLimits();
        if (value * 1.05 > limits.Right) plot.Axes.SetLimitsX(limits.Left, value * 1.1);
    }

    private static Plot? Curves(ReportResult result, string factor, RunMode mode, string title)
    {
        var points = result.Options.Sweep.Where(p => p.Factor == factor).ToList();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int index = 0;
        foreach (var series in result.Measurements.Where(m => m.Mode == mode).GroupBy(m => (m.Cell, m.Implementation)))
        {
            var xs = new List<double>();
            var ys = new List<double>();
            foreach (var point in points)
                if (series.FirstOrDefault(m => m.Shape == point.Shape)?.Gflops is { } gflops)
                {
                    xs.Add(Math.Log2(point.Value));
                    ys.Add(gflops);
                }
            if (xs.Count == 0) continue;
            var scatter = plot.Add.Scatter(xs.ToArray(), ys.ToArray(), palette.GetColor(index++));
            scatter.LegendText = $"{CellNames.Of(series.Key.Cell)} {series.Key.Implementation}";
            scatter.MarkerSize = 7;
        }
        if (index == 0) return null;
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var point in points) ticks.AddMajor(Math.Log2(point.Value), point.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Axes.Bottom.Label.Text = factor + " (log scale)";
        plot.Axes.Left.Label.Text = "GFLOP/s";
        var fma = plot.Add.HorizontalLine(result.Ceiling.FmaPeakGflops);
        fma.LinePattern = LinePattern.Dashed;
        fma.Color = Colors.Red;
        fma.LegendText = $"FMA peak {Rate(result.Ceiling.FmaPeakGflops)}";
        plot.Title(title);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }
}
