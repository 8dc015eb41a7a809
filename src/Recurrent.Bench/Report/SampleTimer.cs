using System.Diagnostics;

namespace Recurrent.Bench.Report;

/// <summary>Raw samples of one configuration: milliseconds per iteration, one value per sample.</summary>
internal sealed record Samples(double[] MillisecondsPerIteration, int IterationsPerSample, int WarmupIterations);

/// <summary>Time-boxed sampling: warm-up, calibration, then samples until the target count or the time box.</summary>
internal static class SampleTimer
{
    /// <summary>Fewest samples kept even when the time box is spent: a median and quartiles need a few.</summary>
    public const int MinSamples = 3;

    /// <summary>
    /// A sample runs enough iterations to last at least this long: several scheduler time slices, so on a shared machine
    /// one preemption shifts a sample by a fraction instead of multiplying it, and timer overhead vanishes.
    /// </summary>
    private static readonly TimeSpan MinSampleTime = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Warm-up lasts at least this long (unless the time box is shorter): tiered compilation promotes a method only
    /// after 30 calls and a 100 ms quiet period, so a warm-up of a few calls would time tier-0 code.
    /// </summary>
    private static readonly TimeSpan MinWarmupTime = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Times <paramref name="run"/>, which has already run once, taking <paramref name="firstRun"/> (the agreement check:
    /// the first warm-up). A first run shorter than <see cref="MinWarmupTime"/> is followed by more warm-up, for a tenth of
    /// <paramref name="timeBox"/> (at most a second) but at least <see cref="MinWarmupTime"/> (never past half the box), so
    /// tiered JIT and caches settle; a longer one was warm-up enough, and slow configurations save an iteration. Then
    /// samples are taken until <paramref name="targetSamples"/> or the time box, keeping at least <see cref="MinSamples"/>.
    /// </summary>
    public static Samples Measure(Action run, TimeSpan firstRun, TimeSpan timeBox, int targetSamples)
    {
        var total = Stopwatch.StartNew();
        var watch = new Stopwatch();
        double single = firstRun.TotalSeconds;
        int warmups = 1;
        if (firstRun < MinWarmupTime)
        {
            var warmup = TimeSpan.FromTicks(Math.Min(Math.Max(Math.Min(timeBox.Ticks / 10, TimeSpan.TicksPerSecond), MinWarmupTime.Ticks), timeBox.Ticks / 2));
            do
            {
                watch.Restart();
                run();
                single = Math.Min(single, watch.Elapsed.TotalSeconds);
                warmups++;
            }
            while (total.Elapsed < warmup);
        }
        int iterations = (int)Math.Clamp(Math.Ceiling(MinSampleTime.TotalSeconds / Math.Max(single, 1e-9)), 1, 1_000_000);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var samples = new List<double>(targetSamples);
        while (samples.Count < MinSamples || (samples.Count < targetSamples && total.Elapsed < timeBox))
        {
            watch.Restart();
            for (int i = 0; i < iterations; i++) run();
            samples.Add(watch.Elapsed.TotalMilliseconds / iterations);
        }
        return new Samples([.. samples], iterations, warmups);
    }

    /// <summary>
    /// Times <paramref name="first"/> and <paramref name="second"/> in turn, a sample of one then a sample of the other,
    /// so a shared machine's drift in speed falls on both alike: the ratio of a pair holds where the medians of two
    /// separate runs would not. Each is warmed up for <see cref="MinWarmupTime"/> and its samples last at least
    /// <see cref="MinSampleTime"/>; pairs are taken until <paramref name="targetSamples"/> or the time box, at least
    /// <see cref="MinSamples"/>.
    /// </summary>
    public static (Samples First, Samples Second) MeasurePair(Action first, Action second, TimeSpan timeBox, int targetSamples)
    {
        var total = Stopwatch.StartNew();
        int Calibrate(Action run)
        {
            var warmup = Stopwatch.StartNew();
            var watch = new Stopwatch();
            double single = double.MaxValue;
            do
            {
                watch.Restart();
                run();
                single = Math.Min(single, watch.Elapsed.TotalSeconds);
            }
            while (warmup.Elapsed < MinWarmupTime);
            return (int)Math.Clamp(Math.Ceiling(MinSampleTime.TotalSeconds / Math.Max(single, 1e-9)), 1, 1_000_000);
        }
        int firstIterations = Calibrate(first), secondIterations = Calibrate(second);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var (firstSamples, secondSamples) = (new List<double>(targetSamples), new List<double>(targetSamples));
        var sample = new Stopwatch();
        double Time(Action run, int iterations)
        {
            sample.Restart();
            for (int i = 0; i < iterations; i++) run();
            return sample.Elapsed.TotalMilliseconds / iterations;
        }
        while (firstSamples.Count < MinSamples || (firstSamples.Count < targetSamples && total.Elapsed < timeBox))
        {
            firstSamples.Add(Time(first, firstIterations));
            secondSamples.Add(Time(second, secondIterations));
        }
        return (new Samples([.. firstSamples], firstIterations, 0), new Samples([.. secondSamples], secondIterations, 0));
    }
}
