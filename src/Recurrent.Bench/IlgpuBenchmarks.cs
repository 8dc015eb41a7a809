using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Bench;

/// <summary>
/// The ILGPU backend, fused step kernels against the unfused baseline (one kernel per elementwise operation), LSTM and
/// GRU (reset-after and reset-before), inference and training (forward + backward). On a CUDA machine the shapes are
/// the project's standard (T=100, N=64, I=H=512) and small (T=50, N=16, I=H=128); without CUDA, ILGPU's CPU accelerator
/// simulates a GPU far too slowly for them, so only a tiny shape runs (a check that the suite works, not a speed).
/// Backends and data are set up outside the measured region; each call copies its inputs to the device and its results
/// back once, and returns after the device has finished.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class IlgpuBenchmarks
{
    /// <summary>Whether a CUDA device opens here (probed once).</summary>
    internal static readonly Lazy<bool> CudaPresent = new(() =>
    {
        try
        {
            using var probe = IlgpuAccelerator.Create(IlgpuDevice.Cuda);
            return true;
        }
        catch (IlgpuDeviceException)
        {
            return false;
        }
    });

    private IlgpuBackend _fused = null!, _unfused = null!;
    private RnnParameters _parameters = null!;
    private FloatTensor _x = null!, _h0 = null!, _y = null!, _hN = null!, _dy = null!, _dhN = null!, _dx = null!, _dh0 = null!;
    private FloatTensor? _c0, _cN, _dcN, _dc0;

    /// <summary>T×N×H: standard and small on CUDA, tiny elsewhere.</summary>
    public static IEnumerable<string> Shapes() => CudaPresent.Value ? ["T100_N64_H512", "T50_N16_H128"] : ["T5_N2_H8"];

    /// <summary>The shape, as T{steps}_N{batch}_H{size} with I = H.</summary>
    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "T5_N2_H8";

    /// <summary>The cell.</summary>
    [Params(CellKind.Lstm, CellKind.GruResetAfter, CellKind.GruResetBefore)]
    public CellKind Cell { get; set; }

    /// <summary>Opens both backends on the same device and makes the data.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('_').Select(p => int.Parse(p[1..])).ToArray();
        int steps = parts[0], batch = parts[1], size = parts[2];
        var device = CudaPresent.Value ? IlgpuDevice.Cuda : IlgpuDevice.Cpu;
        _fused = new IlgpuBackend(device, fused: true);
        _unfused = new IlgpuBackend(device, fused: false);
        var config = new RnnConfig(Cell, size, size);
        _parameters = new RnnParameters(config);
        _parameters.Reset(1);
        var random = new Random(2);
        float[] Values(int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var state = config.StateShape(batch);
        _x = new FloatTensor(Values(steps * batch * size), steps, batch, size);
        _dy = new FloatTensor(Values(steps * batch * size), steps, batch, size);
        (_y, _dx) = (new FloatTensor(steps, batch, size), new FloatTensor(steps, batch, size));
        (_h0, _hN, _dhN, _dh0) = (new FloatTensor(state), new FloatTensor(state), new FloatTensor(state), new FloatTensor(state));
        if (Cell.HasCellState()) (_c0, _cN, _dcN, _dc0) = (new FloatTensor(state), new FloatTensor(state), new FloatTensor(state), new FloatTensor(state));
        // Kernel compilation and cuBLAS set-up happen on first use: do it here, not in the first measured call.
        Training(_fused);
        Training(_unfused);
    }

    /// <summary>Frees the devices.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _fused.Dispose();
        _unfused.Dispose();
    }

    private void Inference(IlgpuBackend backend) => backend.Forward(_parameters, _x, _h0, _c0, _y, _hN, _cN, keepForBackward: false);

    private void Training(IlgpuBackend backend)
    {
        using var tape = backend.Forward(_parameters, _x, _h0, _c0, _y, _hN, _cN, keepForBackward: true)!;
        backend.Backward(_parameters, tape, _dy, _dhN, _dcN, _dx, _dh0, _dc0);
    }

    /// <summary>Inference, one kernel per elementwise operation.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("forward")]
    public void ForwardUnfused() => Inference(_unfused);

    /// <summary>Inference, one fused kernel per step.</summary>
    [Benchmark, BenchmarkCategory("forward")]
    public void ForwardFused() => Inference(_fused);

    /// <summary>Forward and backward, unfused.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("fwd+bwd")]
    public void TrainingUnfused() => Training(_unfused);

    /// <summary>Forward and backward, fused.</summary>
    [Benchmark, BenchmarkCategory("fwd+bwd")]
    public void TrainingFused() => Training(_fused);
}
