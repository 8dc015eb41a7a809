using System.Runtime.InteropServices;
using ILGPU;
using Recurrent.Ilgpu;

namespace Recurrent.Sequence;

/// <summary>
/// One forward pass of a recurrent stack as <see cref="RecurrentSequenceModel"/> drives it, on the buffers of its matrix
/// operations. Holds what backward needs, the final state (the next chained pass starts from it) and, after backward,
/// the gradient of the initial state (the previous chained pass ends with it). Disposing frees it.
/// </summary>
internal interface IRecurrentStackPass<TData> : IDisposable where TData : struct
{
    /// <summary>y [T, N, H].</summary>
    TData Output { get; }
}

/// <summary>
/// The recurrent stack of a <see cref="RecurrentSequenceModel"/> on the buffers <typeparamref name="TData"/> of the
/// model's matrix operations, so the layers around it stay where those operations run: on the host through the layer
/// API, on an ILGPU device through <see cref="IlgpuBackend"/>'s device-level entry (no host round trip at the boundary).
/// </summary>
internal interface IRecurrentStack<TData> where TData : struct
{
    /// <summary>
    /// Runs the stack over x [T, N, I] from <paramref name="previous"/>'s final state (zeros when null). With
    /// <paramref name="lengths"/> [N] (each in [1, T]; then without <paramref name="previous"/>) sequence n runs over its
    /// first lengths[n] steps only, as <see cref="RecurrentLayer.Forward"/> takes them: y is zero past its end, and
    /// backward ignores dy there and gives zero dx there.
    /// </summary>
    IRecurrentStackPass<TData> Forward(TData x, int steps, int batch, IRecurrentStackPass<TData>? previous, bool keepForBackward, int[]? lengths = null);

    /// <summary>
    /// Back-propagates dy [T, N, H] and the final-state gradient that <paramref name="next"/>'s backward left (zeros when
    /// null) through <paramref name="pass"/>: adds the parameter gradients into the host ones and returns dx [T, N, I],
    /// valid until the pass is disposed.
    /// </summary>
    TData Backward(IRecurrentStackPass<TData> pass, TData dy, IRecurrentStackPass<TData>? next);

    /// <summary>
    /// Starts a run of steps over <paramref name="batch"/> rows from a zero state, for generation and the step-by-step
    /// training schedule, with the weights prepared here, once (for backward too with <paramref name="keepForBackward"/>)
    /// and resident until the run is disposed: a chain of whole-sequence passes with T = 1 would prepare (pack, upload)
    /// them at every step, forward and backward.
    /// </summary>
    IRecurrentStepRun<TData> BeginSteps(int batch, bool keepForBackward);
}

/// <summary>
/// A stack that can read its input rows straight from a table (an embedding lookup: x[r] = table[ids[r]], zeros for −1),
/// which lets a backend project each table row once instead of each of its T·N uses
/// (<see cref="RecurrentLayer.ForwardFromTable"/>). The sequence model uses it, when offered, for token outputs.
/// </summary>
internal interface ITableInputStack<TData, TIds> where TData : struct where TIds : struct
{
    /// <summary>The stack over input rows table [V, I] selected by ids [T·N], from a zero state; <paramref name="lengths"/> as in <see cref="IRecurrentStack{TData}.Forward"/>.</summary>
    IRecurrentStackPass<TData> ForwardFromTable(TData table, int vocab, TIds ids, int steps, int batch, bool keepForBackward, int[]? lengths = null);

    /// <summary>Back-propagates dy [T, N, H] through such a pass (zero final-state gradient), adding the table's gradient into <paramref name="tableGradient"/> [V, I].</summary>
    void BackwardFromTable(IRecurrentStackPass<TData> pass, TData dy, TData tableGradient);
}

/// <summary>
/// A run of steps of a stack from a zero state (<see cref="IRecurrentStack{TData}.BeginSteps"/>). Disposing frees what it
/// holds (resident weights, tapes).
/// </summary>
internal interface IRecurrentStepRun<TData> : IDisposable where TData : struct
{
    /// <summary>
    /// One step: x [N, I] → y [N, H], the top layer's output, valid until the next step (with keepForBackward: until the run
    /// is disposed). With keepForBackward the run keeps x (the caller's slice, unchanged until the step's backward).
    /// </summary>
    TData Step(TData x);

    /// <summary>
    /// Back-propagates the latest step not back-propagated yet (so the steps go back from the last to the first): dy [N, H]
    /// is the gradient of its output, to which the run adds the state gradient the later step's backward left (zeros for the
    /// last step). Adds the parameter gradients into the host ones and returns dx [N, I], valid until the next call.
    /// </summary>
    TData Backward(TData dy);
}

