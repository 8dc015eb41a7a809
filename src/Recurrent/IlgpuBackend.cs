using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Recurrent.Ilgpu;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Kernels.Ilgpu.Cells;

namespace Recurrent;

/// <summary>
/// Runs whole recurrent stacks on an ILGPU accelerator (CUDA, OpenCL, or ILGPU's CPU simulator). Each
/// <see cref="Forward"/> and <see cref="Backward"/> copies its inputs to the device once, keeps every parameter and
/// activation there for all layers, directions and steps, and copies the results back once. Per layer and direction
/// the input product W_ih x is one matrix product over all T steps; each step then runs the recurrent product and the
/// cell's pointwise part, fused (one kernel) or unfused (one kernel per elementwise operation). Matrix products run on
/// cuBLAS on CUDA where it loads, else on a kernel (see <see cref="IlgpuGemm"/>). Device buffers are pooled across calls.
/// </summary>
/// <remarks>
/// Thread-safe: calls from several threads (on one layer or on several sharing this backend) run one at a time, in
/// the order they take the backend's lock. The backend's state (the buffer pool, the unfused steps' temporaries, the
/// transfer clock) is shared by every call, and the device runs one stream in order anyway, so serialising costs
/// nothing the device could have overlapped. Each <see cref="Backward"/> adds into the parameters' host gradients
/// under that lock; tapes may be disposed from any thread.
/// </remarks>
public sealed class IlgpuBackend : IRnnBackend, IDisposable
{
    private readonly IlgpuAccelerator _gpu;
    private readonly CellContext _cells;
    private readonly bool _fused;
    private readonly DeviceBufferPool _pool;
    private readonly Lock _gate = new();

    /// <summary>Opens the accelerator and prepares its kernels (each is compiled on first use, then cached).</summary>
    /// <param name="device">Which accelerator; <see cref="IlgpuDevice.Auto"/> takes CUDA when present, else ILGPU's CPU accelerator.</param>
    /// <param name="fused">One kernel per step's pointwise part (true) or one per elementwise operation (false, the baseline).</param>
    /// <param name="gemm">The matrix product; the default takes cuBLAS on CUDA where it loads (see <see cref="IlgpuGemm"/>).</param>
    /// <exception cref="IlgpuDeviceException">CUDA or OpenCL was asked for and is not usable here.</exception>
    public IlgpuBackend(IlgpuDevice device = IlgpuDevice.Auto, bool fused = true, GemmProvider gemm = GemmProvider.Auto)
    {
        _gpu = IlgpuAccelerator.Create(device, gemm);
        _fused = fused;
        _pool = new DeviceBufferPool(_gpu);
        _cells = new CellContext(_gpu, fused);
    }

    /// <summary><c>ilgpu-cuda</c>, <c>ilgpu-cpu</c> or <c>ilgpu-opencl</c>, with <c>-unfused</c> for the unfused kernels.</summary>
    public string Name => $"ilgpu-{_gpu.ShortName}{(_fused ? "" : "-unfused")}";

    /// <summary>The accelerator this backend runs on.</summary>
    public IlgpuDevice Device => _gpu.Kind;

    /// <summary>The accelerator, for other models that run on the same device (the sequence models).</summary>
    internal IlgpuAccelerator Accelerator => _gpu;

    /// <summary>The accelerator's name as its driver reports it.</summary>
    public string DeviceName => _gpu.Accelerator.Name;

    /// <summary>The matrix product in use, such as <c>cuBLAS V12</c> or <c>tiled 4x4 kernel</c>.</summary>
    public string GemmDescription => _gpu.Gemm.Description;

    /// <summary>Why cuBLAS is not in use on a CUDA accelerator, or null.</summary>
    public string? CuBlasFailure => _gpu.Gemm.CuBlasFailure;

    /// <summary>
    /// Whether to time the host↔device copies of each call into <see cref="TransferTime"/> (for benchmarks that compare
    /// against libraries whose data already lives on the device). Costs one extra device synchronisation per call.
    /// </summary>
    public bool MeasureTransfers { get; set; }

    /// <summary>Time spent copying inputs to and results from the device since <see cref="ResetTransferTime"/>, when <see cref="MeasureTransfers"/>.</summary>
    public TimeSpan TransferTime => TimeSpan.FromSeconds(_transferTicks / (double)Stopwatch.Frequency);

