using System.Runtime.InteropServices;
using static Recurrent.Bench.Peers.OneDnnApi;

namespace Recurrent.Bench.Peers;

/// <summary>
/// oneDNN (Intel's deep-learning primitives, Debian <c>libdnnl-dev</c> 2.6.3) as a peer: its fused RNN primitives
/// — <c>vanilla_lstm</c>, <c>lbr_gru</c> (reset-after), <c>vanilla_gru</c> (reset-before), <c>vanilla_rnn</c> (tanh,
/// relu) — forward for inference and forward-training + backward for training, one layer, one or two directions.
/// </summary>
/// <remarks>
/// <para>
/// Threads: Debian's build uses OpenMP, so oneDNN runs on <c>OMP_NUM_THREADS</c> threads, by default one per
/// core the process may use (2 on the project's machines); the peer leaves that as it comes, which matches
/// Recurrent's own default of all cores.
/// </para>
/// <para>
/// Layout: oneDNN wants weights as [L, D, I, G, H] with its own gate order and a single summed bias per gate.
/// LSTM gates are i, f, c̃, o — PyTorch's i, f, g, o unchanged. GRU gates are u, r, o, which are PyTorch's z, r, n.
/// <c>vanilla_gru</c> computes o = tanh(W_o x + U_o (r ⊙ h) + b_o), which is <see cref="CellKind.GruResetBefore"/>
/// with b_o = b_in + b_hn; <c>lbr_gru</c> has a fourth bias block for the recurrent part of o
/// (o = tanh(W_o x + b_o + r ⊙ (U_o h + b_u'))), which is <see cref="CellKind.GruResetAfter"/> with b_o = b_in and
/// b_u' = b_hn. The tests check all of this numerically against the reference.
/// </para>
/// <para>
/// The primitives are created with weights in format "any", so oneDNN picks its fastest layout; weights are
/// given in the plain <c>ldgoi</c> layout (PyTorch's rows) and reordered. h0 (and c0) are zero, as the peer
/// interface has none. A training run re-lays-out the weights, runs forward-training and backward with
/// dy = 1 (or a given dy), as a training step must after each weight update.
/// </para>
/// </remarks>
public sealed unsafe class OneDnnPeer : IPeer
{
    /// <summary>How to install the library on Debian or Ubuntu.</summary>
    public const string InstallHint = "sudo apt-get install libdnnl-dev";

    private readonly OneDnnApi _api;
    private nint _engine, _stream;

    private OneDnnPeer(OneDnnApi api)
    {
        _api = api;
        nint engine, stream;
        Check(api.dnnl_engine_create(&engine, EngineCpu, 0), "dnnl_engine_create");
        _engine = engine;
        Check(api.dnnl_stream_create(&stream, engine, StreamDefault), "dnnl_stream_create");
        _stream = stream;
    }

    /// <summary>
    /// Loads oneDNN from <c>libdnnl.so.2</c>. Never throws: when the library is absent or unusable, returns false
    /// with an <see cref="UnavailablePeer"/> that says why and how to install it.
    /// </summary>
    public static bool TryCreate(out OneDnnPeer? peer, out UnavailablePeer? unavailable) =>
        TryCreate(OneDnnApi.Shared, out peer, out unavailable);

    /// <summary>As <see cref="TryCreate(out OneDnnPeer?, out UnavailablePeer?)"/> from a given library file (the tests name a missing one).</summary>
    public static bool TryCreate(string library, out OneDnnPeer? peer, out UnavailablePeer? unavailable) =>
        TryCreate(OneDnnApi.TryLoad(library), out peer, out unavailable);

    private static bool TryCreate((OneDnnApi? Api, string? Reason) loaded, out OneDnnPeer? peer, out UnavailablePeer? unavailable)
    {
        peer = null;
        unavailable = null;
        if (loaded.Api is null)
        {
            unavailable = new UnavailablePeer("oneDNN", loaded.Reason ?? "not loaded", InstallHint);
            return false;
        }
        try
        {
            peer = new OneDnnPeer(loaded.Api);
            return true;
        }
        catch (OneDnnException e)
        {
            unavailable = new UnavailablePeer($"oneDNN {loaded.Api.VersionText}", e.Message, InstallHint);
            return false;
        }
    }