/// <summary>The stack through <see cref="RecurrentLayer"/>'s API, on host memory, whatever its backend.</summary>
internal sealed class HostRecurrentStack(RecurrentLayer layer)
    : IRecurrentStack<Memory<float>>, ITableInputStack<Memory<float>, Memory<int>>
{
    private sealed class StepRun(RecurrentStepper stepper, int batch, bool keepForBackward) : IRecurrentStepRun<Memory<float>>
    {
        private RecurrentStepState _state = stepper.InitialState(batch);
        // With keepForBackward, every step until its backward; the state gradient the latest backward left.
        private readonly List<RecurrentStepResult> _steps = [];
        private FloatTensor? _dHidden, _dCell;

        public Memory<float> Step(Memory<float> x)
        {
            // Unchecked as the passes are: a non-finite value propagates to the outputs instead of being refused. x is the
            // engine's own slice, unchanged until this step's backward.
            var step = stepper.StepUnchecked(AsTensor(x, batch, stepper.Layer.Config.InputSize), _state, keepForBackward, inputIsPrivate: true);
            _state = step.State;
            if (keepForBackward) _steps.Add(step);
            return step.Output.Memory;
        }

        public Memory<float> Backward(Memory<float> dy)
        {
            if (_steps.Count == 0) throw new InvalidOperationException("no step of the run is left to back-propagate.");
            var step = _steps[^1];
            _steps.RemoveAt(_steps.Count - 1);
            var gradients = stepper.BackwardUnchecked(step, AsTensor(dy, batch, stepper.Layer.Config.HiddenSize), _dHidden, _dCell);
            step.Dispose();
            (_dHidden, _dCell) = (gradients.Hidden, gradients.Cell);
            return gradients.Input.Memory;
        }

        public void Dispose()
        {
            foreach (var step in _steps) step.Dispose();
            stepper.Dispose();
        }
    }

    /// <summary>
    /// Through <see cref="RecurrentLayer.CreateStepper"/>: resident weights on the native and ILGPU backends, T = 1 passes on the reference. A
    /// run's stepper is made per call, so the weights it packs are those of this call (an SGD step between runs is seen).
    /// </summary>
    public IRecurrentStepRun<Memory<float>> BeginSteps(int batch, bool keepForBackward) =>
        new StepRun(layer.CreateStepper(training: keepForBackward), batch, keepForBackward);

    private sealed class Pass(RnnForwardResult result) : IRecurrentStackPass<Memory<float>>
    {
        public RnnForwardResult Result { get; } = result;
        public RnnInputGradients? Gradients { get; set; }
        public Memory<float> Output => Result.Output.Memory;
        public void Dispose() => Result.Dispose();
    }

    public IRecurrentStackPass<Memory<float>> Forward(Memory<float> x, int steps, int batch, IRecurrentStackPass<Memory<float>>? previous, bool keepForBackward,
        int[]? lengths = null)
    {
        var state = (previous as Pass)?.Result;
        // The engine keeps each pass's input slice until its backward, and shapes are its own: no copy, no checks, and a
        // non-finite value (a NaN parameter) propagates to the loss instead of being refused as an argument.
        return new Pass(layer.Run(AsTensor(x, steps, batch, layer.Config.InputSize), state?.HiddenState, state?.CellState, keepForBackward, inputIsPrivate: true,
            lengths));
    }

    public Memory<float> Backward(IRecurrentStackPass<Memory<float>> pass, Memory<float> dy, IRecurrentStackPass<Memory<float>>? next)
    {
        var ours = (Pass)pass;
        var after = (next as Pass)?.Gradients;
        int steps = ours.Result.Output.Shape[0], batch = ours.Result.Output.Shape[1];
        var tape = ours.Result.Tape ?? throw new InvalidOperationException("the stack's forward pass kept nothing for backward.");
        ours.Gradients = layer.BackwardUnchecked(ours.Result, tape, AsTensor(dy, steps, batch, layer.Config.OutputSize), after?.InitialHidden, after?.InitialCell);
        return ours.Gradients.Input.Memory;
    }

    public IRecurrentStackPass<Memory<float>> ForwardFromTable(Memory<float> table, int vocab, Memory<int> ids, int steps, int batch, bool keepForBackward,
        int[]? lengths = null) =>
        // The pass keeps the ids until backward: a copy, as the caller's token buffer is reused.
        new Pass(layer.ForwardFromTableUnchecked(table, vocab, ids.ToArray(), steps, batch, keepForBackward, lengths));

    public void BackwardFromTable(IRecurrentStackPass<Memory<float>> pass, Memory<float> dy, Memory<float> tableGradient)
    {
        var result = ((Pass)pass).Result;
        layer.BackwardFromTableUnchecked(result, AsTensor(dy, result.Output.Shape[0], result.Output.Shape[1], layer.Config.OutputSize), tableGradient);
    }

    /// <summary>A tensor over <paramref name="data"/>: a view of its array when it has one (host memory always does), else a copy.</summary>
    private static FloatTensor AsTensor(Memory<float> data, params int[] shape) =>
        MemoryMarshal.TryGetArray<float>(data, out var segment) ? FloatTensor.View(segment.Array!, segment.Offset, shape) : new(data.ToArray(), shape);
}