    /// <summary>Sets <see cref="TransferTime"/> to zero.</summary>
    public void ResetTransferTime()
    {
        lock (_gate) _transferTicks = 0;
    }

    private long _transferTicks;

    /// <summary>Runs a copy, adding its time to <see cref="TransferTime"/> when measuring.</summary>
    private void Transfer(Action copy)
    {
        if (!MeasureTransfers)
        {
            copy();
            return;
        }
        long start = Stopwatch.GetTimestamp();
        copy();
        _transferTicks += Stopwatch.GetTimestamp() - start;
    }

    /// <summary>Before timed downloads: let the device finish computing, so the copies' time is only theirs.</summary>
    private void SettleBeforeDownloads(string operation)
    {
        if (MeasureTransfers) _gpu.Synchronize(operation);
    }

    /// <summary>Waits until the device has finished all enqueued work (for timing).</summary>
    public void Synchronize()
    {
        lock (_gate) _gpu.Synchronize("synchronize");
    }

    internal sealed class DirectionSaved : IDisposable
    {
        public PooledBuffer? Gates;   // [T, N, G·H]
        public PooledBuffer? Cells;   // LSTM: [T, N, H], c_t
        public PooledBuffer? Extra;   // where the cell keeps a step value: [T, N, H] (GRU: hn, or r ⊙ h)

        public void Dispose()
        {
            Gates?.Dispose();
            Cells?.Dispose();
            Extra?.Dispose();
        }
    }

    /// <summary>The device buffers a forward pass leaves for its backward pass.</summary>
    internal sealed class Tape(IlgpuBackend owner, int layers, int dirs) : IRnnTape
    {
        public IlgpuBackend Owner { get; } = owner;
        public required int Steps { get; init; }
        public required int Batch { get; init; }
        public required PooledBuffer Weights { get; init; }
        public required long[] Offsets { get; init; }
        public required PooledBuffer H0 { get; init; }
        public PooledBuffer? C0 { get; init; }
        /// <summary>Layer l's input: x for l = 0, the output [T, N, D·H] of layer l − 1 above; the last entry is y.</summary>
        public PooledBuffer[] LayerBuffers { get; } = new PooledBuffer[layers + 1];
        public DirectionSaved[,] Saved { get; } = new DirectionSaved[layers, dirs];

        public void Dispose()
        {
            Weights.Dispose();
            H0.Dispose();
            C0?.Dispose();
            foreach (var b in LayerBuffers) b?.Dispose();
            foreach (var s in Saved) s?.Dispose();
        }
    }

    private static ArrayView<float> At(PooledBuffer buffer, long offset) => buffer.At(offset);

    private PooledBuffer Upload(float[] data, string what)
    {
        var buffer = _pool.Rent(data.Length, what);
        Transfer(() => buffer.Upload(data));
        return buffer;
    }

    private void Download(PooledBuffer buffer, float[] destination) => Transfer(() => buffer.Download(destination));

    private (PooledBuffer Buffer, long[] Offsets) UploadParameters(RnnParameters parameters)
    {
        var all = parameters.All;
        var offsets = new long[all.Count];
        long total = 0;
        for (int i = 0; i < all.Count; i++)
        {
            offsets[i] = total;
            total += all[i].Value.Length;
        }
        var buffer = _pool.Rent(total, "parameters");
        Transfer(() =>
        {
            for (int i = 0; i < all.Count; i++)
                buffer.View.SubView(offsets[i], all[i].Value.Length).CopyFromCPU(all[i].Value.Data);
        });
        return (buffer, offsets);
    }

    private static int Index(RnnConfig config, int layer, int dir, ParameterKind kind) =>
        (layer * config.Directions + dir) * config.Definition.Parameters.Count + (int)kind;

    private string Describe(RnnConfig config, int steps, int batch) =>
        $"{config.Cell} T={steps} N={batch} I={config.InputSize} H={config.HiddenSize} L={config.NumLayers} D={config.Directions}";

