using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Recurrent.Ilgpu;
using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Ilgpu
{
    /// <summary>
    /// A stack's parameters uploaded once (one copy of the flat storage) and kept on the device, for steps that must not
    /// upload them again: <see cref="IlgpuRecurrentStepper"/> and the sequence models' device-level step runs. The values are
    /// those of <see cref="Version"/>; whoever steps on them refuses a later version. Disposing returns the buffer to the pool.
    /// </summary>
    internal sealed class IlgpuResidentWeights(IlgpuBackend backend, RnnParameters parameters, PooledBuffer weights, long[] offsets, int version) : IDisposable
    {
        public IlgpuBackend Backend { get; } = backend;
        public RnnParameters Parameters { get; } = parameters;
        /// <summary>Every parameter value, laid out as the host's flat storage.</summary>
        public PooledBuffer Weights { get; } = weights;
        /// <summary>Each parameter's offset in <see cref="Weights"/> (its own, in the flat storage).</summary>
        public long[] Offsets { get; } = offsets;
        /// <summary>The parameters' version when they were uploaded.</summary>
        public int Version { get; } = version;

        public void Dispose() => Weights.Dispose();
    }
}

namespace Recurrent
{
    public sealed partial class IlgpuBackend : IStepperFactory
    {
        /// <summary>An <see cref="IlgpuRecurrentStepper"/>: the parameters uploaded once and kept on the device.</summary>
        RecurrentStepper IStepperFactory.CreateStepper(RecurrentLayer layer, bool training) => IlgpuRecurrentStepper.Create(layer, this, training);

        /// <summary>
        /// Uploads <paramref name="parameters"/> once, to step on (<see cref="StepOnDevice"/>, <see cref="StepFromHost"/>) without
        /// uploading them again. Inside a pass of the parameters, so no Load or Reset changes them between the copy and the version read.
        /// </summary>
        internal IlgpuResidentWeights UploadResident(RnnParameters parameters)
        {
            using var pass = parameters.EnterPass();
            lock (_gate)
            {
                var (weights, offsets) = UploadParameters(parameters);
                return new IlgpuResidentWeights(this, parameters, weights, offsets, parameters.Version);
            }
        }

        /// <summary>
        /// One step (T = 1) of the stack on <paramref name="resident"/> weights, on device data: x [N, I] (copied), from h0, c0
        /// [L, N, H] (copied; zeros when invalid). The returned pass holds y [1, N, H], hN, cN and, with
        /// <paramref name="keepForBackward"/>, the tape for <see cref="StepBackwardOnDevice"/>.
        /// </summary>
        internal DevicePass StepOnDevice(IlgpuResidentWeights resident, ArrayView<float> x, int batch, ArrayView<float> h0, ArrayView<float> c0, bool keepForBackward)
        {
            RequireIndexable(resident.Parameters.Config, 1, batch);
            lock (_gate) return ForwardOnDeviceLocked(resident.Parameters, x, 1, batch, h0, c0, keepForBackward, packed: null, resident);
        }

        /// <summary>
        /// Back-propagates a step of <see cref="StepOnDevice"/> from dy [N, H] and the final-state gradients dhN, dcN [L, N, H]
        /// (zeros when invalid): leaves dx, dh0, dc0 in <paramref name="pass"/>, returns dx. The parameter gradients add into
        /// <paramref name="gradients"/> on the device (laid out as the flat storage; see <see cref="FlushGradients"/>).
        /// </summary>
        internal ArrayView<float> StepBackwardOnDevice(IlgpuResidentWeights resident, DevicePass pass, ArrayView<float> dy, ArrayView<float> dhN,
            ArrayView<float> dcN, PooledBuffer gradients)
        {
            lock (_gate) return BackwardOnDeviceLocked(resident.Parameters, pass, dy, dhN, dcN, gradients);
        }

        /// <summary>A zeroed device buffer for the parameter gradients of <paramref name="resident"/>'s steps.</summary>
        internal PooledBuffer RentGradients(IlgpuResidentWeights resident)
        {
            var buffer = _pool.Rent(resident.Weights.Length, "step parameter gradients");
            buffer.Clear();
            return buffer;
        }

        /// <summary>Adds <paramref name="gradients"/> (device) into the parameters' host gradients, one download, and zeroes them.</summary>
        internal void FlushGradients(RnnParameters parameters, PooledBuffer gradients)
        {
            lock (_gate)
            {
                AddGradientsToHost(parameters, gradients);
                gradients.Clear();
            }
        }

