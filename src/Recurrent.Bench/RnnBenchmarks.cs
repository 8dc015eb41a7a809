using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Recurrent.Bench;

/// <summary>
/// The native CPU backend on LSTM and both GRUs: inference, training forward (keeping the tape) and forward +
/// backward, fused pointwise kernels against the unfused baseline (one pass per elementwise operation), at the
/// standard shape T=100, N=64, I=H=512 and the small shape T=50, N=16, I=H=128. Calls the backend directly with
/// outputs allocated in setup, so the measured region holds the layer's compute and its per-call workspaces only.
/// </summary>
[Config(typeof(RnnBenchmarkConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RnnBenchmarks
{
    /// <summary>The cell.</summary>
    [Params(CellKind.Lstm, CellKind.GruResetAfter, CellKind.GruResetBefore)]
    public CellKind Cell { get; set; }

    /// <summary>T_N_I_H: the standard and the small shape.</summary>
    [Params("T100_N64_I512_H512", "T50_N16_I128_H128")]
    public string Shape { get; set; } = "";

    private static readonly NativeCpuBackend Fused = new(fused: true), Unfused = new(fused: false);
    private RnnParameters _parameters = null!;
    private FloatTensor _x = null!, _h0 = null!, _y = null!, _hN = null!, _dy = null!, _dhN = null!, _dx = null!, _dh0 = null!;
    private FloatTensor? _c0, _cN, _dcN, _dc0;

    /// <summary>Parses <see cref="Shape"/>.</summary>
    public static (int Steps, int Batch, int Input, int Hidden) ParseShape(string shape)
    {
        var parts = shape.Split('_').Select(p => int.Parse(p[1..])).ToArray();
        return (parts[0], parts[1], parts[2], parts[3]);
    }

    /// <summary>Allocates parameters, inputs, outputs and gradients once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var (steps, batch, input, hidden) = ParseShape(Shape);
        var config = new RnnConfig(Cell, input, hidden);
        _parameters = new RnnParameters(config);
        _parameters.Reset(1);
        var random = new Random(2);
        FloatTensor Random(params int[] shape)
        {
            var t = new FloatTensor(shape);
            for (int i = 0; i < t.Length; i++) t.Span[i] = (float)(random.NextDouble() * 2 - 1);
            return t;
        }
        int[] state = config.StateShape(batch);
        bool hasCell = Cell.HasCellState();
        _x = Random(steps, batch, input);
        _h0 = Random(state);
        _c0 = hasCell ? Random(state) : null;
        _y = new FloatTensor(steps, batch, hidden);
        _hN = new FloatTensor(state);
        _cN = hasCell ? new FloatTensor(state) : null;
        _dy = Random(steps, batch, hidden);
        _dhN = Random(state);
        _dcN = hasCell ? Random(state) : null;
        _dx = new FloatTensor(steps, batch, input);
        _dh0 = new FloatTensor(state);
        _dc0 = hasCell ? new FloatTensor(state) : null;
    }

    private void Inference(NativeCpuBackend backend) =>
        backend.Forward(_parameters, _x, _h0, _c0, _y, _hN, _cN, keepForBackward: false);

    private void TrainingForward(NativeCpuBackend backend)
    {
        using var tape = backend.Forward(_parameters, _x, _h0, _c0, _y, _hN, _cN, keepForBackward: true)!;
    }

    private void ForwardBackward(NativeCpuBackend backend)
    {
        using var tape = backend.Forward(_parameters, _x, _h0, _c0, _y, _hN, _cN, keepForBackward: true)!;
        backend.Backward(_parameters, tape, _dy, _dhN, _dcN, _dx, _dh0, _dc0);
    }

    /// <summary>Inference, unfused pointwise work.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory(RnnBenchmarkConfig.Inference)]
    public void InferenceUnfused() => Inference(Unfused);

    /// <summary>Inference, fused kernels.</summary>
    [Benchmark, BenchmarkCategory(RnnBenchmarkConfig.Inference)]
    public void InferenceFused() => Inference(Fused);

    /// <summary>Training forward (keeps the tape, then frees it), unfused.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory(RnnBenchmarkConfig.TrainingForward)]
    public void TrainingForwardUnfused() => TrainingForward(Unfused);

    /// <summary>Training forward, fused.</summary>
    [Benchmark, BenchmarkCategory(RnnBenchmarkConfig.TrainingForward)]
    public void TrainingForwardFused() => TrainingForward(Fused);

    /// <summary>Forward and backward through time, unfused.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory(RnnBenchmarkConfig.ForwardBackward)]
    public void ForwardBackwardUnfused() => ForwardBackward(Unfused);

    /// <summary>Forward and backward through time, fused.</summary>
    [Benchmark, BenchmarkCategory(RnnBenchmarkConfig.ForwardBackward)]
    public void ForwardBackwardFused() => ForwardBackward(Fused);
}

/// <summary>Adds the GFLOP/s of the matrix products and their fraction of the machine's FMA peak.</summary>
public sealed class RnnBenchmarkConfig : ManualConfig
{
    internal const string Inference = "inference", TrainingForward = "training-forward", ForwardBackward = "forward-backward";

    /// <summary>Creates the configuration.</summary>
    public RnnBenchmarkConfig()
    {
        // The native library runs on every core by default; the peak is measured on this machine, not assumed.
        static double? CaseFlops(BenchmarkCase c) =>
            Flops((CellKind)c.Parameters["Cell"], (string)c.Parameters["Shape"], c.Descriptor.Categories.FirstOrDefault() ?? Inference);
        const string legend = "Matrix-product GFLOP/s (forward 2·T·N·G·H·(I+H), forward+backward 3×)";
        AddColumn(new FlopRateColumn("Rnn", legend, CaseFlops, _ => Environment.ProcessorCount, fractionOfPeak: false),
                  new FlopRateColumn("Rnn", legend, CaseFlops, _ => Environment.ProcessorCount, fractionOfPeak: true));
    }

    /// <summary>
    /// Matrix-product FLOPs of one call: forward 2·T·N·G·H·(I+H), backward about twice that (dx, dh and the
    /// weight gradients), as oneDNN and the peers' table count them.
    /// </summary>
    public static double Flops(CellKind cell, string shape, string category)
    {
        var (steps, batch, input, hidden) = RnnBenchmarks.ParseShape(shape);
        double forward = 2.0 * steps * batch * cell.GateCount() * hidden * (input + hidden);
        return category == ForwardBackward ? 3 * forward : forward;
    }
}