    /// <inheritdoc/>
    public string Name => $"oneDNN {_api.VersionText}";

    /// <summary>The CPU threading runtime of the loaded library, such as "OpenMP".</summary>
    public string ThreadingRuntime => _api.CpuRuntime;

    /// <inheritdoc/>
    public bool SupportsTraining => true;

    /// <inheritdoc/>
    public bool Supports(CellKind cell) =>
        cell is CellKind.Lstm or CellKind.GruResetAfter or CellKind.GruResetBefore or CellKind.RnnTanh or CellKind.RnnRelu;

    /// <inheritdoc/>
    public IPeerRun Prepare(RnnParameters parameters, FloatTensor x, bool training) => Prepare(parameters, x, training, dy: null);

    /// <summary>
    /// As <see cref="Prepare(RnnParameters, FloatTensor, bool)"/>, with the output gradient of training runs given.
    /// </summary>
    /// <param name="parameters">One layer's weights in PyTorch's layout, one or two directions.</param>
    /// <param name="x">Input [T, N, I].</param>
    /// <param name="training">Whether <see cref="OneDnnRun.Run"/> runs forward-training and backward.</param>
    /// <param name="dy">Gradient of y [T, N, D·H] for training runs; all ones when null.</param>
    /// <exception cref="NotSupportedException">More than one layer.</exception>
    /// <exception cref="ArgumentException">x or dy has the wrong shape.</exception>
    public OneDnnRun Prepare(RnnParameters parameters, FloatTensor x, bool training, FloatTensor? dy)
    {
        ObjectDisposedException.ThrowIf(_engine == 0, this);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(x);
        var config = parameters.Config;
        if (config.NumLayers != 1)
            throw new NotSupportedException($"the oneDNN peer runs one layer; the configuration has {config.NumLayers}.");
        if (x.Rank != 3 || x.Shape[2] != config.InputSize)
            throw new ArgumentException($"x: expected shape [T, N, {config.InputSize}], got {FloatTensor.FormatShape(x.Shape)}.", nameof(x));
        if (dy is not null)
            FloatTensor.RequireShape(dy, nameof(dy), x.Shape[0], x.Shape[1], config.OutputSize);
        return new OneDnnRun(_api, _engine, _stream, parameters, x, training, dy);
    }

    /// <summary>Releases the oneDNN engine and stream; runs prepared from this peer must be disposed first.</summary>
    public void Dispose()
    {
        if (_stream != 0) _api.dnnl_stream_destroy(_stream);
        if (_engine != 0) _api.dnnl_engine_destroy(_engine);
        _stream = _engine = 0;
    }
}

/// <summary>
/// One prepared oneDNN configuration: primitives, memories in oneDNN's layouts, and (for training) the
/// workspace and gradients. Besides <see cref="Output"/> it exposes the gradients, so the tests can check them.
/// </summary>
public sealed unsafe class OneDnnRun : IPeerRun
{
    private readonly OneDnnApi _api;
    private readonly nint _engine, _stream;
    private readonly RnnConfig _config;
    private readonly int _steps, _batch;
    private readonly bool _training;
    private readonly List<nint> _buffers = [], _memories = [], _primitives = [], _descriptors = [];
    private readonly List<(nint Primitive, ExecArg[] Args)> _weightReorders = [];
    private readonly nint _forward, _backward;
    private readonly ExecArg[] _forwardArgs, _backwardArgs = [];
    private readonly nint _output, _inputGradient;
    private readonly nint _userWeightsLayer, _userWeightsIter;
    private readonly void* _userWeightsLayerMd, _userWeightsIterMd;
    private readonly Mem _diffWeightsLayer, _diffWeightsIter, _diffBias;
    private readonly bool _linearBeforeReset;

