namespace Recurrent.Bench.Report;

/// <summary>
/// Robust summary of repeated timings: median, quartiles, IQR/median as the spread, MAD, and Tukey's outlier rule
/// (beyond 1.5 IQR outside the quartiles). Medians and quartiles, not means, because timings on a shared machine have
/// a long right tail (another process takes the core) that a mean follows and a median ignores.
/// </summary>
internal sealed record SampleStatistics(
    int Count, double Median, double Min, double Max, double Q1, double Q3, double Mad, bool[] IsOutlier)
{
    /// <summary>A configuration whose spread exceeds this fraction of its median is marked noisy.</summary>
    public const double NoisyThreshold = 0.10;

    /// <summary>Interquartile range Q3 − Q1.</summary>
    public double Iqr => Q3 - Q1;

    /// <summary>IQR / median: the relative spread the report quotes and the noisy flag uses.</summary>
    public double RelativeSpread => Median > 0 ? Iqr / Median : 0;

    /// <summary>Samples outside [Q1 − 1.5 IQR, Q3 + 1.5 IQR].</summary>
    public int OutlierCount => IsOutlier.Count(o => o);

    /// <summary>Whether the spread is above <see cref="NoisyThreshold"/>: such a time is a lead, not a result.</summary>
    public bool IsNoisy => RelativeSpread > NoisyThreshold;

    /// <summary>Summarises <paramref name="samples"/> (kept in their order; the outlier flags follow it).</summary>
    /// <exception cref="ArgumentException">No samples, or a sample is not finite.</exception>
    public static SampleStatistics Of(IReadOnlyList<double> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0) throw new ArgumentException("samples: expected at least one sample, got none.", nameof(samples));
        if (samples.Any(s => !double.IsFinite(s))) throw new ArgumentException("samples: expected finite values.", nameof(samples));
        var sorted = samples.Order().ToArray();
        double median = Quantile(sorted, 0.5), q1 = Quantile(sorted, 0.25), q3 = Quantile(sorted, 0.75);
        var deviations = sorted.Select(s => Math.Abs(s - median)).Order().ToArray();
        double fence = 1.5 * (q3 - q1);
        var outliers = samples.Select(s => s < q1 - fence || s > q3 + fence).ToArray();
        return new SampleStatistics(samples.Count, median, sorted[0], sorted[^1], q1, q3, Quantile(deviations, 0.5), outliers);
    }

    /// <summary>Linear interpolation between closest ranks (type 7, the default of R and NumPy).</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 1) return sorted[0];
        double position = p * (sorted.Count - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Count - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }
}
