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
/// A variable-length batch runs in cuDNN's packed layout (<see cref="PackedBatch"/>): packed once on the way in, every
/// layer on the Σ b real rows (step t's products and pointwise part on its b_t rows), unpacked once on the way out.
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

    /// <summary>
    /// The device buffers a forward pass leaves for its backward pass. Its rows are those of <see cref="Packing"/> when the
    /// batch has lengths (Σ b packed rows; h0, c0 in sorted order), else the dense T·N.
    /// </summary>
    internal sealed class Tape(IlgpuBackend owner, int layers, int dirs) : IRnnTape
    {
        public IlgpuBackend Owner { get; } = owner;
        public required int Steps { get; init; }
        public required int Batch { get; init; }
        public required PooledBuffer Weights { get; init; }
        public required long[] Offsets { get; init; }
        public required PooledBuffer H0 { get; init; }
        public PooledBuffer? C0 { get; init; }
        /// <summary>The packed layout of a variable-length batch, or null for a dense one.</summary>
        public DevicePacking? Packing { get; init; }
        /// <summary>Layer l's input: x for l = 0, the output [rows, D·H] of layer l − 1 above; the last entry is y.</summary>
        public PooledBuffer[] LayerBuffers { get; } = new PooledBuffer[layers + 1];
        public DirectionSaved[,] Saved { get; } = new DirectionSaved[layers, dirs];

        /// <summary>The rows of every step together: T·N, or Σ b packed.</summary>
        public int Rows => Packing?.Batch.Rows ?? Steps * Batch;

        /// <summary>b_t, the rows of step t (N when dense); 0 for a step outside [0, T), so a direction's ends need no case of their own.</summary>
        public int Running(int t) => t < 0 || t >= Steps ? 0 : Packing?.Batch.BatchSizes[t] ?? Batch;

        /// <summary>The first row of step t.</summary>
        public long FirstRow(int t) => Packing?.Batch.Offsets[t] ?? (long)t * Batch;

        public void Dispose()
        {
            Weights.Dispose();
            H0.Dispose();
            C0?.Dispose();
            Packing?.Dispose();
            foreach (var b in LayerBuffers) b?.Dispose();
            foreach (var s in Saved) s?.Dispose();
        }
    }

    private static ArrayView<float> At(PooledBuffer buffer, long offset) => buffer.At(offset);

    private PooledBuffer Upload(ReadOnlyMemory<float> data, string what)
    {
        var buffer = _pool.Rent(data.Length, what);
        Transfer(() => buffer.Upload(data));
        return buffer;
    }

    private void Download(PooledBuffer buffer, Memory<float> destination) => Transfer(() => buffer.Download(destination));

    /// <summary>Every parameter value in one copy of the flat storage; the offsets are the parameters' own.</summary>
    private (PooledBuffer Buffer, long[] Offsets) UploadParameters(RnnParameters parameters)
    {
        var all = parameters.All;
        var offsets = new long[all.Count];
        for (int i = 0; i < all.Count; i++) offsets[i] = all[i].Offset;
        return (Upload(parameters.Values.Memory, "parameters"), offsets);
    }

    private static int Index(RnnConfig config, int layer, int dir, ParameterSpec spec) =>
        (layer * config.Directions + dir) * config.Definition.Parameters.Count + config.Definition.IndexOf(spec);

    private string Describe(RnnConfig config, int steps, int batch) =>
        $"{config.Cell} T={steps} N={batch} I={config.InputSize} H={config.HiddenSize} L={config.NumLayers} D={config.Directions}";

    private Exception Wrap(Exception e, string operation, RnnConfig config, int steps, int batch) =>
        e is ArgumentException or IlgpuOperationException ? e
            : new IlgpuOperationException($"{Name}: {operation} of {Describe(config, steps, batch)} failed on {_gpu.Accelerator.Name}: {e.GetBaseException().Message}", e);

    /// <inheritdoc />
    /// <remarks>
    /// With <paramref name="lengths"/>, x is packed and h0, c0 sorted on the host before their one upload, and y unpacked,
    /// hN, cN unsorted after their one download; the tape keeps the layout for <see cref="Backward"/>, which does the same
    /// with dy, dhN, dcN and dx, dh0, dc0.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The gate buffers [T, N, G·H] would have more elements than a kernel indexes (int).</exception>
    public IRnnTape? Forward(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward, int[]? lengths = null)
    {
        var packed = PackedBatch.Create(lengths, x.Shape[0], x.Shape[1]);
        RequireIndexable(parameters.Config, x.Shape[0], x.Shape[1]);
        lock (_gate) return ForwardLocked(parameters, x, h0, c0, y, hN, cN, keepForBackward, packed);
    }

    /// <summary>The kernels index the per-step gate buffers with int: T·N·G·H must fit.</summary>
    private static void RequireIndexable(RnnConfig config, int steps, int batch) =>
        Sizes.Elements("x", "the ILGPU gate buffers [T, N, G·H]", ("T", steps), ("N", batch), ("G", config.GateCount), ("H", config.HiddenSize));

    private Tape? ForwardLocked(RnnParameters parameters, Tensor x, Tensor h0, Tensor? c0, Tensor y, Tensor hN, Tensor? cN, bool keepForBackward,
        PackedBatch? packed)
    {
        var config = parameters.Config;
        int steps = x.Shape[0], batch = x.Shape[1], h = config.HiddenSize;
        var (weights, offsets) = UploadParameters(parameters);
        var tape = new Tape(this, config.NumLayers, config.Directions)
        {
            Steps = steps, Batch = batch, Weights = weights, Offsets = offsets,
            H0 = Upload(Sorted(packed, h0.Memory, h), "h0"), C0 = c0 is null ? null : Upload(Sorted(packed, c0.Memory, h), "c0"),
            Packing = packed is null ? null : new DevicePacking(packed, config.NumLayers * config.Directions, _pool, Transfer),
        };
        try
        {
            tape.LayerBuffers[0] = Upload(PackedRows(packed, x.Memory, config.InputSize), "x [T, N, I]");
            using var hNBuffer = _pool.Rent(hN.Length, "hN");
            using var cNBuffer = cN is null ? null : _pool.Rent(cN.Length, "cN");
            RunForward(config, tape, hNBuffer, cNBuffer, keepForBackward);
            SettleBeforeDownloads("forward");
            // A variable-length batch comes back as packed rows and sorted states, put in place on the host.
            Memory<float> yRows = packed is null ? y.Memory : new float[(long)packed.Rows * config.OutputSize];
            Memory<float> hNRows = packed is null ? hN.Memory : new float[hN.Length];
            Memory<float> cNRows = cN is null ? default : packed is null ? cN.Memory : new float[cN.Length];
            Download(tape.LayerBuffers[config.NumLayers], yRows);
            Download(hNBuffer, hNRows);
            if (cN is not null) Download(cNBuffer!, cNRows);
            _gpu.Synchronize("forward");
            if (packed is not null)
            {
                packed.Unpack(yRows.Span, y.Span, config.OutputSize);
                packed.UnsortStates(hNRows.Span, hN.Span, h);
                if (cN is not null) packed.UnsortStates(cNRows.Span, cN.Span, h);
            }
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

    /// <summary>x or dy in the pass's layout: the padded rows themselves, or packed on the host before their one upload.</summary>
    private static ReadOnlyMemory<float> PackedRows(PackedBatch? packed, ReadOnlyMemory<float> padded, int features)
    {
        if (packed is null) return padded;
        var rows = new float[(long)packed.Rows * features];
        packed.Pack(padded.Span, rows, features);
        return rows;
    }

    /// <summary>h0, c0, dhN or dcN in the pass's order: as given, or sorted on the host before their one upload.</summary>
    private static ReadOnlyMemory<float> Sorted(PackedBatch? packed, ReadOnlyMemory<float> states, int hidden)
    {
        if (packed is null) return states;
        var sorted = new float[states.Length];
        packed.SortStates(states.Span, sorted, hidden);
        return sorted;
    }

    private void RunForward(RnnConfig config, Tape tape, PooledBuffer hN, PooledBuffer? cN, bool training)
    {
        var cell = DeviceCells.For(config.Cell);
        int steps = tape.Steps, batch = tape.Batch, rows = tape.Rows, h = config.HiddenSize, dirs = config.Directions, dh = dirs * h;
        int gh = config.GateCount * h, nh = batch * h, ngh = batch * gh;
        bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue;
        var gemm = _gpu.Gemm;
        using var inputProducts = _pool.Rent((long)rows * gh, "input products W_ih x [T, N, G·H]");
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
            var output = tape.LayerBuffers[layer + 1] = _pool.Rent((long)rows * dh, $"layer {layer} output [T, N, D·H]");
            for (int dir = 0; dir < dirs; dir++)
            {
                var saved = new DirectionSaved();
                if (training)
                {
                    tape.Saved[layer, dir] = saved;
                    saved.Gates = _pool.Rent((long)rows * gh, "saved gates [T, N, G·H]");
                    if (lstm) saved.Cells = _pool.Rent((long)rows * h, "saved cell states [T, N, H]");
                    if (keepsValue) saved.Extra = _pool.Rent((long)rows * h, "saved step values [T, N, H]");
                }
                var wih = At(weights, tape.Offsets[Index(config, layer, dir, ParameterSpec.WeightIH)]);
                var whh = At(weights, tape.Offsets[Index(config, layer, dir, ParameterSpec.WeightHH)]);
                var bih = At(weights, tape.Offsets[Index(config, layer, dir, ParameterSpec.BiasIH)]);
                var bhh = At(weights, tape.Offsets[Index(config, layer, dir, ParameterSpec.BiasHH)]);
                int state = (layer * dirs + dir) * nh;
                // All T input products at once: [T·N, I] · W_ihᵀ (packed: the Σ b real rows).
                gemm.Sgemm(false, true, rows, gh, inputSize, 1, input.View, inputSize, wih, inputSize, 0, inputProducts.View, gh);

                // Rows [first, first + count) of step t, continuing from step tPrev's rows or starting from h0 and c0.
                void StepRows(int t, int tPrev, bool continuing, int first, int count)
                {
                    if (count == 0) return;
                    long row = tape.FirstRow(t) + first, previous = continuing ? tape.FirstRow(tPrev) + first : 0, initial = state + (long)first * h;
                    ArrayView<float> cPrev = default, cOut = default;
                    if (lstm)
                    {
                        cPrev = !continuing ? At(tape.C0!, initial) : training ? At(saved.Cells!, previous * h) : At(cellScratch!, (long)first * h);
                        cOut = training ? At(saved.Cells!, row * h) : At(cellScratch!, (long)first * h);
                    }
                    cell.Forward(_cells, new ForwardStep
                    {
                        Batch = count, Hidden = h,
                        InputProduct = At(inputProducts, row * gh), RecurrentProduct = At(recurrentProduct, (long)first * gh),
                        WeightHH = whh, BiasIH = bih, BiasHH = bhh,
                        HPrev = continuing ? At(output, previous * dh + dir * h) : At(tape.H0, initial), HPrevStride = continuing ? dh : h,
                        HOut = At(output, row * dh + dir * h), HOutStride = dh,
                        CPrev = cPrev, COut = cOut,
                        Gates = training ? At(saved.Gates!, row * gh) : At(gateScratch!, (long)first * gh),
                        Extra = keepsValue ? training ? At(saved.Extra!, row * h) : At(extraScratch!, (long)first * h) : default,
                    });
                }

                bool reverse = dir == 1;
                for (int s = 0; s < steps; s++)
                {
                    int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1, tNext = reverse ? t - 1 : t + 1;
                    int running = tape.Running(t);
                    // The first rows continue from step tPrev; packed in reverse, the sequences whose last step is t start here.
                    int carried = Math.Min(running, tape.Running(tPrev));
                    StepRows(t, tPrev, continuing: true, 0, carried);
                    StepRows(t, tPrev, continuing: false, carried, running - carried);
                    // The last rows end here (packed forward, the sequences whose last step is t): their states are final.
                    int ending = Math.Min(running, tape.Running(tNext));
                    if (ending < running)
                    {
                        long row = tape.FirstRow(t) + ending, final = state + (long)ending * h;
                        CopyRows(At(output, row * dh + dir * h), dh, At(hN, final), h, running - ending, h);
                        if (lstm) CopyRows(training ? At(saved.Cells!, row * h) : At(cellScratch!, (long)ending * h), h, At(cN!, final), h, running - ending, h);
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
        var packed = ours.Packing?.Batch;
        int h = config.HiddenSize;
        try
        {
            using var dyBuffer = Upload(PackedRows(packed, dy.Memory, config.OutputSize), "dy [T, N, D·H]");
            using var dhNBuffer = Upload(Sorted(packed, dhN.Memory, h), "dhN");
            using var dcNBuffer = dcN is null ? null : Upload(Sorted(packed, dcN.Memory, h), "dcN");
            using var grads = _pool.Rent(ours.Weights.Length, "parameter gradients");
            grads.Clear();
            using var dh0Buffer = _pool.Rent(dh0.Length, "dh0");
            using var dc0Buffer = dc0 is null ? null : _pool.Rent(dc0.Length, "dc0");
            var dxBuffer = RunBackward(config, ours, dyBuffer, dhNBuffer, dcNBuffer, grads, dh0Buffer, dc0Buffer);
            SettleBeforeDownloads("backward");
            // A variable-length batch comes back as packed rows and sorted states, put in place on the host.
            Memory<float> dxRows = packed is null ? dx.Memory : new float[(long)packed.Rows * config.InputSize];
            Memory<float> dh0Rows = packed is null ? dh0.Memory : new float[dh0.Length];
            Memory<float> dc0Rows = dc0 is null ? default : packed is null ? dc0.Memory : new float[dc0.Length];
            try
            {
                Download(dxBuffer, dxRows);
            }
            finally
            {
                dxBuffer.Dispose();
            }
            Download(dh0Buffer, dh0Rows);
            if (dc0 is not null) Download(dc0Buffer!, dc0Rows);
            AddGradientsToHost(parameters, ours, grads);
            if (packed is not null)
            {
                packed.Unpack(dxRows.Span, dx.Span, config.InputSize);
                packed.UnsortStates(dh0Rows.Span, dh0.Span, h);
                if (dc0 is not null) packed.UnsortStates(dc0Rows.Span, dc0.Span, h);
            }
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, ours.Steps, ours.Batch);
        }
    }

    /// <summary>Downloads the device gradients and adds them into the parameters' host gradients (waits for the device).</summary>
    private void AddGradientsToHost(RnnParameters parameters, Tape tape, PooledBuffer grads)
    {
        // The device gradients lie as the host's flat storage does: one download, one sum.
        var destination = parameters.Gradients.Span;
        var hostGrads = new float[destination.Length];
        Download(grads, hostGrads);
        _gpu.Synchronize("backward");
        for (int k = 0; k < destination.Length; k++) destination[k] += hostGrads[k];
    }

    /// <summary>
    /// A forward pass whose input came from, and whose output stays on, the device: for models that run the layers
    /// around the stack on the same accelerator (<see cref="Sequence.RecurrentSequenceModel"/>). Disposing frees it.
    /// </summary>
    internal sealed class DevicePass : IDisposable
    {
        internal DevicePass(Tape tape, PooledBuffer hN, PooledBuffer? cN, PooledBuffer? paddedOutput, int layers) =>
            (Tape, HN, CN, _paddedOutput, Output) = (tape, hN, cN, paddedOutput, paddedOutput?.View ?? tape.LayerBuffers[layers].View);

        private readonly PooledBuffer? _paddedOutput;

        internal Tape Tape { get; }
        /// <summary>y [T, N, D·H] (with lengths: unpacked, zeros past each sequence's end).</summary>
        public ArrayView<float> Output { get; }
        /// <summary>hN, cN [L·D, N, H] in batch order: the next chained pass starts from them, whatever its lengths.</summary>
        internal PooledBuffer HN { get; }
        internal PooledBuffer? CN { get; }
        /// <summary>After <see cref="BackwardOnDevice"/>: dx [T, N, I] (zeros past each end), and dh0, dc0 (batch order) for the previous chained pass.</summary>
        internal PooledBuffer? Dx, Dh0, Dc0;

        public void Dispose()
        {
            Tape.Dispose();
            HN.Dispose();
            CN?.Dispose();
            _paddedOutput?.Dispose();
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
    /// <see cref="DeviceCopy"/> of <paramref name="rows"/> rows of <paramref name="columns"/>, or with a
    /// <paramref name="gather"/> index (a <see cref="DevicePacking"/> one) the rows it names in its order: packed, unpacked,
    /// sorted or unsorted on the device.
    /// </summary>
    private PooledBuffer DeviceRows(ArrayView<float> source, long rows, int columns, ArrayView<int> gather, string what)
    {
        if (!gather.IsValid) return DeviceCopy(source, rows * columns, what);
        var buffer = _pool.Rent(gather.Length * columns, what);
        if (!source.IsValid) buffer.Clear();
        else if (gather.Length > 0 && columns > 0)
            _gpu.Kernels.GatherRows(new Index1D(gather.IntLength * columns), source, gather, buffer.View, columns);
        return buffer;
    }

    /// <summary>
    /// <see cref="Forward"/> on device data: x [T, N, I] is copied on the device into the tape (the caller may reuse it),
    /// the initial state is <paramref name="previous"/>'s final one (zeros when null), and y stays on the device in
    /// the returned pass. Parameters are uploaded as in <see cref="Forward"/>. Shapes are the caller's to check.
    /// With <paramref name="lengths"/> (as <see cref="Forward"/>'s), x is packed and the initial state sorted by gathers on
    /// the device, and y, hN and cN come back unpacked and in batch order the same way: no host round trip.
    /// </summary>
    /// <exception cref="ArgumentException">(ParamName "lengths") as <see cref="SequenceLengths.Validate"/>.</exception>
    internal DevicePass ForwardOnDevice(RnnParameters parameters, ArrayView<float> x, int steps, int batch, DevicePass? previous, bool keepForBackward,
        int[]? lengths = null)
    {
        var packed = PackedBatch.Create(lengths, steps, batch);
        RequireIndexable(parameters.Config, steps, batch);
        lock (_gate) return ForwardOnDeviceLocked(parameters, x, steps, batch, previous, keepForBackward, packed);
    }

    private DevicePass ForwardOnDeviceLocked(RnnParameters parameters, ArrayView<float> x, int steps, int batch, DevicePass? previous, bool keepForBackward,
        PackedBatch? packed)
    {
        var config = parameters.Config;
        int slices = config.NumLayers * config.Directions, h = config.HiddenSize;
        long state = slices * (long)batch * h;
        bool lstm = config.Cell.HasCellState();
        var (weights, offsets) = UploadParameters(parameters);
        var packing = packed is null ? null : new DevicePacking(packed, slices, _pool, Transfer);
        var sort = packing?.Sort ?? default;
        var tape = new Tape(this, config.NumLayers, config.Directions)
        {
            Steps = steps, Batch = batch, Weights = weights, Offsets = offsets, Packing = packing,
            H0 = DeviceRows(previous is null ? default : previous.HN.View, slices * (long)batch, h, sort, "h0"),
            C0 = lstm ? DeviceRows(previous is null ? default : previous.CN!.View, slices * (long)batch, h, sort, "c0") : null,
        };
        PooledBuffer? hN = null, cN = null, paddedOutput = null;
        try
        {
            tape.LayerBuffers[0] = DeviceRows(x, (long)steps * batch, config.InputSize, packing?.Pack ?? default, "x [T, N, I]");
            hN = _pool.Rent(state, "hN");
            cN = lstm ? _pool.Rent(state, "cN") : null;
            RunForward(config, tape, hN, cN, keepForBackward);
            if (packing is not null)
            {
                paddedOutput = DeviceRows(tape.LayerBuffers[config.NumLayers].View, 0, config.OutputSize, packing.Unpack, "y [T, N, D·H]");
                hN = Unsorted(hN, packing, h, "hN");
                if (cN is not null) cN = Unsorted(cN, packing, h, "cN");
            }
            return new DevicePass(tape, hN, cN, paddedOutput, config.NumLayers);
        }
        catch (Exception e)
        {
            tape.Dispose();
            hN?.Dispose();
            cN?.Dispose();
            paddedOutput?.Dispose();
            throw Wrap(e, "forward", config, steps, batch);
        }
    }

    /// <summary>States in batch order from <paramref name="sorted"/> ones, which go back to the pool.</summary>
    private PooledBuffer Unsorted(PooledBuffer sorted, DevicePacking packing, int hidden, string what)
    {
        using (sorted) return DeviceRows(sorted.View, 0, hidden, packing.Unsort, what);
    }

    /// <summary>
    /// <see cref="Backward"/> on device data: from dy [T, N, D·H] and the initial-state gradients <paramref name="next"/>
    /// left (the pass chained after this one; zeros when null), leaves dx, dh0 and dc0 in <paramref name="pass"/> and
    /// returns dx. Parameter gradients are downloaded and added into the host ones, as in <see cref="Backward"/>. A pass
    /// with lengths packs dy and sorts dhN, dcN on the device, and unpacks dx (zeros past each end) and unsorts dh0, dc0.
    /// </summary>
    internal ArrayView<float> BackwardOnDevice(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, DevicePass? next)
    {
        lock (_gate) return BackwardOnDeviceLocked(parameters, pass, dy, next);
    }

    private ArrayView<float> BackwardOnDeviceLocked(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, DevicePass? next)
    {
        var config = parameters.Config;
        var tape = pass.Tape;
        var packing = tape.Packing;
        int slices = config.NumLayers * config.Directions, h = config.HiddenSize;
        long state = slices * (long)tape.Batch * h;
        bool lstm = config.Cell.HasCellState();
        var sort = packing?.Sort ?? default;
        try
        {
            using var dyBuffer = DeviceRows(dy, (long)tape.Steps * tape.Batch, config.OutputSize, packing?.Pack ?? default, "dy [T, N, D·H]");
            using var dhN = DeviceRows(next?.Dh0 is null ? default : next.Dh0.View, slices * (long)tape.Batch, h, sort, "dhN");
            using var dcN = lstm ? DeviceRows(next?.Dc0 is null ? default : next.Dc0.View, slices * (long)tape.Batch, h, sort, "dcN") : null;
            using var grads = _pool.Rent(tape.Weights.Length, "parameter gradients");
            grads.Clear();
            pass.Dh0 = _pool.Rent(state, "dh0");
            pass.Dc0 = lstm ? _pool.Rent(state, "dc0") : null;
            pass.Dx = RunBackward(config, tape, dyBuffer, dhN, dcN, grads, pass.Dh0, pass.Dc0);
            if (packing is not null)
            {
                var packedDx = pass.Dx;
                pass.Dx = null;
                using (packedDx) pass.Dx = DeviceRows(packedDx.View, 0, config.InputSize, packing.Unpack, "dx [T, N, I]");
                pass.Dh0 = Unsorted(pass.Dh0, packing, h, "dh0");
                if (pass.Dc0 is not null) pass.Dc0 = Unsorted(pass.Dc0, packing, h, "dc0");
            }
            AddGradientsToHost(parameters, tape, grads);
            return pass.Dx.View;
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, tape.Steps, tape.Batch);
        }
    }

    /// <summary>
    /// Back-propagates through every layer and direction on the device; returns dx [T, N, I] (packed: [Σ b, I]; the caller
    /// disposes it). Each sequence's dh_n and dc_n enter at its own last step in the direction's order: dh and dc start as
    /// dhN and dcN, and a step touches only its running rows, so a row that has not started back yet still holds them;
    /// likewise a row whose sequence started from h0 keeps its dh0 from then on.
    /// </summary>
    private PooledBuffer RunBackward(RnnConfig config, Tape tape, PooledBuffer dy,
        PooledBuffer dhN, PooledBuffer? dcN, PooledBuffer grads,
        PooledBuffer dh0, PooledBuffer? dc0)
    {
        var cell = DeviceCells.For(config.Cell);
        int steps = tape.Steps, batch = tape.Batch, h = config.HiddenSize, dirs = config.Directions, dhStride = dirs * h;
        int gh = config.GateCount * h, nh = batch * h, rows = tape.Rows;
        bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue;
        var gemm = _gpu.Gemm;
        using var dInput = _pool.Rent((long)rows * gh, "input-sum gradients [T, N, G·H]");
        using var dRecurBuffer = cell.SeparateRecurrentGradient ? _pool.Rent((long)rows * gh, "recurrent-sum gradients [T, N, G·H]") : null;
        var dRecur = dRecurBuffer ?? dInput;
        using var dh = _pool.Rent(nh, "dh [N, H]");
        using var dc = lstm ? _pool.Rent(nh, "dc [N, H]") : null;
        using var stepScratch = _pool.Rent(nh, "backward step scratch [N, H]");
        using var sumScratch = _pool.Rent(IlgpuKernels.ColumnSumScratchLength(gh), "bias-gradient partial sums");
        using var previousHidden = tape.Packing is null ? null : _pool.Rent((long)rows * h, "previous hidden states [Σb, H]");
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
                long wihOffset = tape.Offsets[Index(config, layer, dir, ParameterSpec.WeightIH)];
                long whhOffset = tape.Offsets[Index(config, layer, dir, ParameterSpec.WeightHH)];
                var wih = At(weights, wihOffset);
                var whh = At(weights, whhOffset);
                int state = (layer * dirs + dir) * nh;
                CopyRows(At(dhN, state), h, dh.View, h, batch, h);
                if (lstm) CopyRows(At(dcN!, state), h, dc!.View, h, batch, h);

                // Rows [first, first + count) of step t back, as the forward pass ran them (StepRows in RunForward).
                void StepRows(int t, int tPrev, bool continuing, int first, int count)
                {
                    if (count == 0) return;
                    long row = tape.FirstRow(t) + first, previous = continuing ? tape.FirstRow(tPrev) + first : 0, initial = state + (long)first * h;
                    cell.Backward(_cells, new BackwardStep
                    {
                        Batch = count, Hidden = h,
                        Dy = At(dOutput, row * dhStride + dir * h), DyStride = dhStride,
                        Dh = At(dh, (long)first * h), Dc = lstm ? At(dc!, (long)first * h) : default,
                        WeightHH = whh, Gates = At(saved.Gates!, row * gh),
                        CNew = lstm ? At(saved.Cells!, row * h) : default,
                        CPrev = lstm ? continuing ? At(saved.Cells!, previous * h) : At(tape.C0!, initial) : default,
                        Extra = keepsValue ? At(saved.Extra!, row * h) : default, Scratch = At(stepScratch, (long)first * h),
                        HPrev = continuing ? At(output, previous * dhStride + dir * h) : At(tape.H0, initial),
                        HPrevStride = continuing ? dhStride : h,
                        DInput = At(dInput, row * gh), DRecur = At(dRecur, row * gh),
                    });
                }

                bool reverse = dir == 1;
                for (int s = steps - 1; s >= 0; s--)
                {
                    int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1;
                    int running = tape.Running(t), carried = Math.Min(running, tape.Running(tPrev));
                    StepRows(t, tPrev, continuing: true, 0, carried);
                    StepRows(t, tPrev, continuing: false, carried, running - carried);
                }
                CopyRows(dh.View, h, At(dh0, state), h, batch, h);
                if (lstm) CopyRows(dc!.View, h, At(dc0!, state), h, batch, h);

                // Parameter gradients: one product over all T·N rows each (packed: the real rows only).
                gemm.Sgemm(true, false, gh, inputSize, rows, 1, dInput.View, gh, input.View, inputSize, 1, At(grads, wihOffset), inputSize);
                if (previousHidden is not null)
                    _gpu.Kernels.GatherPreviousHidden(new Index1D(rows * h), At(output, dir * h), dhStride, At(tape.H0, state),
                        tape.Packing!.PreviousRows(reverse), previousHidden.View, h);
                cell.RecurrentWeightGradient(_cells, new RecurrentWeightPass
                {
                    Steps = steps, Batch = batch, Rows = rows, Hidden = h, Reverse = reverse,
                    DRecur = dRecur.View, Outputs = At(output, dir * h), OutputStride = dhStride, H0 = At(tape.H0, state),
                    PreviousHidden = previousHidden?.View ?? default,
                    Extra = keepsValue ? saved.Extra!.View : default, DWeightHH = At(grads, whhOffset),
                });
                _gpu.Kernels.ColumnSums(dInput.View, rows, gh, gh, At(grads, tape.Offsets[Index(config, layer, dir, ParameterSpec.BiasIH)]), accumulate: true, sumScratch.View);
                _gpu.Kernels.ColumnSums(dRecur.View, rows, gh, gh, At(grads, tape.Offsets[Index(config, layer, dir, ParameterSpec.BiasHH)]), accumulate: true, sumScratch.View);
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