    internal OneDnnRun(OneDnnApi api, nint engine, nint stream, RnnParameters parameters, FloatTensor x, bool training, FloatTensor? dy)
    {
        (_api, _engine, _stream, _config, _training) = (api, engine, stream, parameters.Config, training);
        _steps = x.Shape[0];
        _batch = x.Shape[1];
        var cell = _config.Cell;
        _linearBeforeReset = cell == CellKind.GruResetAfter;
        int directions = _config.Directions, input = _config.InputSize, hidden = _config.HiddenSize, gates = _config.GateCount;
        int biasBlocks = _linearBeforeReset ? gates + 1 : gates;
        try
        {
            void* srcMd = Md(Tnc, _steps, _batch, input);
            void* dstMd = Md(Tnc, _steps, _batch, directions * hidden);
            void* weightsLayerAny = Md(FormatAny, 1, directions, input, gates, hidden);
            void* weightsIterAny = Md(FormatAny, 1, directions, hidden, gates, hidden);
            void* biasMd = Md(Ldgo, 1, directions, biasBlocks, hidden);
            // h0 (and c0) are passed as zeros rather than left out: oneDNN 2.6's LSTM and vanilla RNN backward get
            // dW_hh wrong without src_iter (see oneDNN issue #1436); the tests catch it.
            void* stateMd = Md(Ldnc, 1, directions, _batch, hidden);
            void* cellStateMd = cell.HasCellState() ? stateMd : null;

            void* forwardDesc = Buffer(RnnDescBytes);
            InitForward(forwardDesc, training ? ForwardTraining : ForwardInference, srcMd, stateMd, cellStateMd, weightsLayerAny, weightsIterAny, biasMd, dstMd);
            nint forwardPd = PrimitiveDesc(forwardDesc, hint: 0);
            _forward = Primitive(forwardPd);

            // The user's weights: PyTorch's rows, gate blocks in oneDNN's order, one [G·H, I] matrix a direction.
            _userWeightsLayerMd = Md(Ldgoi, 1, directions, input, gates, hidden);
            _userWeightsIterMd = Md(Ldgoi, 1, directions, hidden, gates, hidden);
            _userWeightsLayer = Memory(_userWeightsLayerMd);
            _userWeightsIter = Memory(_userWeightsIterMd);
            nint bias = Memory(biasMd);
            FillWeights(parameters, Data(_userWeightsLayer), Data(_userWeightsIter), Data(bias), biasBlocks);

            nint src = Memory(srcMd);
            nint state = Memory(stateMd);
            NativeMemory.Clear(Data(state), api.dnnl_memory_desc_get_size(stateMd));
            x.Span.CopyTo(new Span<float>(Data(src), x.Length));
            _output = Memory(QueryMd(forwardPd, ArgDstLayer));
            var weightsLayer = MemoryFor(forwardPd, ArgWeightsLayer);
            var weightsIter = MemoryFor(forwardPd, ArgWeightsIter);
            AddReorder(_userWeightsLayer, _userWeightsLayerMd, weightsLayer);
            AddReorder(_userWeightsIter, _userWeightsIterMd, weightsIter);

            var forwardArgs = new List<ExecArg>
            {
                new() { Arg = ArgSrcLayer, Memory = src },
                new() { Arg = ArgSrcIter, Memory = state },
                new() { Arg = ArgWeightsLayer, Memory = weightsLayer.Memory },
                new() { Arg = ArgWeightsIter, Memory = weightsIter.Memory },
                new() { Arg = ArgBias, Memory = bias },
                new() { Arg = ArgDstLayer, Memory = _output },
            };
            if (cellStateMd != null) forwardArgs.Add(new() { Arg = ArgSrcIterC, Memory = state });
            nint workspace = 0;
            if (training)
            {
                void* workspaceMd = QueryMd(forwardPd, ArgWorkspace);
                if (api.dnnl_memory_desc_get_size(workspaceMd) > 0)
                {
                    workspace = Memory(workspaceMd);
                    forwardArgs.Add(new() { Arg = ArgWorkspace, Memory = workspace });
                }
            }
            _forwardArgs = [.. forwardArgs];

            if (!training)
            {
                // Inference keeps the weights in oneDNN's layout for good, as a deployment would.
                RunWeightReorders();
                return;
            }

            void* diffSrcMd = Md(Tnc, _steps, _batch, input);
            void* diffDstMd = Md(Tnc, _steps, _batch, directions * hidden);
            void* diffWeightsLayerAny = Md(FormatAny, 1, directions, input, gates, hidden);
            void* diffWeightsIterAny = Md(FormatAny, 1, directions, hidden, gates, hidden);
            void* diffBiasMd = Md(Ldgo, 1, directions, biasBlocks, hidden);
            void* backwardDesc = Buffer(RnnDescBytes);
            InitBackward(backwardDesc, srcMd, stateMd, cellStateMd, weightsLayerAny, weightsIterAny, biasMd, dstMd,
                diffSrcMd, diffWeightsLayerAny, diffWeightsIterAny, diffBiasMd, diffDstMd);
            nint backwardPd = PrimitiveDesc(backwardDesc, hint: forwardPd);
            _backward = Primitive(backwardPd);

            // Backward may want the weights in another layout than forward: a second copy, reordered from the user's.
            var backwardWeightsLayer = MemoryFor(backwardPd, ArgWeightsLayer);
            var backwardWeightsIter = MemoryFor(backwardPd, ArgWeightsIter);
            AddReorder(_userWeightsLayer, _userWeightsLayerMd, backwardWeightsLayer);
            AddReorder(_userWeightsIter, _userWeightsIterMd, backwardWeightsIter);
            _diffWeightsLayer = MemoryFor(backwardPd, ArgDiffWeightsLayer);
            _diffWeightsIter = MemoryFor(backwardPd, ArgDiffWeightsIter);
            _diffBias = MemoryFor(backwardPd, ArgDiffBias);
            nint diffDst = Memory(QueryMd(backwardPd, ArgDiffDstLayer));
            var diffDstData = new Span<float>(Data(diffDst), _steps * _batch * directions * hidden);
            if (dy is null) diffDstData.Fill(1f);
            else dy.Span.CopyTo(diffDstData);
            _inputGradient = Memory(QueryMd(backwardPd, ArgDiffSrcLayer));
            nint stateGradient = Memory(stateMd);
            nint cellStateGradient = cellStateMd != null ? Memory(stateMd) : 0;

            var backwardArgs = new List<ExecArg>
            {
                new() { Arg = ArgSrcLayer, Memory = src },
                new() { Arg = ArgWeightsLayer, Memory = backwardWeightsLayer.Memory },
                new() { Arg = ArgWeightsIter, Memory = backwardWeightsIter.Memory },
                new() { Arg = ArgBias, Memory = bias },
                new() { Arg = ArgDstLayer, Memory = _output },
                new() { Arg = ArgDiffDstLayer, Memory = diffDst },
                new() { Arg = ArgDiffSrcLayer, Memory = _inputGradient },
                new() { Arg = ArgSrcIter, Memory = state },
                new() { Arg = ArgDiffSrcIter, Memory = stateGradient },
                new() { Arg = ArgDiffWeightsLayer, Memory = _diffWeightsLayer.Memory },
                new() { Arg = ArgDiffWeightsIter, Memory = _diffWeightsIter.Memory },
                new() { Arg = ArgDiffBias, Memory = _diffBias.Memory },
            };
            if (workspace != 0) backwardArgs.Add(new() { Arg = ArgWorkspace, Memory = workspace });
            if (cellStateMd != null)
            {
                backwardArgs.Add(new() { Arg = ArgSrcIterC, Memory = state });
                backwardArgs.Add(new() { Arg = ArgDiffSrcIterC, Memory = cellStateGradient });
            }
            _backwardArgs = [.. backwardArgs];
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Whether <see cref="Run"/> runs forward-training and backward.</summary>
    public bool Training => _training;

    /// <inheritdoc/>
    public void Run()
    {
        ObjectDisposedException.ThrowIf(_forward == 0, this);
        if (_training) RunWeightReorders();
        Execute(_forward, _forwardArgs, "forward");
        if (_training)
        {
            // Cleared each run so that the gradients are this run's whether or not oneDNN accumulates into them.
            Clear(_diffWeightsLayer);
            Clear(_diffWeightsIter);
            Clear(_diffBias);
            Execute(_backward, _backwardArgs, "backward");
        }
        Check(_api.dnnl_stream_wait(_stream), "dnnl_stream_wait");
    }

    /// <inheritdoc/>
    public FloatTensor Output
    {
        get
        {
            var y = new FloatTensor(_steps, _batch, _config.OutputSize);
            new ReadOnlySpan<float>(Data(_output), y.Length).CopyTo(y.Span);
            return y;
        }
    }

    /// <summary>dx [T, N, I] of the last training <see cref="Run"/>.</summary>
    /// <exception cref="InvalidOperationException">The run was prepared for inference.</exception>
    public FloatTensor InputGradient
    {
        get
        {
            RequireTraining();
            var dx = new FloatTensor(_steps, _batch, _config.InputSize);
            new ReadOnlySpan<float>(Data(_inputGradient), dx.Length).CopyTo(dx.Span);
            return dx;
        }
    }

    /// <summary>
    /// Writes the parameter gradients of the last training <see cref="Run"/> into <paramref name="parameters"/>' Grad
    /// (overwriting), in PyTorch's layout. oneDNN has one bias where PyTorch has two; both get its gradient
    /// (and for the reset-after GRU, b_hn gets the fourth block's).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="parameters"/> is shaped for another configuration.</exception>
    public void CopyParameterGradientsTo(RnnParameters parameters)
    {
        RequireTraining();
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Config != _config)
            throw new ArgumentException($"parameters: expected configuration {_config}, got {parameters.Config}.", nameof(parameters));
        int directions = _config.Directions, input = _config.InputSize, hidden = _config.HiddenSize, gates = _config.GateCount;
        int biasBlocks = _linearBeforeReset ? gates + 1 : gates;
        // Reorder the gradients into the plain ldgoi layout through the user weight memories' descriptors.
        var layer = ReadPlain(_diffWeightsLayer, _userWeightsLayerMd, directions * gates * hidden * input);
        var iter = ReadPlain(_diffWeightsIter, _userWeightsIterMd, directions * gates * hidden * hidden);
        var bias = new ReadOnlySpan<float>(Data(_diffBias.Memory), directions * biasBlocks * hidden);
        var order = GateOrder(_config.Cell);
        for (int d = 0; d < directions; d++)
        {
            int gh = gates * hidden;
            GateBlocks.Unpermute(layer.AsSpan(d * gh * input, gh * input), hidden * input, order, parameters[0, d, ParameterSpec.WeightIH].Grad.Span);
            GateBlocks.Unpermute(iter.AsSpan(d * gh * hidden, gh * hidden), hidden * hidden, order, parameters[0, d, ParameterSpec.WeightHH].Grad.Span);
            var biasD = bias.Slice(d * biasBlocks * hidden, biasBlocks * hidden);
            var biasIH = parameters[0, d, ParameterSpec.BiasIH].Grad.Span;
            var biasHH = parameters[0, d, ParameterSpec.BiasHH].Grad.Span;
            GateBlocks.Unpermute(biasD[..gh], hidden, order, biasIH);
            GateBlocks.Unpermute(biasD[..gh], hidden, order, biasHH);
            if (_linearBeforeReset)
                biasD.Slice(gh, hidden).CopyTo(biasHH.Slice(2 * hidden, hidden)); // b_hn is the fourth block, u'
        }
    }

    /// <summary>Frees every primitive, memory and descriptor of this configuration.</summary>
    public void Dispose()
    {
        foreach (var p in _primitives) _api.dnnl_primitive_destroy(p);
        foreach (var m in _memories) _api.dnnl_memory_destroy(m);
        foreach (var pd in _descriptors) _api.dnnl_primitive_desc_destroy(pd);
        foreach (var b in _buffers) NativeMemory.Free((void*)b);
        _primitives.Clear();
        _memories.Clear();
        _descriptors.Clear();
        _buffers.Clear();
        _weightReorders.Clear();
    }

    /// <summary>For each of oneDNN's gate blocks, the index of PyTorch's gate block it is (see <see cref="CellKind"/>).</summary>
    internal static int[] GateOrder(CellKind cell) => cell switch
    {
        CellKind.Lstm => [0, 1, 2, 3],                                // i, f, c̃, o  =  i, f, g, o
        CellKind.GruResetAfter or CellKind.GruResetBefore => [1, 0, 2], // u, r, o  =  z, r, n
        CellKind.RnnTanh or CellKind.RnnRelu => [0],
        _ => throw new NotSupportedException($"oneDNN has no {cell} cell."),
    };

    private void FillWeights(RnnParameters parameters, float* weightsLayer, float* weightsIter, float* bias, int biasBlocks)
    {
        int input = _config.InputSize, hidden = _config.HiddenSize, gh = _config.GateCount * hidden;
        var order = GateOrder(_config.Cell);
        var summed = new float[gh];
        var permuted = new float[gh];
        for (int d = 0; d < _config.Directions; d++)
        {
            GateBlocks.Permute(parameters[0, d, ParameterSpec.WeightIH].Value.Span, hidden * input, order, new Span<float>(weightsLayer + d * gh * input, gh * input));
            GateBlocks.Permute(parameters[0, d, ParameterSpec.WeightHH].Value.Span, hidden * hidden, order, new Span<float>(weightsIter + d * gh * hidden, gh * hidden));
            var biasIH = parameters[0, d, ParameterSpec.BiasIH].Value.Span;
            var biasHH = parameters[0, d, ParameterSpec.BiasHH].Value.Span;
            for (int i = 0; i < gh; i++)
                summed[i] = biasIH[i] + biasHH[i];
            if (_linearBeforeReset)
                biasIH.Slice(2 * hidden, hidden).CopyTo(summed.AsSpan(2 * hidden, hidden)); // b_o = b_in alone; b_hn stays inside r ⊙ (…)
            GateBlocks.Permute(summed, hidden, order, permuted);
            var destination = new Span<float>(bias + d * biasBlocks * hidden, biasBlocks * hidden);
            permuted.CopyTo(destination);
            if (_linearBeforeReset)
                biasHH.Slice(2 * hidden, hidden).CopyTo(destination.Slice(gh, hidden));
        }
    }

    private void InitForward(void* desc, int prop, void* src, void* state, void* cellState, void* weightsLayer, void* weightsIter, void* bias, void* dst)
    {
        int direction = _config.Bidirectional ? BidirectionalConcat : Unidirectional;
        int status = _config.Cell switch
        {
            CellKind.Lstm => _api.dnnl_lstm_forward_desc_init(desc, prop, direction, src, state, cellState, weightsLayer, weightsIter, bias, dst, null, null, 0),
            CellKind.GruResetAfter => _api.dnnl_lbr_gru_forward_desc_init(desc, prop, direction, src, state, weightsLayer, weightsIter, bias, dst, null, 0),
            CellKind.GruResetBefore => _api.dnnl_gru_forward_desc_init(desc, prop, direction, src, state, weightsLayer, weightsIter, bias, dst, null, 0),
            CellKind.RnnTanh or CellKind.RnnRelu => _api.dnnl_vanilla_rnn_forward_desc_init(desc, prop, Activation(_config.Cell), direction,
                src, state, weightsLayer, weightsIter, bias, dst, null, 0, 0f, 0f),
            var other => throw new NotSupportedException($"oneDNN has no {other} cell."),
        };
        Check(status, $"forward descriptor of {_config.Cell}");
    }

    private void InitBackward(void* desc, void* src, void* state, void* cellState, void* weightsLayer, void* weightsIter, void* bias, void* dst,
        void* diffSrc, void* diffWeightsLayer, void* diffWeightsIter, void* diffBias, void* diffDst)
    {
        int direction = _config.Bidirectional ? BidirectionalConcat : Unidirectional;
        int status = _config.Cell switch
        {
            CellKind.Lstm => _api.dnnl_lstm_backward_desc_init(desc, Backward, direction, src, state, cellState, weightsLayer, weightsIter, bias, dst, null, null,
                diffSrc, state, cellState, diffWeightsLayer, diffWeightsIter, diffBias, diffDst, null, null, 0),
            CellKind.GruResetAfter => _api.dnnl_lbr_gru_backward_desc_init(desc, Backward, direction, src, state, weightsLayer, weightsIter, bias, dst, null,
                diffSrc, state, diffWeightsLayer, diffWeightsIter, diffBias, diffDst, null, 0),
            CellKind.GruResetBefore => _api.dnnl_gru_backward_desc_init(desc, Backward, direction, src, state, weightsLayer, weightsIter, bias, dst, null,
                diffSrc, state, diffWeightsLayer, diffWeightsIter, diffBias, diffDst, null, 0),
            CellKind.RnnTanh or CellKind.RnnRelu => _api.dnnl_vanilla_rnn_backward_desc_init(desc, Backward, Activation(_config.Cell), direction,
                src, state, weightsLayer, weightsIter, bias, dst, null, diffSrc, state, diffWeightsLayer, diffWeightsIter, diffBias, diffDst, null, 0, 0f, 0f),
            var other => throw new NotSupportedException($"oneDNN has no {other} cell."),
        };
        Check(status, $"backward descriptor of {_config.Cell}");
    }

    private static int Activation(CellKind cell) => cell == CellKind.RnnRelu ? EltwiseRelu : EltwiseTanh;

    private void RequireTraining()
    {
        if (!_training) throw new InvalidOperationException("this oneDNN run was prepared for inference; prepare it with training: true for gradients.");
    }

    private void RunWeightReorders()
    {
        foreach (var (primitive, args) in _weightReorders) Execute(primitive, args, "weight reorder");
    }

    private void Execute(nint primitive, ExecArg[] args, string what)
    {
        fixed (ExecArg* a = args)
            Check(_api.dnnl_primitive_execute(primitive, _stream, args.Length, a), $"dnnl_primitive_execute ({what})");
    }

    private void AddReorder(nint from, void* fromMd, Mem to)
    {
        nint pd;
        Check(_api.dnnl_reorder_primitive_desc_create(&pd, fromMd, _engine, (void*)to.Md, _engine, 0), "dnnl_reorder_primitive_desc_create");
        _descriptors.Add(pd);
        _weightReorders.Add((Primitive(pd), [new() { Arg = ArgFrom, Memory = from }, new() { Arg = ArgTo, Memory = to.Memory }]));
    }

    private float[] ReadPlain(Mem source, void* plainMd, int count)
    {
        nint plain = Memory(plainMd);
        nint pd, primitive;
        Check(_api.dnnl_reorder_primitive_desc_create(&pd, (void*)source.Md, _engine, plainMd, _engine, 0), "dnnl_reorder_primitive_desc_create");
        _descriptors.Add(pd);
        Check(_api.dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create");
        try
        {
            Execute(primitive, [new() { Arg = ArgFrom, Memory = source.Memory }, new() { Arg = ArgTo, Memory = plain }], "gradient reorder");
            Check(_api.dnnl_stream_wait(_stream), "dnnl_stream_wait");
            return new ReadOnlySpan<float>(Data(plain), count).ToArray();
        }
        finally
        {
            _api.dnnl_primitive_destroy(primitive);
        }
    }

    private void Clear(Mem memory) =>
        NativeMemory.Clear(Data(memory.Memory), _api.dnnl_memory_desc_get_size((void*)memory.Md));

    private void* Buffer(int bytes)
    {
        void* buffer = NativeMemory.AllocZeroed((nuint)bytes);
        _buffers.Add((nint)buffer);
        return buffer;
    }

    private void* Md(int tag, params long[] dims)
    {
        void* md = Buffer(MemoryDescBytes);
        fixed (long* d = dims)
            Check(_api.dnnl_memory_desc_init_by_tag(md, dims.Length, d, F32, tag), "dnnl_memory_desc_init_by_tag");
        return md;
    }

    private void* QueryMd(nint pd, int arg) => _api.dnnl_primitive_desc_query_md(pd, QueryExecArgMd, arg);

    private Mem MemoryFor(nint pd, int arg)
    {
        void* md = QueryMd(pd, arg);
        return new Mem(Memory(md), (nint)md);
    }

    /// <summary>A oneDNN memory with the descriptor (owned by a primitive descriptor) it was made from.</summary>
    private readonly record struct Mem(nint Memory, nint Md);

    private nint Memory(void* md)
    {
        nint memory;
        Check(_api.dnnl_memory_create(&memory, md, _engine, MemoryAllocate), "dnnl_memory_create");
        _memories.Add(memory);
        return memory;
    }

    private float* Data(nint memory)
    {
        void* handle;
        Check(_api.dnnl_memory_get_data_handle(memory, &handle), "dnnl_memory_get_data_handle");
        return (float*)handle;
    }

    private nint PrimitiveDesc(void* opDesc, nint hint)
    {
        nint pd;
        Check(_api.dnnl_primitive_desc_create(&pd, opDesc, 0, _engine, hint), $"dnnl_primitive_desc_create ({_config.Cell})");
        _descriptors.Add(pd);
        return pd;
    }

    private nint Primitive(nint pd)
    {
        nint primitive;
        Check(_api.dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create");
        _primitives.Add(primitive);
        return primitive;
    }
}