        /// <summary>
        /// One step from host data: uploads x [N, I], h0, c0 [L, N, H], runs <see cref="StepOnDevice"/>, downloads
        /// <paramref name="output"/> [N, H], <paramref name="hN"/>, <paramref name="cN"/>. Returns the pass with its tape
        /// when <paramref name="keepForBackward"/>, else null.
        /// </summary>
        internal DevicePass? StepFromHost(IlgpuResidentWeights resident, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor output, FloatTensor hN, FloatTensor? cN, bool keepForBackward)
        {
            var config = resident.Parameters.Config;
            int batch = x.Shape[0];
            RequireIndexable(config, 1, batch);
            lock (_gate)
            {
                DevicePass? pass = null;
                try
                {
                    using var xBuffer = Upload(x.Memory, "x [N, I]");
                    using var h0Buffer = Upload(h0.Memory, "h0");
                    using var c0Buffer = c0 is null ? null : Upload(c0.Memory, "c0");
                    pass = ForwardOnDeviceLocked(resident.Parameters, xBuffer.View, 1, batch, h0Buffer.View, c0Buffer?.View ?? default, keepForBackward,
                        packed: null, resident);
                    SettleBeforeDownloads("step");
                    Transfer(() => pass.Output.SubView(0, output.Length).CopyToCPU(ref MemoryMarshal.GetReference(output.Span), output.Length));
                    Download(pass.HN, hN.Memory);
                    if (cN is not null) Download(pass.CN!, cN.Memory);
                    _gpu.Synchronize("step");
                    if (keepForBackward) return pass;
                    pass.Dispose();
                    return null;
                }
                catch (Exception e)
                {
                    pass?.Dispose();
                    throw Wrap(e, "step", config, 1, batch);
                }
            }
        }

        /// <summary>
        /// Back-propagates a step of <see cref="StepFromHost"/>: uploads dy [N, H] and <paramref name="dh"/>, <paramref name="dc"/>
        /// [L, N, H] (the new state's gradients), downloads dx into <paramref name="dx"/> [N, I] and the gradients of the state
        /// the step started from into <paramref name="dh"/>, <paramref name="dc"/>; adds the parameter gradients into the
        /// host ones (the caller holds the parameters' gradient lock).
        /// </summary>
        internal void StepBackwardFromHost(IlgpuResidentWeights resident, DevicePass pass, FloatTensor dy, FloatTensor dh, FloatTensor? dc, FloatTensor dx)
        {
            var config = resident.Parameters.Config;
            lock (_gate)
            {
                try
                {
                    using var dyBuffer = Upload(dy.Memory, "dy [N, H]");
                    using var dhBuffer = Upload(dh.Memory, "dhN");
                    using var dcBuffer = dc is null ? null : Upload(dc.Memory, "dcN");
                    BackwardOnDeviceLocked(resident.Parameters, pass, dyBuffer.View, dhBuffer.View, dcBuffer?.View ?? default, gradientSink: null);
                    SettleBeforeDownloads("step backward");
                    Download(pass.Dx!, dx.Memory);
                    Download(pass.Dh0!, dh.Memory);
                    if (dc is not null) Download(pass.Dc0!, dc.Memory);
                    _gpu.Synchronize("step backward");
                }
                catch (Exception e)
                {
                    throw Wrap(e, "step backward", config, 1, pass.Tape.Batch);
                }
            }
        }
    }

    /// <summary>
    /// The ILGPU backend's stepper: the parameters uploaded once, when it is made (<see cref="IlgpuResidentWeights"/>), and
    /// every step and backward step the device stacking with T = 1 on them. States and gradients are host tensors, as the
    /// public API hands them: a step uploads x and the state and downloads the output and the new state; its tape stays
    /// on the device.
    /// </summary>
    internal sealed class IlgpuRecurrentStepper : RecurrentStepper
    {
        private readonly IlgpuResidentWeights _weights;

        private IlgpuRecurrentStepper(RecurrentLayer layer, IlgpuResidentWeights weights, bool training) : base(layer, weights.Version, training) => _weights = weights;

        public static IlgpuRecurrentStepper Create(RecurrentLayer layer, IlgpuBackend backend, bool training) =>
            new(layer, backend.UploadResident(layer.Parameters), training);

        public override bool HasResidentWeights => true;

        private protected override RecurrentStepResult StepCore(FloatTensor x, RecurrentStepState state, bool keepForBackward, bool inputIsPrivate)
        {
            var config = Layer.Config;
            int batch = x.Shape[0];
            int[] shape = config.StateShape(batch);
            var output = new FloatTensor(batch, config.HiddenSize);
            var h = new FloatTensor(shape);
            var c = state.Cell is null ? null : new FloatTensor(shape);
            // The device pass copies x and the state into its tape, so the caller's tensors are never read again.
            var pass = _weights.Backend.StepFromHost(_weights, x, state.Hidden, state.Cell, output, h, c, keepForBackward);
            return NewResult(batch, output, h, c, pass);
        }

        private protected override FloatTensor BackwardCore(object tape, int batch, FloatTensor dOutput, FloatTensor dh, FloatTensor? dc)
        {
            var dx = new FloatTensor(batch, Layer.Config.InputSize);
            // The host gradients take plain +=; one backward at a time per layer, as RecurrentLayer.Backward.
            lock (Layer.Parameters.GradientLock)
                _weights.Backend.StepBackwardFromHost(_weights, (IlgpuBackend.DevicePass)tape, dOutput, dh, dc, dx);
            return dx;
        }

        private protected override void Release() => _weights.Dispose();
    }
}