    private Exception Wrap(Exception e, string operation, RnnConfig config, int steps, int batch) =>
        e is ArgumentException or IlgpuOperationException ? e
            : new IlgpuOperationException($"{Name}: {operation} of {Describe(config, steps, batch)} failed on {_gpu.Accelerator.Name}: {e.GetBaseException().Message}", e);

    /// <inheritdoc />
    /// <exception cref="ArgumentOutOfRangeException">The gate buffers [T, N, G·H] would have more elements than a kernel indexes (int).</exception>
    public IRnnTape? Forward(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward, int[]? lengths = null)
    {
        if (PackedBatch.Create(lengths, x.Shape[0], x.Shape[1]) is not null)
            throw new NotSupportedException($"{Name}: variable-length batches are not implemented on this backend yet (issue 11, item 5).");
        RequireIndexable(parameters.Config, x.Shape[0], x.Shape[1]);
        lock (_gate) return ForwardLocked(parameters, x, h0, c0, y, hN, cN, keepForBackward);
    }

    /// <summary>The kernels index the per-step gate buffers with int: T·N·G·H must fit.</summary>
    private static void RequireIndexable(RnnConfig config, int steps, int batch) =>
        Sizes.Elements("x", "the ILGPU gate buffers [T, N, G·H]", ("T", steps), ("N", batch), ("G", config.GateCount), ("H", config.HiddenSize));

    private Tape? ForwardLocked(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward)
    {
        var config = parameters.Config;
        int steps = x.Shape[0], batch = x.Shape[1];
        var (weights, offsets) = UploadParameters(parameters);
        var tape = new Tape(this, config.NumLayers, config.Directions)
        {
            Steps = steps, Batch = batch, Weights = weights, Offsets = offsets,
            H0 = Upload(h0.Data, "h0"), C0 = c0 is null ? null : Upload(c0.Data, "c0"),
        };
        try
        {
            tape.LayerBuffers[0] = Upload(x.Data, "x [T, N, I]");
            using var hNBuffer = _pool.Rent(hN.Length, "hN");
            using var cNBuffer = cN is null ? null : _pool.Rent(cN.Length, "cN");
            RunForward(config, tape, hNBuffer, cNBuffer, keepForBackward);
            SettleBeforeDownloads("forward");
            Download(tape.LayerBuffers[config.NumLayers], y.Data);
            Download(hNBuffer, hN.Data);
            if (cN is not null) Download(cNBuffer!, cN.Data);
            _gpu.Synchronize("forward");
            if (keepForBackward) return tape;
            tape.Dispose();
            return null;
        }
        catch (Exception e)
        {
            tape.Dispose();
            throw Wrap(e, "forward", config, steps, batch);
        }
    }

