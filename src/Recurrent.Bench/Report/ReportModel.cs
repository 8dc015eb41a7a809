using Recurrent.Bench.Peers;

namespace Recurrent.Bench.Report;

/// <summary>One point of a one-factor-at-a-time sweep: the factor varied, its value, and the shape it gives.</summary>
internal sealed record SweepPoint(string Factor, int Value, BenchShape Shape);

/// <summary>Everything a report run was asked to do, resolved and validated.</summary>
internal sealed record ReportOptions(
    BackendFamily Backend, IReadOnlyList<CellKind> Cells, IReadOnlyList<BenchShape> Shapes, IReadOnlyList<RunMode> Modes,
    int TargetSamples, TimeSpan Budget, bool Full, IReadOnlyList<SweepPoint> Sweep, string OutputDirectory, bool Peers,
    IReadOnlyList<string> Notes, bool TeacherForcing = false)
{
    /// <summary>
    /// The shapes of the teacher-forcing section: the report's own (with the quick defaults, the issue's T=100, N=64,
    /// H=512 and T=50, N=16, H=128); the full sweep's extremes (T=1000, N=256) would add minutes for no new insight.
    /// </summary>
    public IReadOnlyList<BenchShape> TeacherForcingShapes => !TeacherForcing ? [] : Full ? BenchShape.Defaults : Shapes;

    /// <summary>
    /// The full sweep, one factor at a time around the standard shape (T=100, N=64, I=H=512): N ∈ {1, 8, 32, 64, 256},
    /// H ∈ {128, 256, 512, 1024} with I = H, T ∈ {1, 10, 100, 1000}. A full grid would be 80 shapes per cell and
    /// mode, hours here; the three curves through the standard point show each factor's effect at a fraction of it.
    /// </summary>
    public static IReadOnlyList<SweepPoint> FullSweep()
    {
        var standard = BenchShape.Standard;
        var points = new List<SweepPoint>();
        points.AddRange(new[] { 1, 8, 32, 64, 256 }.Select(n => new SweepPoint("N", n, standard with { Batch = n })));
        points.AddRange(new[] { 128, 256, 512, 1024 }.Select(h => new SweepPoint("H", h, standard with { InputSize = h, HiddenSize = h })));
        points.AddRange(new[] { 1, 10, 100, 1000 }.Select(t => new SweepPoint("T", t, standard with { Steps = t })));
        return points;
    }
}

/// <summary>One measured (or failed) configuration: an implementation running a cell at a shape in a mode.</summary>
internal sealed record Measurement(
    string Implementation, VariantRole Role, CellKind Cell, BenchShape Shape, RunMode Mode, double Flops,
    Samples? Samples, SampleStatistics? Statistics, double? MaxDeviationFromReference, string? Error, bool Skipped = false)
{
    /// <summary>Whether this configuration failed (it ran and disagreed or threw), as opposed to being skipped.</summary>
    public bool Failed => Error is not null && !Skipped;

    /// <summary>Matrix-product GFLOP/s at the median time.</summary>
    public double? Gflops => Statistics is null ? null : Flops / (Statistics.Median * 1e-3) / 1e9;

    /// <summary>A short label of the configuration for tables and charts.</summary>
    public string ConfigurationLabel => Label(Cell, Shape, Mode);

    public static string Label(CellKind cell, BenchShape shape, RunMode mode) =>
        $"{CellNames.Of(cell)} {shape} {(mode == RunMode.Inference ? "inference" : "training")}";
}

/// <summary>The outcome of a report run, everything the writers need.</summary>
internal sealed record ReportResult(
    ReportOptions Options, MachineInfo Machine, MachineCeiling Ceiling, IReadOnlyList<string> Implementations,
    IReadOnlyList<string> PeerNames, IReadOnlyList<UnavailablePeer> UnavailablePeers, IReadOnlyList<Measurement> Measurements, TimeSpan Elapsed,
    IReadOnlyList<TeacherForcingMeasurement>? TeacherForcing = null)
{
    /// <summary>The rows of the summary: one per cell, shape and mode, in the order measured.</summary>
    public IReadOnlyList<SummaryRow> Rows()
    {
        return Measurements
            .GroupBy(m => (m.Cell, m.Shape, m.Mode))
            .Select(g => new SummaryRow(g.Key.Cell, g.Key.Shape, g.Key.Mode,
                g.FirstOrDefault(m => m.Role is VariantRole.Fused or VariantRole.Only),
                g.FirstOrDefault(m => m.Role == VariantRole.Unfused),
                PeerNames.ToDictionary(p => p, p => g.FirstOrDefault(m => m.Role == VariantRole.Peer && m.Implementation == p))))
            .ToList();
    }
}

/// <summary>One configuration across implementations: the fused (or only) variant, the unfused one, and each peer.</summary>
internal sealed record SummaryRow(
    CellKind Cell, BenchShape Shape, RunMode Mode, Measurement? Primary, Measurement? Unfused, IReadOnlyDictionary<string, Measurement?> Peers)
{
    public string Label => Measurement.Label(Cell, Shape, Mode);

    /// <summary>Unfused median / fused median: how much fusion buys.</summary>
    public double? Speedup => Ratio(Unfused, Primary);

    /// <summary>Peer median / our median: above 1, Recurrent is faster.</summary>
    public double? PeerRatio(string peer) => Ratio(Peers.GetValueOrDefault(peer), Primary);

    private static double? Ratio(Measurement? numerator, Measurement? denominator) =>
        numerator?.Statistics is { } n && denominator?.Statistics is { } d && d.Median > 0 ? n.Median / d.Median : null;
}