/// <summary>The stack on its <see cref="IlgpuBackend"/>'s device, through the backend's device-level entries.</summary>
internal sealed class IlgpuRecurrentStack(RecurrentLayer layer, IlgpuBackend backend) : IRecurrentStack<ArrayView<float>>
{
    /// <summary>
    /// A run of device steps on weights uploaded once (<see cref="IlgpuResidentWeights"/>): each step a T = 1 device pass
    /// chained to the step before's final state, its input, output and states never leaving the device. The parameter
    /// gradients of its backward steps add up on the device and reach the host once, when the first step is back-propagated.
    /// </summary>
    private sealed class StepRun(IlgpuBackend backend, IlgpuResidentWeights weights, int batch, bool keepForBackward) : IRecurrentStepRun<ArrayView<float>>
    {
        // Without backward only the latest pass is kept (the next step starts from its state).
        private readonly List<IlgpuBackend.DevicePass?> _passes = [];
        private PooledBuffer? _gradients;
        private int _forwardLeft = -1;

        public ArrayView<float> Step(ArrayView<float> x)
        {
            if (_forwardLeft >= 0) throw new InvalidOperationException("a run's steps all come before its backward steps.");
            if (weights.Parameters.Version != weights.Version)
                throw new InvalidOperationException("the stack's parameters were replaced during a run of steps; its resident weights would be stale.");
            var previous = _passes.Count > 0 ? _passes[^1] : null;
            var pass = backend.StepOnDevice(weights, x, batch, previous is null ? default : previous.HN.View, previous?.CN?.View ?? default, keepForBackward);
            if (!keepForBackward)
            {
                previous?.Dispose();
                _passes.Clear();
            }
            _passes.Add(pass);
            return pass.Output;
        }

        public ArrayView<float> Backward(ArrayView<float> dy)
        {
            if (!keepForBackward) throw new InvalidOperationException("the run was begun without keepForBackward.");
            if (_forwardLeft < 0) _forwardLeft = _passes.Count;
            if (_forwardLeft == 0) throw new InvalidOperationException("every step of the run was back-propagated already.");
            int t = --_forwardLeft;
            var next = t + 1 < _passes.Count ? _passes[t + 1] : null;
            _gradients ??= backend.RentGradients(weights);
            var dx = backend.StepBackwardOnDevice(weights, _passes[t]!, dy, next?.Dh0 is null ? default : next.Dh0.View,
                next?.Dc0 is null ? default : next.Dc0.View, _gradients);
            // Step t + 1 is done with: its dx was valid until this call, and its dh0, dc0 were read just now.
            next?.Dispose();
            if (next is not null) _passes[t + 1] = null;
            if (t == 0)
                lock (weights.Parameters.GradientLock)
                    backend.FlushGradients(weights.Parameters, _gradients);
            return dx;
        }

        public void Dispose()
        {
            foreach (var pass in _passes) pass?.Dispose();
            _passes.Clear();
            _gradients?.Dispose();
            _gradients = null;
            weights.Dispose();
        }
    }

    /// <summary>
    /// Uploads the weights once for the run; a run is begun per call, so the weights are those of this call (an SGD step
    /// between runs is seen).
    /// </summary>
    public IRecurrentStepRun<ArrayView<float>> BeginSteps(int batch, bool keepForBackward) =>
        new StepRun(backend, backend.UploadResident(layer.Parameters), batch, keepForBackward);

    private sealed class Pass(IlgpuBackend.DevicePass pass) : IRecurrentStackPass<ArrayView<float>>
    {
        public IlgpuBackend.DevicePass Device { get; } = pass;
        public ArrayView<float> Output => Device.Output;
        public void Dispose() => Device.Dispose();
    }

    public IRecurrentStackPass<ArrayView<float>> Forward(ArrayView<float> x, int steps, int batch, IRecurrentStackPass<ArrayView<float>>? previous, bool keepForBackward,
        int[]? lengths = null) =>
        new Pass(backend.ForwardOnDevice(layer.Parameters, x, steps, batch, (previous as Pass)?.Device, keepForBackward, lengths));

    public ArrayView<float> Backward(IRecurrentStackPass<ArrayView<float>> pass, ArrayView<float> dy, IRecurrentStackPass<ArrayView<float>>? next) =>
        backend.BackwardOnDevice(layer.Parameters, ((Pass)pass).Device, dy, (next as Pass)?.Device);
}
