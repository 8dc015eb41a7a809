using Recurrent.Kernels.Cpu;

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
/// besides the layer inputs that <see cref="DirectionwiseBackend"/> keeps: LSTM 24·H bytes, GRU reset-after 20·H, GRU
/// reset-before 16·H, Elman 4·H. Inference keeps O(N·H) between steps and frees its per-call workspace (the [T·N, G·H] input
/// projection) on return. The native memory of a training pass is freed when its <see cref="RnnForwardResult"/>
/// is disposed (or finalized).
/// Thread-safe: an instance holds no state, and the native library serves concurrent calls (a call that finds the
/// library's thread pool busy runs on its own thread instead of waiting).
/// </remarks>
/// <param name="fused">
/// True (the default) for the fused pointwise kernels; false runs every elementwise operation of a cell (bias add,
/// each activation, each product and sum of the state update) as its own pass over whole buffers, as a framework
/// without fusion does: the baseline that shows what fusion is worth.
/// </param>
public sealed class NativeCpuBackend(bool fused = true) : DirectionwiseBackend
{
    /// <summary>The fused instance layers use when given no backend.</summary>
    internal static NativeCpuBackend Default { get; } = new();

    /// <summary>Whether the pointwise work runs fused (one pass per step) or as one pass per operation.</summary>
    public bool Fused { get; } = fused;

    /// <inheritdoc />
    public override string Name => Fused ? "native-cpu" : "native-cpu-unfused";

    /// <inheritdoc />
    protected internal override bool SupportsTableInput => true;

    /// <inheritdoc />
    protected override IDisposable? ForwardDirection(in DirectionForward call, bool keepForBackward) =>
        NativeRnn.Forward(call.Cell, Fused, call.Steps, call.Batch, call.InputSize, call.HiddenSize, call.Reverse,
            call.WeightIH, call.WeightHH, call.BiasIH, call.BiasHH, Rows(call.X, call.InputTable, call.InputIds, call.InputSize),
            call.H0, call.C0, call.Y, call.HN, call.CN, keepForBackward, call.YStride, call.BatchSizes);

    /// <inheritdoc />
    protected override void BackwardDirection(in DirectionBackward call, IDisposable saved)
    {
        if (saved is not NativeRnnTape tape)
            throw new ArgumentException($"saved: expected what the {Name} backend's forward pass kept, got {saved?.GetType().Name ?? "null"}.", nameof(saved));
        // The tape's own batch sizes shape the backward pass; a stack hands the same ones again.
        if (!call.BatchSizes.SequenceEqual(tape.BatchSizes))
            throw new ArgumentException("call: its batch sizes differ from those of the forward pass that made saved.", nameof(call));
        NativeRnn.Backward(tape, call.WeightIH, call.WeightHH, Rows(call.X, call.InputTable, call.InputIds, call.InputSize),
            call.DY, call.DHN, call.DCN, call.DX, call.DInputTable, call.DH0, call.DC0, call.DWeightIH, call.DWeightHH, call.DBiasIH, call.DBiasHH,
            call.DYStride, accumulateDX: call.AccumulateDX);
    }

    private static RnnInputRows Rows(ReadOnlySpan<float> x, ReadOnlySpan<float> table, ReadOnlySpan<int> ids, int inputSize) =>
        ids.IsEmpty ? RnnInputRows.Dense(x) : RnnInputRows.FromTable(table, table.Length / inputSize, ids);
}
