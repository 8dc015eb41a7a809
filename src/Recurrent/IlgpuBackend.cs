using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Recurrent.Ilgpu;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Kernels.Ilgpu.Cells;
using Recurrent.Stacking;

namespace Recurrent;

/// <summary>
/// Runs whole recurrent stacks on an ILGPU accelerator (CUDA, OpenCL, or ILGPU's CPU simulator). Each
/// <see cref="Forward"/> and <see cref="Backward"/> copies its inputs to the device once, keeps every parameter and
/// activation there for all layers, directions and steps, and copies the results back once. Per layer and direction
/// the input product W_ih x is one matrix product over all T steps; each step then runs the recurrent product and the
/// cell's pointwise part, fused (one kernel) or unfused (one kernel per elementwise operation). Matrix products run on
/// cuBLAS on CUDA where it loads, else on a kernel (see <see cref="IlgpuGemm"/>). Device buffers are pooled across calls.
/// The layers and directions are stacked by <see cref="RecurrentStacking{TBuffer}"/> on device buffers, for the host entry
/// and the device-level entry (<see cref="ForwardOnDevice"/>) alike; this class is the per-direction compute and the
/// transfers around it. A variable-length batch runs in cuDNN's packed layout (<see cref="PackedBatch"/>): packed on the
/// device once on the way in, every layer on the Σ b real rows (step t's products and pointwise part on its b_t rows),
/// unpacked once on the way out.
/// </summary>
/// <remarks>
/// Thread-safety: safe; calls from several threads (on one layer or on several sharing this backend) run one at a time, in
/// the order they take the backend's lock. The backend's state (the buffer pool, the unfused steps' temporaries, the
/// transfer clock) is shared by every call, and the device runs one stream in order anyway, so serialising costs
/// nothing the device could have overlapped. Each <see cref="Backward"/> adds into the parameters' host gradients
/// under that lock; tapes may be disposed from any thread.
/// <para>Lifetime: the creator owns it; layers, steppers and sequence models borrow it. <see cref="Dispose"/> frees the device (the accelerator, the buffer pool, cuBLAS), so dispose every forward result, stepper and model that uses it first; nothing may use it afterwards.</para>
/// </remarks>
public sealed partial class IlgpuBackend : IRnnBackend, IDisposable
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
    /// What a forward pass leaves for its backward pass: the stacking's tape on device buffers, the parameters as they were
    /// uploaded (or a stepper's resident ones, which the tape does not own), the packed layout's index buffers, and the device
    /// buffers of the pass's inputs and output that the stacking's tape refers to.
    /// </summary>
    internal sealed class Tape(IlgpuBackend owner) : IRnnTape
    {
        public IlgpuBackend Owner { get; } = owner;
        public required int Steps { get; init; }
        public required int Batch { get; init; }
        public required PooledBuffer Weights { get; init; }
        /// <summary>Whether <see cref="Weights"/> are this pass's own upload (freed with the tape) rather than resident ones.</summary>
        public bool OwnsWeights { get; init; } = true;
        public required long[] Offsets { get; init; }
        /// <summary>The packed layout of a variable-length batch, or null for a dense one.</summary>
        public DevicePacking? Packing { get; init; }
        public StackingTape<ArrayView<float>>? Stacking { get; set; }
        /// <summary>The pass's own copies of x, h0, c0 (and the host entry's y), which <see cref="Stacking"/> may refer to.</summary>
        public List<PooledBuffer> Inputs { get; } = [];

        public void Dispose()
        {
            Stacking?.Dispose();
            if (OwnsWeights) Weights.Dispose();
            Packing?.Dispose();
            foreach (var b in Inputs) b.Dispose();
            Inputs.Clear();
        }
    }

    private static ArrayView<float> At(PooledBuffer buffer, long offset) => buffer.At(offset);

    private static ArrayView<float> At(ArrayView<float> view, long offset) => view.SubView(offset, view.Length - offset);

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
        Interlocked.Increment(ref _parameterUploads);
        var all = parameters.All;
        var offsets = new long[all.Count];
        for (int i = 0; i < all.Count; i++) offsets[i] = all[i].Offset;
        return (Upload(parameters.Values.Memory, "parameters"), offsets);
    }

    private int _parameterUploads;

    /// <summary>How many times the parameters were uploaded (one copy of the flat storage each): tests check that steppers upload once.</summary>
    internal int ParameterUploads => Volatile.Read(ref _parameterUploads);

    private string Describe(RnnConfig config, int steps, int batch) =>
        $"{config.Cell} T={steps} N={batch} I={config.InputSize} H={config.HiddenSize} L={config.NumLayers} D={config.Directions}";

    private Exception Wrap(Exception e, string operation, RnnConfig config, int steps, int batch) =>
        e is ArgumentException or IlgpuOperationException ? e
            : new IlgpuOperationException($"{Name}: {operation} of {Describe(config, steps, batch)} failed on {_gpu.Accelerator.Name}: {e.GetBaseException().Message}", e);

    /// <summary>
    /// A forward pass's tape: its parameters uploaded (or <paramref name="resident"/>'s, without an upload), and its packed
    /// layout's index buffers when it has lengths.
    /// </summary>
    private Tape NewTape(RnnParameters parameters, int steps, int batch, PackedBatch? packed, IlgpuResidentWeights? resident = null)
    {
        var config = parameters.Config;
        var (weights, offsets) = resident is null ? UploadParameters(parameters) : (resident.Weights, resident.Offsets);
        return new Tape(this)
        {
            Steps = steps, Batch = batch, Weights = weights, Offsets = offsets, OwnsWeights = resident is null,
            Packing = packed is null ? null : new DevicePacking(packed, config.NumLayers * config.Directions, _pool, Transfer),
        };
    }

    /// <summary>A pooled buffer the tape keeps (its inputs' copies, the host entry's y).</summary>
    private static PooledBuffer Keep(Tape tape, PooledBuffer buffer)
    {
        tape.Inputs.Add(buffer);
        return buffer;
    }

    /// <inheritdoc />
    /// <remarks>
    /// x, h0 and c0 are uploaded once, the stack runs on the device (<see cref="RecurrentStacking{TBuffer}"/>; with
    /// <paramref name="lengths"/> packed and sorted there by gathers), and y, hN, cN are downloaded once.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The gate buffers [T, N, G·H] would have more elements than a kernel indexes (int).</exception>
    public IRnnTape? Forward(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward, int[]? lengths = null)
    {
        var packed = PackedBatch.Create(lengths, x.Shape[0], x.Shape[1]);
        RequireIndexable(parameters.Config, x.Shape[0], x.Shape[1]);
        lock (_gate) return ForwardLocked(parameters, x, h0, c0, y, hN, cN, keepForBackward, packed);
    }

    /// <summary>The kernels index the per-step gate buffers with int: T·N·G·H must fit.</summary>
    private static void RequireIndexable(RnnConfig config, int steps, int batch) =>
        Sizes.Elements("x", "the ILGPU gate buffers [T, N, G·H]", ("T", steps), ("N", batch), ("G", config.GateCount), ("H", config.HiddenSize));

    private Tape? ForwardLocked(RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor y, FloatTensor hN, FloatTensor? cN, bool keepForBackward,
        PackedBatch? packed)
    {
        var config = parameters.Config;
        int steps = x.Shape[0], batch = x.Shape[1];
        var tape = NewTape(parameters, steps, batch, packed);
        try
        {
            var xBuffer = Keep(tape, Upload(x.Memory, "x [T, N, I]"));
            var h0Buffer = Keep(tape, Upload(h0.Memory, "h0"));
            var c0Buffer = c0 is null ? null : Keep(tape, Upload(c0.Memory, "c0"));
            var yBuffer = Keep(tape, _pool.Rent(y.Length, "y [T, N, D·H]"));
            using var hNBuffer = _pool.Rent(hN.Length, "hN");
            using var cNBuffer = cN is null ? null : _pool.Rent(cN.Length, "cN");
            using (var compute = new DirectionCompute(this, config, tape, grads: null))
                tape.Stacking = RecurrentStacking<ArrayView<float>>.Forward(compute, config, steps, batch, packed, xBuffer.View, fromTable: false,
                    h0Buffer.View, c0Buffer?.View ?? default, yBuffer.View, hNBuffer.View, cNBuffer?.View ?? default, keepForBackward);
            SettleBeforeDownloads("forward");
            Download(yBuffer, y.Memory);
            Download(hNBuffer, hN.Memory);
            if (cN is not null) Download(cNBuffer!, cN.Memory);
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

    /// <inheritdoc />
    public void Backward(RnnParameters parameters, IRnnTape tape, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0)
    {
        if (tape is not Tape ours || ours.Owner != this)
            throw new ArgumentException($"tape: expected a tape made by this {Name} backend's forward pass.", nameof(tape));
        lock (_gate) BackwardLocked(parameters, ours, dy, dhN, dcN, dx, dh0, dc0);
    }

    private void BackwardLocked(RnnParameters parameters, Tape ours, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN, FloatTensor dx, FloatTensor dh0, FloatTensor? dc0)
    {
        var config = parameters.Config;
        try
        {
            using var dyBuffer = Upload(dy.Memory, "dy [T, N, D·H]");
            using var dhNBuffer = Upload(dhN.Memory, "dhN");
            using var dcNBuffer = dcN is null ? null : Upload(dcN.Memory, "dcN");
            using var grads = _pool.Rent(ours.Weights.Length, "parameter gradients");
            grads.Clear();
            using var dxBuffer = _pool.Rent(dx.Length, "dx [T, N, I]");
            using var dh0Buffer = _pool.Rent(dh0.Length, "dh0");
            using var dc0Buffer = dc0 is null ? null : _pool.Rent(dc0.Length, "dc0");
            using (var compute = new DirectionCompute(this, config, ours, grads))
                RecurrentStacking<ArrayView<float>>.Backward(compute, config, Stacking(ours), ours.Steps, ours.Batch, dyBuffer.View, dhNBuffer.View,
                    dcNBuffer?.View ?? default, dxBuffer.View, dh0Buffer.View, dc0Buffer?.View ?? default);
            SettleBeforeDownloads("backward");
            Download(dxBuffer, dx.Memory);
            Download(dh0Buffer, dh0.Memory);
            if (dc0 is not null) Download(dc0Buffer!, dc0.Memory);
            AddGradientsToHost(parameters, grads);
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, ours.Steps, ours.Batch);
        }
    }

    private static StackingTape<ArrayView<float>> Stacking(Tape tape) =>
        tape.Stacking ?? throw new InvalidOperationException("tape: its forward pass did not finish.");

    /// <summary>Downloads the device gradients and adds them into the parameters' host gradients (waits for the device).</summary>
    private void AddGradientsToHost(RnnParameters parameters, PooledBuffer grads)
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
    internal sealed class DevicePass(Tape tape, PooledBuffer output, PooledBuffer hN, PooledBuffer? cN) : IDisposable
    {
        internal Tape Tape { get; } = tape;
        /// <summary>y [T, N, D·H] (with lengths: zeros past each sequence's end).</summary>
        public ArrayView<float> Output => output.View;
        /// <summary>hN, cN [L·D, N, H] in batch order: the next chained pass starts from them, whatever its lengths.</summary>
        internal PooledBuffer HN { get; } = hN;
        internal PooledBuffer? CN { get; } = cN;
        /// <summary>After <see cref="BackwardOnDevice"/>: dx [T, N, I] (zeros past each end), and dh0, dc0 (batch order) for the previous chained pass.</summary>
        internal PooledBuffer? Dx, Dh0, Dc0;

        public void Dispose()
        {
            Tape.Dispose();
            output.Dispose();
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
    /// <see cref="Forward"/> on device data: the same stacking, with x [T, N, I] read on the device (a dense pass copies it
    /// into the tape, so the caller may reuse it; a packed one packs it), the initial state <paramref name="previous"/>'s
    /// final one (zeros when null), and y left on the device in the returned pass. Parameters are uploaded as in
    /// <see cref="Forward"/>. Shapes are the caller's to check. With <paramref name="lengths"/> (as <see cref="Forward"/>'s)
    /// x is packed, the states sorted, y unpacked and hN, cN unsorted by gathers on the device: no host round trip.
    /// </summary>
    /// <exception cref="ArgumentException">(ParamName "lengths") as <see cref="SequenceLengths.Validate"/>.</exception>
    internal DevicePass ForwardOnDevice(RnnParameters parameters, ArrayView<float> x, int steps, int batch, DevicePass? previous, bool keepForBackward,
        int[]? lengths = null)
    {
        var packed = PackedBatch.Create(lengths, steps, batch);
        RequireIndexable(parameters.Config, steps, batch);
        lock (_gate)
            return ForwardOnDeviceLocked(parameters, x, steps, batch, previous is null ? default : previous.HN.View, previous?.CN?.View ?? default,
                keepForBackward, packed, resident: null);
    }

    /// <summary>
    /// The device-level forward from initial states <paramref name="h0Source"/>, <paramref name="c0Source"/> [L·D, N, H]
    /// (copied into the tape; zeros when invalid), on <paramref name="resident"/> weights when given, else on an upload.
    /// </summary>
    private DevicePass ForwardOnDeviceLocked(RnnParameters parameters, ArrayView<float> x, int steps, int batch, ArrayView<float> h0Source,
        ArrayView<float> c0Source, bool keepForBackward, PackedBatch? packed, IlgpuResidentWeights? resident)
    {
        var config = parameters.Config;
        long state = config.NumLayers * config.Directions * (long)batch * config.HiddenSize;
        bool lstm = config.Cell.HasCellState();
        var tape = NewTape(parameters, steps, batch, packed, resident);
        PooledBuffer? y = null, hN = null, cN = null;
        try
        {
            // The packed rows are the pass's own already; a dense pass's x is copied, as the caller may reuse it before backward.
            var input = packed is null ? Keep(tape, DeviceCopy(x, (long)steps * batch * config.InputSize, "x [T, N, I]")).View : x;
            var h0 = Keep(tape, DeviceCopy(h0Source, state, "h0"));
            var c0 = lstm ? Keep(tape, DeviceCopy(c0Source, state, "c0")) : null;
            y = _pool.Rent((long)steps * batch * config.OutputSize, "y [T, N, D·H]");
            hN = _pool.Rent(state, "hN");
            cN = lstm ? _pool.Rent(state, "cN") : null;
            using (var compute = new DirectionCompute(this, config, tape, grads: null))
                tape.Stacking = RecurrentStacking<ArrayView<float>>.Forward(compute, config, steps, batch, packed, input, fromTable: false,
                    h0.View, c0?.View ?? default, y.View, hN.View, cN?.View ?? default, keepForBackward);
            return new DevicePass(tape, y, hN, cN);
        }
        catch (Exception e)
        {
            tape.Dispose();
            y?.Dispose();
            hN?.Dispose();
            cN?.Dispose();
            throw Wrap(e, "forward", config, steps, batch);
        }
    }

    /// <summary>
    /// <see cref="Backward"/> on device data, the same stacking: from dy [T, N, D·H] and the initial-state gradients
    /// <paramref name="next"/> left (the pass chained after this one; zeros when null), leaves dx, dh0 and dc0 in
    /// <paramref name="pass"/> and returns dx. Parameter gradients are downloaded and added into the host ones, as in
    /// <see cref="Backward"/>. A pass with lengths packs dy and sorts dhN, dcN on the device, and unpacks dx (zeros past
    /// each end) and unsorts dh0, dc0.
    /// </summary>
    internal ArrayView<float> BackwardOnDevice(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, DevicePass? next)
    {
        lock (_gate)
            return BackwardOnDeviceLocked(parameters, pass, dy, next?.Dh0 is null ? default : next.Dh0.View, next?.Dc0 is null ? default : next.Dc0.View,
                gradientSink: null);
    }

    /// <summary>
    /// The device-level backward from final-state gradients <paramref name="dhNSource"/>, <paramref name="dcNSource"/>
    /// [L·D, N, H] (zeros when invalid). The parameter gradients add into <paramref name="gradientSink"/> (device, laid out as
    /// the flat storage) when given, else are downloaded and added into the host ones.
    /// </summary>
    private ArrayView<float> BackwardOnDeviceLocked(RnnParameters parameters, DevicePass pass, ArrayView<float> dy, ArrayView<float> dhNSource,
        ArrayView<float> dcNSource, PooledBuffer? gradientSink)
    {
        var config = parameters.Config;
        var tape = pass.Tape;
        long state = config.NumLayers * config.Directions * (long)tape.Batch * config.HiddenSize;
        bool lstm = config.Cell.HasCellState();
        try
        {
            using var dhN = DeviceCopy(dhNSource, state, "dhN");
            using var dcN = lstm ? DeviceCopy(dcNSource, state, "dcN") : null;
            using var ownGrads = gradientSink is null ? _pool.Rent(tape.Weights.Length, "parameter gradients") : null;
            ownGrads?.Clear();
            var grads = gradientSink ?? ownGrads!;
            // A pass back-propagated again (a stepper's step may be) frees the gradients of the time before.
            pass.Dx?.Dispose();
            pass.Dh0?.Dispose();
            pass.Dc0?.Dispose();
            pass.Dx = _pool.Rent((long)tape.Steps * tape.Batch * config.InputSize, "dx [T, N, I]");
            pass.Dh0 = _pool.Rent(state, "dh0");
            pass.Dc0 = lstm ? _pool.Rent(state, "dc0") : null;
            using (var compute = new DirectionCompute(this, config, tape, grads))
                RecurrentStacking<ArrayView<float>>.Backward(compute, config, Stacking(tape), tape.Steps, tape.Batch, dy, dhN.View, dcN?.View ?? default,
                    pass.Dx.View, pass.Dh0.View, pass.Dc0?.View ?? default);
            if (gradientSink is null) AddGradientsToHost(parameters, grads);
            return pass.Dx.View;
        }
        catch (Exception e)
        {
            throw Wrap(e, "backward", config, tape.Steps, tape.Batch);
        }
    }

    /// <summary>destination rows = source rows, [rows, cols] blocks with their own strides.</summary>
    private void CopyRows(ArrayView<float> source, int sourceStride, ArrayView<float> destination, int destinationStride, int rows, int cols) =>
        _gpu.Kernels.Unary<UnaryOps.Copy>()(new Index2D(cols, rows), source, new Block(0, sourceStride), destination, new Block(0, destinationStride));

    /// <summary>
    /// One layer and direction on the device, for the stacking of one pass (used under the backend's lock, then disposed).
    /// Forward: the input product W_ih x of all steps as one matrix product, then per step the recurrent product and the
    /// cell's pointwise part on the step's running rows. Backward: per step back, then the parameter gradients as single
    /// products over all rows. The workspace (products, scratch) is rented on first use and shared by the layers and directions.
    /// </summary>
    private sealed class DirectionCompute(IlgpuBackend backend, RnnConfig config, Tape tape, PooledBuffer? grads) : IDirectionCompute<ArrayView<float>>, IDisposable
    {
        private readonly IDeviceCell _cell = DeviceCells.For(config.Cell);
        private readonly List<PooledBuffer> _workspace = [];
        private readonly Dictionary<string, PooledBuffer> _named = [];

        private DeviceBufferPool Pool => backend._pool;

        /// <summary>
        /// A workspace buffer of <paramref name="length"/>, rented once per pass: every layer and direction of a stack has the
        /// same rows, G·H and H, so one of each serves them all.
        /// </summary>
        private ArrayView<float> Workspace(long length, string what)
        {
            if (!_named.TryGetValue(what, out var buffer))
            {
                _named[what] = buffer = Pool.Rent(length, what);
                _workspace.Add(buffer);
            }
            else if (buffer.Length != Math.Max(length, 1))
                throw new InvalidOperationException($"{what}: a workspace of {buffer.Length} floats was asked for again with {length}.");
            return buffer.View;
        }

        public BufferLease<ArrayView<float>> Allocate(long elements, string what)
        {
            var buffer = Pool.Rent(elements, what);
            return new(buffer.View, buffer);
        }

        private ArrayView<float> Parameter(in DirectionPass<ArrayView<float>> pass, ParameterSpec spec, PooledBuffer storage) =>
            At(storage, tape.Offsets[(pass.Layer * config.Directions + pass.Direction) * config.Definition.Parameters.Count + config.Definition.IndexOf(spec)]);

        /// <summary>b_t, the rows of step t (N when dense); 0 for a step outside [0, T), so a direction's ends need no case of their own.</summary>
        private static int Running(in DirectionPass<ArrayView<float>> pass, int t) =>
            t < 0 || t >= pass.Steps ? 0 : pass.Packed?.BatchSizes[t] ?? pass.Batch;

        /// <summary>The first row of step t.</summary>
        private static long FirstRow(in DirectionPass<ArrayView<float>> pass, int t) => pass.Packed?.Offsets[t] ?? (long)t * pass.Batch;

        private static long Rows(in DirectionPass<ArrayView<float>> pass) => pass.Packed?.Rows ?? (long)pass.Steps * pass.Batch;

        private static ArrayView<float> Row(StridedRows<ArrayView<float>> rows, long row) => At(rows.Buffer, rows.Offset + row * rows.Stride);

        public IDisposable? Forward(in DirectionPass<ArrayView<float>> pass, bool keepForBackward)
        {
            var cell = _cell;
            var cells = backend._cells;
            int batch = pass.Batch, h = pass.HiddenSize, inputSize = pass.InputSize, rows = (int)Rows(pass);
            int gh = config.GateCount * h, nh = batch * h, ngh = batch * gh;
            bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue, training = keepForBackward;
            var inputProducts = Workspace((long)rows * gh, "input products W_ih x [T, N, G·H]");
            var recurrentProduct = Workspace(ngh, "recurrent product [N, G·H]");
            // Without a tape a step's gates, cell state and kept value are scratch, reused every step.
            var gateScratch = training ? default : Workspace(ngh, "gates [N, G·H]");
            var cellScratch = training || !lstm ? default : Workspace(nh, "cell state [N, H]");
            var extraScratch = training || !keepsValue ? default : Workspace(nh, "kept step value [N, H]");
            var saved = new DirectionSaved();
            try
            {
                if (training)
                {
                    saved.Gates = Pool.Rent((long)rows * gh, "saved gates [T, N, G·H]");
                    if (lstm) saved.Cells = Pool.Rent((long)rows * h, "saved cell states [T, N, H]");
                    if (keepsValue) saved.Extra = Pool.Rent((long)rows * h, "saved step values [T, N, H]");
                }
                var whh = Parameter(pass, ParameterSpec.WeightHH, tape.Weights);
                var bih = Parameter(pass, ParameterSpec.BiasIH, tape.Weights);
                var bhh = Parameter(pass, ParameterSpec.BiasHH, tape.Weights);
                // All T input products at once: [T·N, I] · W_ihᵀ (packed: the Σ b real rows).
                backend._gpu.Gemm.Sgemm(false, true, rows, gh, inputSize, 1, At(pass.X.Buffer, pass.X.Offset), pass.X.Stride, Parameter(pass, ParameterSpec.WeightIH, tape.Weights), inputSize,
                    0, inputProducts, gh);
                var y = pass.Y;
                var h0 = pass.H0;
                var c0 = pass.C0;

                // Rows [first, first + count) of step t, continuing from step tPrev's rows or starting from h0 and c0.
                void StepRows(in DirectionPass<ArrayView<float>> pass, int t, int tPrev, bool continuing, int first, int count)
                {
                    if (count == 0) return;
                    long row = FirstRow(pass, t) + first, previous = continuing ? FirstRow(pass, tPrev) + first : 0, initial = (long)first * h;
                    ArrayView<float> cPrev = default, cOut = default;
                    if (lstm)
                    {
                        cPrev = !continuing ? At(c0.Buffer, c0.Offset + initial) : training ? At(saved.Cells!, previous * h) : At(cellScratch, (long)first * h);
                        cOut = training ? At(saved.Cells!, row * h) : At(cellScratch, (long)first * h);
                    }
                    cell.Forward(cells, new ForwardStep
                    {
                        Batch = count, Hidden = h,
                        InputProduct = At(inputProducts, row * gh), RecurrentProduct = At(recurrentProduct, (long)first * gh),
                        WeightHH = whh, BiasIH = bih, BiasHH = bhh,
                        HPrev = continuing ? Row(y, previous) : At(h0.Buffer, h0.Offset + initial), HPrevStride = continuing ? y.Stride : h,
                        HOut = Row(y, row), HOutStride = y.Stride,
                        CPrev = cPrev, COut = cOut,
                        Gates = training ? At(saved.Gates!, row * gh) : At(gateScratch, (long)first * gh),
                        Extra = keepsValue ? training ? At(saved.Extra!, row * h) : At(extraScratch, (long)first * h) : default,
                    });
                }

                int steps = pass.Steps;
                bool reverse = pass.Reverse;
                for (int s = 0; s < steps; s++)
                {
                    int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1, tNext = reverse ? t - 1 : t + 1;
                    int running = Running(pass, t);
                    // The first rows continue from step tPrev; packed in reverse, the sequences whose last step is t start here.
                    int carried = Math.Min(running, Running(pass, tPrev));
                    StepRows(pass, t, tPrev, continuing: true, 0, carried);
                    StepRows(pass, t, tPrev, continuing: false, carried, running - carried);
                    // The last rows end here (packed forward, the sequences whose last step is t): their states are final.
                    int ending = Math.Min(running, Running(pass, tNext));
                    if (ending < running)
                    {
                        long row = FirstRow(pass, t) + ending, final = (long)ending * h;
                        backend.CopyRows(Row(y, row), y.Stride, At(pass.HN.Buffer, pass.HN.Offset + final), h, running - ending, h);
                        if (lstm)
                            backend.CopyRows(training ? At(saved.Cells!, row * h) : At(cellScratch, (long)ending * h), h, At(pass.CN.Buffer, pass.CN.Offset + final), h,
                                running - ending, h);
                    }
                }
                if (training) return saved;
                saved.Dispose();
                return null;
            }
            catch
            {
                saved.Dispose();
                throw;
            }
        }

        /// <remarks>
        /// Each sequence's dh_n and dc_n enter at its own last step in the direction's order: dh and dc start as dhN and dcN,
        /// and a step touches only its running rows, so a row that has not started back yet still holds them; likewise a row
        /// whose sequence started from h0 keeps its dh0 from then on.
        /// </remarks>
        public void Backward(in DirectionPass<ArrayView<float>> pass, IDisposable savedState)
        {
            var saved = (DirectionSaved)savedState;
            var cell = _cell;
            var cells = backend._cells;
            var gemm = backend._gpu.Gemm;
            var kernels = backend._gpu.Kernels;
            int steps = pass.Steps, batch = pass.Batch, h = pass.HiddenSize, inputSize = pass.InputSize, rows = (int)Rows(pass);
            int gh = config.GateCount * h, nh = batch * h;
            bool lstm = config.Cell.HasCellState(), keepsValue = cell.KeepsStepValue;
            var dInput = Workspace((long)rows * gh, "input-sum gradients [T, N, G·H]");
            var dRecur = cell.SeparateRecurrentGradient ? Workspace((long)rows * gh, "recurrent-sum gradients [T, N, G·H]") : dInput;
            var dh = Workspace(nh, "dh [N, H]");
            var dc = lstm ? Workspace(nh, "dc [N, H]") : default;
            var stepScratch = Workspace(nh, "backward step scratch [N, H]");
            var sumScratch = Workspace(IlgpuKernels.ColumnSumScratchLength(gh), "bias-gradient partial sums");
            var previousHidden = pass.Packed is null ? default : Workspace((long)rows * h, "previous hidden states [Σb, H]");
            var weights = tape.Weights;
            var wih = Parameter(pass, ParameterSpec.WeightIH, weights);
            var whh = Parameter(pass, ParameterSpec.WeightHH, weights);
            var (y, dy, h0, c0) = (pass.Y, pass.DY, pass.H0, pass.C0);
            backend.CopyRows(At(pass.DHN.Buffer, pass.DHN.Offset), h, dh, h, batch, h);
            if (lstm) backend.CopyRows(At(pass.DCN.Buffer, pass.DCN.Offset), h, dc, h, batch, h);

            // Rows [first, first + count) of step t back, as the forward pass ran them (StepRows in Forward).
            void StepRows(in DirectionPass<ArrayView<float>> pass, int t, int tPrev, bool continuing, int first, int count)
            {
                if (count == 0) return;
                long row = FirstRow(pass, t) + first, previous = continuing ? FirstRow(pass, tPrev) + first : 0, initial = (long)first * h;
                cell.Backward(cells, new BackwardStep
                {
                    Batch = count, Hidden = h,
                    Dy = Row(dy, row), DyStride = dy.Stride,
                    Dh = At(dh, (long)first * h), Dc = lstm ? At(dc, (long)first * h) : default,
                    WeightHH = whh, Gates = At(saved.Gates!, row * gh),
                    CNew = lstm ? At(saved.Cells!, row * h) : default,
                    CPrev = lstm ? continuing ? At(saved.Cells!, previous * h) : At(c0.Buffer, c0.Offset + initial) : default,
                    Extra = keepsValue ? At(saved.Extra!, row * h) : default, Scratch = At(stepScratch, (long)first * h),
                    HPrev = continuing ? Row(y, previous) : At(h0.Buffer, h0.Offset + initial),
                    HPrevStride = continuing ? y.Stride : h,
                    DInput = At(dInput, row * gh), DRecur = At(dRecur, row * gh),
                });
            }

            bool reverse = pass.Reverse;
            for (int s = steps - 1; s >= 0; s--)
            {
                int t = reverse ? steps - 1 - s : s, tPrev = reverse ? t + 1 : t - 1;
                int running = Running(pass, t), carried = Math.Min(running, Running(pass, tPrev));
                StepRows(pass, t, tPrev, continuing: true, 0, carried);
                StepRows(pass, t, tPrev, continuing: false, carried, running - carried);
            }
            backend.CopyRows(dh, h, At(pass.DH0.Buffer, pass.DH0.Offset), h, batch, h);
            if (lstm) backend.CopyRows(dc, h, At(pass.DC0.Buffer, pass.DC0.Offset), h, batch, h);

            // Parameter gradients: one product over all T·N rows each (packed: the real rows only).
            var g = grads!;
            gemm.Sgemm(true, false, gh, inputSize, rows, 1, dInput, gh, At(pass.X.Buffer, pass.X.Offset), pass.X.Stride, 1, Parameter(pass, ParameterSpec.WeightIH, g), inputSize);
            if (pass.Packed is not null)
                kernels.GatherPreviousHidden(new Index1D(rows * h), At(y.Buffer, y.Offset), y.Stride, At(h0.Buffer, h0.Offset),
                    tape.Packing!.PreviousRows(reverse), previousHidden, h);
            cell.RecurrentWeightGradient(cells, new RecurrentWeightPass
            {
                Steps = steps, Batch = batch, Rows = rows, Hidden = h, Reverse = reverse,
                DRecur = dRecur, Outputs = At(y.Buffer, y.Offset), OutputStride = y.Stride, H0 = At(h0.Buffer, h0.Offset),
                PreviousHidden = previousHidden,
                Extra = keepsValue ? saved.Extra!.View : default, DWeightHH = Parameter(pass, ParameterSpec.WeightHH, g),
            });
            kernels.ColumnSums(dInput, rows, gh, gh, Parameter(pass, ParameterSpec.BiasIH, g), accumulate: true, sumScratch);
            kernels.ColumnSums(dRecur, rows, gh, gh, Parameter(pass, ParameterSpec.BiasHH, g), accumulate: true, sumScratch);
            // The layer input's gradient: this direction's dInput · W_ih, added to the other direction's when it wrote first.
            gemm.Sgemm(false, false, rows, inputSize, gh, 1, dInput, gh, wih, inputSize, pass.AccumulateDX ? 1 : 0, At(pass.DX.Buffer, pass.DX.Offset), pass.DX.Stride);
        }

        public void Pack(PackedBatch layout, ArrayView<float> padded, ArrayView<float> packed, int features) =>
            Gather(padded, tape.Packing!.Pack, packed, features);

        public void Unpack(PackedBatch layout, ArrayView<float> packed, ArrayView<float> padded, int features) =>
            Gather(packed, tape.Packing!.Unpack, padded, features);

        public void SortStates(PackedBatch layout, ArrayView<float> states, ArrayView<float> sorted, long elements, int hidden) =>
            Gather(states, tape.Packing!.Sort, sorted, hidden);

        public void UnsortStates(PackedBatch layout, ArrayView<float> sorted, ArrayView<float> states, long elements, int hidden) =>
            Gather(sorted, tape.Packing!.Unsort, states, hidden);

        /// <summary>destination row r = source row gather[r] (zeros for −1), rows of <paramref name="columns"/>.</summary>
        private void Gather(ArrayView<float> source, ArrayView<int> gather, ArrayView<float> destination, int columns)
        {
            if (gather.Length > 0 && columns > 0)
                backend._gpu.Kernels.GatherRows(new Index1D(gather.IntLength * columns), source, gather, destination, columns);
        }

        public void Dispose()
        {
            foreach (var buffer in _workspace) buffer.Dispose();
        }
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
