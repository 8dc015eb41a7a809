using Microsoft.ML.OnnxRuntime;
using Recurrent.Onnx;

namespace Recurrent.Bench.Peers;

/// <summary>
/// ONNX Runtime (NuGet Microsoft.ML.OnnxRuntime, CPU execution provider) as an inference-only peer: each
/// configuration is the stack as the library's <see cref="OnnxExport"/> writes it (one <c>LSTM</c>, <c>GRU</c> or
/// <c>RNN</c> node per layer, opset 14), written in memory; h0 (and c0) are zero.
/// </summary>
/// <remarks>
/// Threads: the session runs <see cref="SessionOptions.IntraOpNumThreads"/> = one per core the process may use
/// (2 on the project's machines), sequential execution, all graph optimisations, as Recurrent uses all cores.
/// </remarks>
public sealed class OnnxRuntimePeer : IPeer
{
    /// <summary>How to get the library: it comes with the NuGet restore of Recurrent.Bench.</summary>
    public const string InstallHint = "dotnet restore src/Recurrent.Bench (NuGet Microsoft.ML.OnnxRuntime)";

    private readonly string _version;

    private OnnxRuntimePeer(string version) => _version = version;

    /// <summary>
    /// Loads ONNX Runtime's native library. Never throws: when it cannot load (wrong platform, missing native
    /// file, too old a C++ runtime), returns false with an <see cref="UnavailablePeer"/> that says why.
    /// </summary>
    public static bool TryCreate(out OnnxRuntimePeer? peer, out UnavailablePeer? unavailable)
    {
        peer = null;
        unavailable = null;
        try
        {
            peer = new OnnxRuntimePeer(OrtEnv.Instance().GetVersionString());
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException
                                       or BadImageFormatException or OnnxRuntimeException)
        {
            unavailable = new UnavailablePeer("ONNX Runtime", $"{e.GetType().Name}: {e.Message}", InstallHint);
            return false;
        }
    }

    /// <inheritdoc/>
    public string Name => $"ONNX Runtime {_version}";

    /// <inheritdoc/>
    public bool SupportsTraining => false;

    /// <inheritdoc/>
    public bool Supports(CellKind cell) =>
        cell is CellKind.Lstm or CellKind.GruResetAfter or CellKind.GruResetBefore or CellKind.RnnTanh or CellKind.RnnRelu;

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">x has the wrong shape.</exception>
    public IPeerRun Prepare(RnnParameters parameters, FloatTensor x, bool training)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(x);
        if (training)
            throw new NotSupportedException("ONNX Runtime's inference build has no backward pass; the peer runs inference only.");
        var config = parameters.Config;
        if (!Supports(config.Cell))
            throw new NotSupportedException($"the ONNX Runtime peer has no {config.Cell} cell.");
        if (x.Rank != 3 || x.Shape[2] != config.InputSize)
            throw new ArgumentException($"x: expected shape [T, N, {config.InputSize}], got {FloatTensor.FormatShape(x.Shape)}.", nameof(x));
        return new OnnxRuntimeRun(parameters, x);
    }

    /// <summary>Nothing to release: sessions belong to their runs, the environment to the process.</summary>
    public void Dispose() { }
}

/// <summary>One ONNX Runtime session with its input and a preallocated output, so that a run allocates nothing.</summary>
internal sealed class OnnxRuntimeRun : IPeerRun
{
    private readonly RnnConfig _config;
    private readonly int _steps, _batch;
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;
    private readonly RunOptions _runOptions = new();
    private readonly OrtValue _input, _output;
    private readonly float[] _y;
    private readonly string[] _inputNames = [OnnxNames.Input], _outputNames = [OnnxNames.Output];
    private readonly OrtValue[] _inputs, _outputs;

    public OnnxRuntimeRun(RnnParameters parameters, FloatTensor x)
    {
        _config = parameters.Config;
        (_steps, _batch) = (x.Shape[0], x.Shape[1]);
        _options = new SessionOptions
        {
            IntraOpNumThreads = Environment.ProcessorCount,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        try
        {
            _session = new InferenceSession(OnnxExport.ToBytes(parameters), _options);
            _input = OrtValue.CreateTensorValueFromMemory(x.ToArray(), [_steps, _batch, _config.InputSize]);
            _y = new float[_steps * _batch * _config.OutputSize];
            _output = OrtValue.CreateTensorValueFromMemory(_y, [_steps, _batch, _config.OutputSize]);
            (_inputs, _outputs) = ([_input], [_output]);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Run() => _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);

    /// <summary>y [T, N, D·H]: the exported graph gives Recurrent's layout.</summary>
    public FloatTensor Output => new((float[])_y.Clone(), _steps, _batch, _config.OutputSize);

    public void Dispose()
    {
        _output?.Dispose();
        _input?.Dispose();
        _session?.Dispose();
        _runOptions.Dispose();
        _options.Dispose();
    }
}
