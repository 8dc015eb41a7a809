using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Bench.Report;

/// <summary>This machine's measured ceilings, so "% of peak" means this machine and not a datasheet.</summary>
/// <param name="FmaWallGflops">
/// Fused multiply-adds with independent accumulators on every core, per second of wall-clock time: what the cores gave
/// us during the probe, less than <paramref name="FmaPeakGflops"/> when other processes held them.
/// </param>
/// <param name="FmaVectorBits">Vector width of the probe (512, 256 or 128).</param>
/// <param name="FmaThreads">Threads of the probe (one per logical core).</param>
/// <param name="FmaPeakGflops">
/// The arithmetic peak: the probe's FLOPs per CPU-second the process got, times the logical cores. Every probe thread is
/// always runnable, so its CPU time is time it computed; this figure does not drop when a shared machine is busy, and
/// "% FMA peak" then shows how much of the machine a configuration got.
/// </param>
/// <param name="GemmGflops">The native SGEMM at <see cref="GemmShape"/>, best run, wall-clock; null when it failed.</param>
/// <param name="GemmShape">M×N×K of the GEMM probe.</param>
/// <param name="GemmError">Why the GEMM probe failed, or null.</param>
internal sealed record MachineCeiling(double FmaWallGflops, int FmaVectorBits, int FmaThreads, double FmaPeakGflops, double? GemmGflops, string GemmShape, string? GemmError)
{
    /// <summary>The share of the cores the probe got: 1 when nothing else ran.</summary>
    public double FmaShare => FmaPeakGflops > 0 ? Math.Min(1, FmaWallGflops / FmaPeakGflops) : 1;

    /// <summary>Measures both ceilings; about 0.5 s for the FMA probe and up to ~2 s for the GEMM.</summary>
    public static MachineCeiling Measure(TimeSpan fmaTime, TimeSpan gemmTime, int gemmM = 2048, int gemmN = 2048, int gemmK = 512)
    {
        var (fma, bits, threads, perCpuSecond) = FmaProbe(fmaTime);
        double peak = Math.Max(fma, perCpuSecond * threads);
        try
        {
            double gemm = GemmProbe(ref gemmM, gemmN, gemmK, gemmTime);
            return new MachineCeiling(fma, bits, threads, peak, gemm, $"{gemmM}x{gemmN}x{gemmK}", null);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or NativeException)
        {
            return new MachineCeiling(fma, bits, threads, peak, null, $"{gemmM}x{gemmN}x{gemmK}", e.Message);
        }
    }