    private void RunForward(RnnConfig config, Tape tape, PooledBuffer hN, PooledBuffer? cN, bool training)
    {
        var cell = DeviceCells.For(config.Cell);
        int steps = tape.Steps, batch = tape.Batch, h = config.HiddenSize, dirs = config.Directions, dh = dirs * h;
        int gh = config.GateCount * h, nh = batch * h, ngh = batch * gh;
        bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue;
        var gemm = _gpu.Gemm;
        using var inputProducts = _pool.Rent((long)steps * ngh, "input products W_ih x [T, N, G·H]");
        using var recurrentProduct = _pool.Rent(ngh, "recurrent product [N, G·H]");
        // Without a tape a step's gates, cell state and kept value are scratch, reused every step.
        using var gateScratch = training ? null : _pool.Rent(ngh, "gates [N, G·H]");
        using var cellScratch = training || !lstm ? null : _pool.Rent(nh, "cell state [N, H]");
        using var extraScratch = training || !keepsValue ? null : _pool.Rent(nh, "kept step value [N, H]");
        var weights = tape.Weights;
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            int inputSize = config.LayerInputSize(layer);
            var input = tape.LayerBuffers[layer];
            var output = tape.LayerBuffers[layer + 1] = _pool.Rent((long)steps * batch * dh, $"layer {layer} output [T, N, D·H]");
            for (int dir = 0; dir < dirs; dir++)
            {
                var saved = new DirectionSaved();
                if (training)
                {
                    tape.Saved[layer, dir] = saved;
                    saved.Gates = _pool.Rent((long)steps * ngh, "saved gates [T, N, G·H]");
                    if (lstm) saved.Cells = _pool.Rent((long)steps * nh, "saved cell states [T, N, H]");
                    if (keepsValue) saved.Extra = _pool.Rent((long)steps * nh, "saved step values [T, N, H]");
                }
                var wih = At(weights, tape.Offsets[Index(config, layer, dir, ParameterKind.WeightIH)]);
                var whh = At(weights, tape.Offsets[Index(config, layer, dir, ParameterKind.WeightHH)]);
                var bih = At(weights, tape.Offsets[Index(config, layer, dir, ParameterKind.BiasIH)]);
                var bhh = At(weights, tape.Offsets[Index(config, layer, dir, ParameterKind.BiasHH)]);
                int state = (layer * dirs + dir) * nh;
                // All T input products at once: [T·N, I] · W_ihᵀ.
                gemm.Sgemm(false, true, steps * batch, gh, inputSize, 1, input.View, inputSize, wih, inputSize, 0, inputProducts.View, gh);
                bool reverse = dir == 1;
                for (int s = 0; s < steps; s++)
                {
                    int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1;
                    var hPrev = s == 0 ? At(tape.H0, state) : At(output, ((long)tPrev * batch) * dh + dir * h);
                    int hPrevStride = s == 0 ? h : dh;
                    ArrayView<float> cPrev = default, cOut = default;
                    if (lstm)
                    {
                        cPrev = s == 0 ? At(tape.C0!, state) : training ? At(saved.Cells!, (long)tPrev * nh) : cellScratch!.View;
                        cOut = training ? At(saved.Cells!, (long)t * nh) : cellScratch!.View;
                    }
                    var step = new ForwardStep
                    {
                        Batch = batch, Hidden = h,
                        InputProduct = At(inputProducts, (long)t * ngh), RecurrentProduct = recurrentProduct.View,
                        WeightHH = whh, BiasIH = bih, BiasHH = bhh,
                        HPrev = hPrev, HPrevStride = hPrevStride,
                        HOut = At(output, ((long)t * batch) * dh + dir * h), HOutStride = dh,
                        CPrev = cPrev, COut = cOut,
                        Gates = training ? At(saved.Gates!, (long)t * ngh) : gateScratch!.View,
                        Extra = keepsValue ? training ? At(saved.Extra!, (long)t * nh) : extraScratch!.View : default,
                    };
                    cell.Forward(_cells, step);
                    if (s == steps - 1)
                    {
                        CopyRows(step.HOut, dh, At(hN, state), h, batch, h);
                        if (lstm) CopyRows(cOut, h, At(cN!, state), h, batch, h);
                    }
                }
                if (!training) saved.Dispose();
            }
        }
    }

    /// <summary>destination rows = source rows, [rows, cols] blocks with their own strides.</summary>
    private void CopyRows(ArrayView<float> source, int sourceStride, ArrayView<float> destination, int destinationStride, int rows, int cols) =>
        _gpu.Kernels.Unary<UnaryOps.Copy>()(new Index2D(cols, rows), source, new Block(0, sourceStride), destination, new Block(0, destinationStride));

    /// <inheritdoc />
    public void Backward(RnnParameters parameters, IRnnTape tape, Tensor dy, Tensor dhN, Tensor? dcN, Tensor dx, Tensor dh0, Tensor? dc0)
    {
        if (tape is not Tape ours || ours.Owner != this)
            throw new ArgumentException($"tape: expected a tape made by this {Name} backend's forward pass.", nameof(tape));
        lock (_gate) BackwardLocked(parameters, ours, dy, dhN, dcN, dx, dh0, dc0);
    }

    private void BackwardLocked(RnnParameters parameters, Tape ours, Tensor dy, Tensor dhN, Tensor? dcN, Tensor dx, Tensor dh0, Tensor? dc0)
    {
        var config = parameters.Config;
        try
        {
            using var dyBuffer = Upload(dy.Data, "dy [T, N, D·H]");
            using var dhNBuffer = Upload(dhN.Data, "dhN");
            using var dcNBuffer = dcN is null ? null : Upload(dcN.Data, "dcN");
            using var grads = _pool.Rent(ours.Weights.Length, "parameter gradients");
            grads.Clear();
            using var dh0Buffer = _pool.Rent(dh0.Length, "dh0");
            using var dc0Buffer = dc0 is null ? null : _pool.Rent(dc0.Length, "dc0");
            var dxBuffer = RunBackward(config, ours, dyBuffer, dhNBuffer, dcNBuffer, grads, dh0Buffer, dc0Buffer);
            SettleBeforeDownloads("backward");
            try
            {
                Download(dxBuffer, dx.Data);
            }
            finally
            {
                dxBuffer.Dispose();
            }
            Download(dh0Buffer, dh0.Data);
            if (dc0 is not null) Download(dc0Buffer!, dc0.Data);
            AddGradientsToHost(parameters, ours, grads);
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, ours.Steps, ours.Batch);
        }
    }

    /// <summary>Downloads the device gradients and adds them into the parameters' host gradients (waits for the device).</summary>
    private void AddGradientsToHost(RnnParameters parameters, Tape tape, PooledBuffer grads)
    {
        var hostGrads = new float[tape.Weights.Length];
        Download(grads, hostGrads);
        _gpu.Synchronize("backward");
        var all = parameters.All;
        for (int i = 0; i < all.Count; i++)
        {
            var destination = all[i].Grad.Data;
            long offset = tape.Offsets[i];
            for (int k = 0; k < destination.Length; k++) destination[k] += hostGrads[offset + k];
        }
    }

    /// <summary>
    /// A forward pass whose input came from, and whose output stays on, the device: for models that run the layers
    /// around the stack on the same accelerator (<see cref="Sequence.RecurrentSequenceModel"/>). Disposing frees it.
    /// </summary>
    internal sealed class DevicePass : IDisposable
    {
        internal DevicePass(Tape tape, PooledBuffer hN, PooledBuffer? cN, int layers) => (Tape, HN, CN, Output) = (tape, hN, cN, tape.LayerBuffers[layers].View);

        internal Tape Tape { get; }
        /// <summary>y [T, N, D·H].</summary>
        public ArrayView<float> Output { get; }
        /// <summary>hN, cN [L·D, N, H]: the next chained pass starts from them.</summary>
        internal PooledBuffer HN { get; }
        internal PooledBuffer? CN { get; }
        /// <summary>After <see cref="BackwardOnDevice"/>: dx [T, N, I], and dh0, dc0 for the previous chained pass.</summary>
        internal PooledBuffer? Dx, Dh0, Dc0;

        public void Dispose()
        {
            Tape.Dispose();
            HN.Dispose();
            CN?.Dispose();
            Dx?.Dispose();
            Dh0?.Dispose();
            Dc0?.Dispose();
        }
    }

    /// <summary>A pooled copy of <paramref name="source"/> (its first <paramref name="length"/> floats), or zeros when it has none.</summary>
    private PooledBuffer DeviceCopy(ArrayView<float> source, long length, string what)
    {
        var buffer = _pool.Rent(length, what);
        if (source.IsValid && length > 0) source.SubView(0, length).CopyTo(buffer.View.SubView(0, length));
        else buffer.Clear();
        return buffer;
    }

    /// <summary>
    /// <see cref="Forward"/> on device data: x [T, N, I] is copied on the device into the tape (the caller may reuse it),
    /// the initial state is <paramref name="previous"/>'s final one (zeros when null), and y stays on the device in
    /// the returned pass. Parameters are uploaded as in <see cref="Forward"/>. Shapes are the caller's to check.
    /// </summary>
    internal DevicePass ForwardOnDevice(RnnParameters parameters, ArrayView<float> x, int steps, int batch, DevicePass? previous, bool keepForBackward)
    {
        RequireIndexable(parameters.Config, steps, batch);
        lock (_gate) return ForwardOnDeviceLocked(parameters, x, steps, batch, previous, keepForBackward);
    }

    private DevicePass ForwardOnDeviceLocked(RnnParameters parameters, ArrayView<float> x, int steps, int batch, DevicePass? previous, bool keepForBackward)
    {
        var config = parameters.Config;
        long state = config.NumLayers * config.Directions * (long)batch * config.HiddenSize;
        bool lstm = config.Cell.HasCellState();
        var (weights, offsets) = UploadParameters(parameters);
        var tape = new Tape(this, config.NumLayers, config.Directions)
        {
            Steps = steps, Batch = batch, Weights = weights, Offsets = offsets,
            H0 = DeviceCopy(previous is null ? default : previous.HN.View, state, "h0"),
            C0 = lstm ? DeviceCopy(previous is null ? default : previous.CN!.View, state, "c0") : null,
        };
        PooledBuffer? hN = null, cN = null;
        try
        {
            tape.LayerBuffers[0] = DeviceCopy(x, (long)steps * batch * config.InputSize, "x [T, N, I]");
            hN = _pool.Rent(state, "hN");
            cN = lstm ? _pool.Rent(state, "cN") : null;
            RunForward(config, tape, hN, cN, keepForBackward);
            return new DevicePass(tape, hN, cN, config.NumLayers);
        }
        catch (Exception e)
        {
            tape.Dispose();
            hN?.Dispose();
            cN?.Dispose();
            throw Wrap(e, "forward", config, steps, batch);
        }
    }

    /// <summary>
    /// <see cref="Backward"/> on device data: from dy [T, N, D·H] and the initial-state gradients <paramref name="next"/>
    /// left (the pass chained after this one; zeros when null), leaves dx, dh0 and dc0 in <paramref name="pass"/> and
    /// returns dx. Parameter gradients are downloaded and added into the host ones, as in <see cref="Backward"/>.
    /// </summary>
    internal ArrayView<float> BackwardOnDevice(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, DevicePass? next)
    {
        lock (_gate) return BackwardOnDeviceLocked(parameters, pass, dy, next);
    }

    private ArrayView<float> BackwardOnDeviceLocked(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, DevicePass? next)
    {
        var config = parameters.Config;
        var tape = pass.Tape;
        long state = config.NumLayers * config.Directions * (long)tape.Batch * config.HiddenSize;
        bool lstm = config.Cell.HasCellState();
        try
        {
            using var dyBuffer = DeviceCopy(dy, (long)tape.Steps * tape.Batch * config.OutputSize, "dy [T, N, D·H]");
            using var dhN = DeviceCopy(next?.Dh0 is null ? default : next.Dh0.View, state, "dhN");
            using var dcN = lstm ? DeviceCopy(next?.Dc0 is null ? default : next.Dc0.View, state, "dcN") : null;
            using var grads = _pool.Rent(tape.Weights.Length, "parameter gradients");
            grads.Clear();
            pass.Dh0 = _pool.Rent(state, "dh0");
            pass.Dc0 = lstm ? _pool.Rent(state, "dc0") : null;
            pass.Dx = RunBackward(config, tape, dyBuffer, dhN, dcN, grads, pass.Dh0, pass.Dc0);
            AddGradientsToHost(parameters, tape, grads);
            return pass.Dx.View;
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, tape.Steps, tape.Batch);
        }
    }

    /// <summary>Back-propagates through every layer and direction on the device; returns dx [T, N, I] (the caller disposes it).</summary>
    private PooledBuffer RunBackward(RnnConfig config, Tape tape, PooledBuffer dy,
        PooledBuffer dhN, PooledBuffer? dcN, PooledBuffer grads,
        PooledBuffer dh0, PooledBuffer? dc0)
    {
        var cell = DeviceCells.For(config.Cell);
        int steps = tape.Steps, batch = tape.Batch, h = config.HiddenSize, dirs = config.Directions, dhStride = dirs * h;
        int gh = config.GateCount * h, nh = batch * h, ngh = batch * gh, rows = steps * batch;
        bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue;
        var gemm = _gpu.Gemm;
        using var dInput = _pool.Rent((long)steps * ngh, "input-sum gradients [T, N, G·H]");
        using var dRecurBuffer = cell.SeparateRecurrentGradient ? _pool.Rent((long)steps * ngh, "recurrent-sum gradients [T, N, G·H]") : null;
        var dRecur = dRecurBuffer ?? dInput;
        using var dh = _pool.Rent(nh, "dh [N, H]");
        using var dc = lstm ? _pool.Rent(nh, "dc [N, H]") : null;
        using var stepScratch = _pool.Rent(nh, "backward step scratch [N, H]");
        using var sumScratch = _pool.Rent(IlgpuKernels.ColumnSumScratchLength(gh), "bias-gradient partial sums");
        var weights = tape.Weights;
        PooledBuffer dOutput = dy;
        PooledBuffer? ownedOutput = null;
        for (int layer = config.NumLayers - 1; layer >= 0; layer--)
        {
            int inputSize = config.LayerInputSize(layer);
            var input = tape.LayerBuffers[layer];
            var output = tape.LayerBuffers[layer + 1];
            var dLayerInput = _pool.Rent((long)rows * inputSize, $"layer {layer} input gradient [T, N, I]");
            for (int dir = 0; dir < dirs; dir++)
            {
                var saved = tape.Saved[layer, dir];
                long wihOffset = tape.Offsets[Index(config, layer, dir, ParameterKind.WeightIH)];
                long whhOffset = tape.Offsets[Index(config, layer, dir, ParameterKind.WeightHH)];
                var wih = At(weights, wihOffset);
                var whh = At(weights, whhOffset);
                int state = (layer * dirs + dir) * nh;
                CopyRows(At(dhN, state), h, dh.View, h, batch, h);
                if (lstm) CopyRows(At(dcN!, state), h, dc!.View, h, batch, h);
                bool reverse = dir == 1;
                for (int s = steps - 1; s >= 0; s--)
                {
                    int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1;
                    var hPrev = s == 0 ? At(tape.H0, state) : At(output, ((long)tPrev * batch) * dhStride + dir * h);
                    int hPrevStride = s == 0 ? h : dhStride;
                    var step = new BackwardStep
                    {
                        Batch = batch, Hidden = h,
                        Dy = At(dOutput, ((long)t * batch) * dhStride + dir * h), DyStride = dhStride,
                        Dh = dh.View, Dc = lstm ? dc!.View : default,
                        WeightHH = whh, Gates = At(saved.Gates!, (long)t * ngh),
                        CNew = lstm ? At(saved.Cells!, (long)t * nh) : default,
                        CPrev = lstm ? s == 0 ? At(tape.C0!, state) : At(saved.Cells!, (long)tPrev * nh) : default,
                        Extra = keepsValue ? At(saved.Extra!, (long)t * nh) : default, Scratch = stepScratch.View,
                        HPrev = hPrev, HPrevStride = hPrevStride,
                        DInput = At(dInput, (long)t * ngh), DRecur = At(dRecur, (long)t * ngh),
                    };
                    cell.Backward(_cells, step);
                }
                CopyRows(dh.View, h, At(dh0, state), h, batch, h);
                if (lstm) CopyRows(dc!.View, h, At(dc0!, state), h, batch, h);

                // Parameter gradients: one product over all T·N rows each.
                gemm.Sgemm(true, false, gh, inputSize, rows, 1, dInput.View, gh, input.View, inputSize, 1, At(grads, wihOffset), inputSize);
                cell.RecurrentWeightGradient(_cells, new RecurrentWeightPass
                {
                    Steps = steps, Batch = batch, Hidden = h, Reverse = reverse,
                    DRecur = dRecur.View, Outputs = At(output, dir * h), OutputStride = dhStride, H0 = At(tape.H0, state),
                    Extra = keepsValue ? saved.Extra!.View : default, DWeightHH = At(grads, whhOffset),
                });
                _gpu.Kernels.ColumnSums(dInput.View, rows, gh, gh, At(grads, tape.Offsets[Index(config, layer, dir, ParameterKind.BiasIH)]), accumulate: true, sumScratch.View);
                _gpu.Kernels.ColumnSums(dRecur.View, rows, gh, gh, At(grads, tape.Offsets[Index(config, layer, dir, ParameterKind.BiasHH)]), accumulate: true, sumScratch.View);
                // The layer input's gradient: both directions' dInput · W_ih, summed.
                gemm.Sgemm(false, false, rows, inputSize, gh, 1, dInput.View, gh, wih, inputSize, dir == 0 ? 0 : 1, dLayerInput.View, inputSize);
            }
            ownedOutput?.Dispose();
            ownedOutput = dLayerInput;
            dOutput = dLayerInput;
        }
        return ownedOutput!;
    }

    /// <summary>Frees the device. Tapes of this backend must not be used afterwards.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _cells.Dispose();
            _pool.Dispose();
            _gpu.Dispose();
        }
    }
}
