using Recurrent.Kernels.Cpu;
using Recurrent.Stacking;

namespace Recurrent;

/// <summary>
/// The native C++ CPU library as a backend: per layer and direction, the input projection of all T steps as one
/// matrix product, per step the recurrent product (W_hh packed once per call) and one fused pointwise kernel
/// (AVX-512, AVX2 or portable, chosen at run time; see <see cref="NativeLibrary.Isa"/>), and in backward the
/// weight gradients as single products over all T·N rows. A variable-length batch runs in cuDNN's packed layout (see
/// <see cref="PackedBatch"/>): step t computes only the sequences still running, so a pass costs its real tokens. The
/// default backend of <see cref="RecurrentLayer"/>.
/// </summary>
/// <remarks>
/// Training memory per token (T·N of them, or the real tokens of a variable-length batch) of each layer and direction,
/// besides the layer inputs that the stacking (<see cref="Stacking.RecurrentStacking{TBuffer}"/>) keeps: LSTM 24·H bytes, GRU reset-after 20·H, GRU
/// reset-before 16·H, Elman 4·H. Inference keeps O(N·H) between steps and frees its per-call workspace (the [T·N, G·H] input
/// projection) on return. The native memory of a training pass is freed when its <see cref="RnnForwardResult"/>
/// is disposed (or finalized).
/// Thread-safety: safe; an instance holds no state, and the native library serves concurrent calls (a call that finds the
/// library's thread pool busy runs on its own thread instead of waiting).
/// <para>Lifetime: holds nothing (not IDisposable); a training pass's native memory is in its tape, and a stepper's resident weights are freed by disposing the <see cref="RecurrentStepper"/>.</para>
/// </remarks>
/// <param name="fused">
/// True (the default) for the fused pointwise kernels; false runs every elementwise operation of a cell (bias add,
/// each activation, each product and sum of the state update) as its own pass over whole buffers, as a framework
/// without fusion does: the baseline that shows what fusion is worth.
/// </param>
public sealed class NativeCpuBackend(bool fused = true) : DirectionwiseBackend, IStepperFactory
{
    /// <summary>A <see cref="NativeRecurrentStepper"/>: every layer's weights packed once, resident in native memory.</summary>
    RecurrentStepper IStepperFactory.CreateStepper(RecurrentLayer layer, bool training) => NativeRecurrentStepper.Create(layer, Fused, training);

    /// <summary>The fused instance layers use when given no backend.</summary>
    internal static NativeCpuBackend Default { get; } = new();

    /// <summary>Whether the pointwise work runs fused (one pass per step) or as one pass per operation.</summary>
    public bool Fused { get; } = fused;

    /// <inheritdoc />
    public override string Name => Fused ? "native-cpu" : "native-cpu-unfused";

    /// <inheritdoc />
    protected internal override bool SupportsTableInput => true;

    internal override IDirectionCompute<Memory<float>> Compute(RnnParameters parameters, TableInput? table, Memory<float> tableGradient) =>
        new DirectionCompute(this, parameters, table, tableGradient);

    /// <summary>One direction pass on the native library: the stacking's arguments as spans, one call to rc_rnn_forward or rc_rnn_backward.</summary>
    private sealed class DirectionCompute(NativeCpuBackend backend, RnnParameters parameters, TableInput? table, Memory<float> tableGradient)
        : HostDirectionCompute<float>
    {
        public override IDisposable? Forward(in DirectionPass<Memory<float>> pass, bool keepForBackward)
        {
            var config = parameters.Config;
            int n = pass.Batch, h = pass.HiddenSize;
            return NativeRnn.Forward(config.Cell, backend.Fused, pass.Steps, n, pass.InputSize, h, pass.Reverse,
                Value(pass, 0), Value(pass, 1), Value(pass, 2), Value(pass, 3), Rows(pass),
                State(pass.H0, n, h), State(pass.C0, n, h), From(pass.Y), State(pass.HN, n, h), State(pass.CN, n, h), keepForBackward, pass.Y.Stride,
                BatchSizes(pass), Own(pass, p => p.Value.Memory));
        }

        public override void Backward(in DirectionPass<Memory<float>> pass, IDisposable saved)
        {
            if (saved is not NativeRnnTape tape)
                throw new ArgumentException($"saved: expected what the {backend.Name} backend's forward pass kept, got {saved?.GetType().Name ?? "null"}.", nameof(saved));
            // The tape's own batch sizes shape the backward pass; a stack hands the same ones again.
            if (!BatchSizes(pass).SequenceEqual(tape.BatchSizes))
                throw new ArgumentException("pass: its batch sizes differ from those of the forward pass that made saved.", nameof(pass));
            int n = pass.Batch, h = pass.HiddenSize;
            NativeRnn.Backward(tape, Value(pass, 0), Value(pass, 1), Rows(pass),
                From(pass.DY), State(pass.DHN, n, h), State(pass.DCN, n, h), From(pass.DX), pass.FromTable ? tableGradient.Span : default,
                State(pass.DH0, n, h), State(pass.DC0, n, h), Grad(pass, 0), Grad(pass, 1), Grad(pass, 2), Grad(pass, 3),
                pass.DY.Stride, pass.DX.Stride, accumulateDX: pass.AccumulateDX, Own(pass, p => p.Value.Memory), Own(pass, p => p.Grad.Memory));
        }

        // By spec position: weight_ih, weight_hh, bias_ih, bias_hh, the four every cell lists first (ParameterSpec.RnnBase).
        private Span<float> Value(in DirectionPass<Memory<float>> pass, int position) => parameters[pass.Layer, pass.Direction, position].Value.Span;

        private Span<float> Grad(in DirectionPass<Memory<float>> pass, int position) => parameters[pass.Layer, pass.Direction, position].Grad.Span;

        // The cell's own parameters (or their gradients), after those four in the cell definition's order.
        private Memory<float>[] Own(in DirectionPass<Memory<float>> pass, Func<Parameter, Memory<float>> part)
        {
            int count = parameters.Config.Definition.Parameters.Count;
            if (count == ParameterSpec.RnnBase.Count) return [];
            var own = new Memory<float>[count - ParameterSpec.RnnBase.Count];
            for (int k = 0; k < own.Length; k++) own[k] = part(parameters[pass.Layer, pass.Direction, ParameterSpec.RnnBase.Count + k]);
            return own;
        }

        private static ReadOnlySpan<int> BatchSizes(in DirectionPass<Memory<float>> pass) =>
            pass.Packed is null ? default : pass.Packed.BatchSizes.AsSpan(0, pass.Steps);

        private RnnInputRows Rows(in DirectionPass<Memory<float>> pass) =>
            pass.FromTable ? RnnInputRows.FromTable(table!.Table.Span, table.Vocab, table.Ids) : RnnInputRows.Dense(From(pass.X), pass.X.Stride);
    }
}