    /// <summary>
    /// One thread per logical core, each running FMAs on 12 independent accumulators: enough to cover FMA latency
    /// (4 cycles) times issue width (2 per cycle) on current x86 cores, so the loop is throughput-bound.
    /// </summary>
    internal static (double Gflops, int Bits, int Threads, double PerCpuSecond) FmaProbe(TimeSpan duration)
    {
        int threads = Environment.ProcessorCount;
        int bits = Vector512.IsHardwareAccelerated ? 512 : Fma.IsSupported ? 256 : 128;
        var counts = new long[threads];
        var start = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            counts[t] = bits switch
            {
                512 => FmaLoop512(duration),
                256 => FmaLoop256(duration),
                _ => FmaLoop128(duration),
            };
        }) { IsBackground = true }).ToArray();
        foreach (var worker in workers) worker.Start();
        var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        start.SignalAndWait();
        foreach (var worker in workers) worker.Join();
        double seconds = watch.Elapsed.TotalSeconds;
        double cpuSeconds = (System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        // Each count is one FMA instruction: lanes × 2 FLOPs.
        double gflop = counts.Sum() * (bits / 32) * 2.0 / 1e9;
        return (gflop / seconds, bits, threads, gflop / Math.Max(cpuSeconds, 1e-3));
    }

    private const int Accumulators = 12, InnerRepeats = 4096;

    private static long FmaLoop512(TimeSpan duration)
    {
        var acc = Enumerable.Repeat(Vector512.Create(1f), Accumulators).ToArray();
        long fmas = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < duration)
        {
            FmaBurst512(acc);
            fmas += (long)InnerRepeats * Accumulators;
        }
        Sink = acc.Aggregate((x, y) => x + y).ToScalar();
        return fmas;
    }

    // No call inside, so all twelve accumulators stay in registers (a call in the loop makes the JIT keep them on the
    // stack, and the store-load round trip, not the FMA units, would set the pace). Fully optimised from the first
    // call: tier-0 code would time the JIT, not the FPU.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FmaBurst512(Vector512<float>[] acc)
    {
        var b = Vector512.Create(0.999999f);
        var c = Vector512.Create(1e-7f);
        Vector512<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7], a8 = acc[8], a9 = acc[9], a10 = acc[10], a11 = acc[11];
        for (int i = 0; i < InnerRepeats; i++)
        {
                a0 = Vector512.FusedMultiplyAdd(a0, b, c);
                a1 = Vector512.FusedMultiplyAdd(a1, b, c);
                a2 = Vector512.FusedMultiplyAdd(a2, b, c);
                a3 = Vector512.FusedMultiplyAdd(a3, b, c);
                a4 = Vector512.FusedMultiplyAdd(a4, b, c);
                a5 = Vector512.FusedMultiplyAdd(a5, b, c);
                a6 = Vector512.FusedMultiplyAdd(a6, b, c);
                a7 = Vector512.FusedMultiplyAdd(a7, b, c);
                a8 = Vector512.FusedMultiplyAdd(a8, b, c);
                a9 = Vector512.FusedMultiplyAdd(a9, b, c);
                a10 = Vector512.FusedMultiplyAdd(a10, b, c);
                a11 = Vector512.FusedMultiplyAdd(a11, b, c);
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7; acc[8] = a8; acc[9] = a9; acc[10] = a10; acc[11] = a11;
    }

    private static long FmaLoop256(TimeSpan duration)
    {
        var acc = Enumerable.Repeat(Vector256.Create(1f), Accumulators).ToArray();
        long fmas = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < duration)
        {
            FmaBurst256(acc);
            fmas += (long)InnerRepeats * Accumulators;
        }
        Sink = acc.Aggregate((x, y) => x + y).ToScalar();
        return fmas;
    }

    // No call inside, so all twelve accumulators stay in registers (a call in the loop makes the JIT keep them on the
    // stack, and the store-load round trip, not the FMA units, would set the pace). Fully optimised from the first
    // call: tier-0 code would time the JIT, not the FPU.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FmaBurst256(Vector256<float>[] acc)
    {
        var b = Vector256.Create(0.999999f);
        var c = Vector256.Create(1e-7f);
        Vector256<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7], a8 = acc[8], a9 = acc[9], a10 = acc[10], a11 = acc[11];
        for (int i = 0; i < InnerRepeats; i++)
        {
                a0 = Vector256.FusedMultiplyAdd(a0, b, c);
                a1 = Vector256.FusedMultiplyAdd(a1, b, c);
                a2 = Vector256.FusedMultiplyAdd(a2, b, c);
                a3 = Vector256.FusedMultiplyAdd(a3, b, c);
                a4 = Vector256.FusedMultiplyAdd(a4, b, c);
                a5 = Vector256.FusedMultiplyAdd(a5, b, c);
                a6 = Vector256.FusedMultiplyAdd(a6, b, c);
                a7 = Vector256.FusedMultiplyAdd(a7, b, c);
                a8 = Vector256.FusedMultiplyAdd(a8, b, c);
                a9 = Vector256.FusedMultiplyAdd(a9, b, c);
                a10 = Vector256.FusedMultiplyAdd(a10, b, c);
                a11 = Vector256.FusedMultiplyAdd(a11, b, c);
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7; acc[8] = a8; acc[9] = a9; acc[10] = a10; acc[11] = a11;
    }

    private static long FmaLoop128(TimeSpan duration)
    {
        var acc = Enumerable.Repeat(Vector128.Create(1f), Accumulators).ToArray();
        long fmas = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < duration)
        {
            FmaBurst128(acc);
            fmas += (long)InnerRepeats * Accumulators;
        }
        Sink = acc.Aggregate((x, y) => x + y).ToScalar();
        return fmas;
    }

    // No call inside, so all twelve accumulators stay in registers (a call in the loop makes the JIT keep them on the
    // stack, and the store-load round trip, not the FMA units, would set the pace). Fully optimised from the first
    // call: tier-0 code would time the JIT, not the FPU.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FmaBurst128(Vector128<float>[] acc)
    {
        var b = Vector128.Create(0.999999f);
        var c = Vector128.Create(1e-7f);
        Vector128<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7], a8 = acc[8], a9 = acc[9], a10 = acc[10], a11 = acc[11];
        for (int i = 0; i < InnerRepeats; i++)
        {
                a0 = Vector128.FusedMultiplyAdd(a0, b, c);
                a1 = Vector128.FusedMultiplyAdd(a1, b, c);
                a2 = Vector128.FusedMultiplyAdd(a2, b, c);
                a3 = Vector128.FusedMultiplyAdd(a3, b, c);
                a4 = Vector128.FusedMultiplyAdd(a4, b, c);
                a5 = Vector128.FusedMultiplyAdd(a5, b, c);
                a6 = Vector128.FusedMultiplyAdd(a6, b, c);
                a7 = Vector128.FusedMultiplyAdd(a7, b, c);
                a8 = Vector128.FusedMultiplyAdd(a8, b, c);
                a9 = Vector128.FusedMultiplyAdd(a9, b, c);
                a10 = Vector128.FusedMultiplyAdd(a10, b, c);
                a11 = Vector128.FusedMultiplyAdd(a11, b, c);
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7; acc[8] = a8; acc[9] = a9; acc[10] = a10; acc[11] = a11;
    }

    /// <summary>Keeps the accumulators observable so the JIT cannot drop the loops.</summary>
    private static volatile float Sink;

    /// <summary>
    /// Best time of the native SGEMM at m×n×k. A slow GEMM (a portable build) would take far longer than the budget at
    /// the full size, so a probe at m/32 first predicts the full run; when it would not fit, the probe's own rate is the
    /// result and <paramref name="m"/> shrinks to what was run.
    /// </summary>
    private static double GemmProbe(ref int m, int n, int k, TimeSpan budget)
    {
        int small = Math.Max(1, m / 32);
        double smallSeconds = TimeGemm(small, n, k, runs: 1, budget);
        if (smallSeconds * m / small > budget.TotalSeconds / 2)
        {
            m = small;
            return 2.0 * m * n * k / smallSeconds / 1e9;
        }
        return 2.0 * m * n * k / TimeGemm(m, n, k, runs: 5, budget) / 1e9;
    }

    /// <summary>Best of up to <paramref name="runs"/> timed runs after one warm-up run, within the budget.</summary>
    private static double TimeGemm(int m, int n, int k, int runs, TimeSpan budget)
    {
        var random = new Random(3);
        var a = new float[m * k];
        var b = new float[k * n];
        var c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)random.NextDouble();
        for (int i = 0; i < b.Length; i++) b[i] = (float)random.NextDouble();
        var total = Stopwatch.StartNew();
        NativeGemm.Sgemm(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n);
        double best = total.Elapsed.TotalSeconds;
        for (int run = 0; run < runs && total.Elapsed < budget; run++)
        {
            var watch = Stopwatch.StartNew();
            NativeGemm.Sgemm(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n);
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }
}
