using Recurrent.Stacking;

namespace Recurrent.Reference;

/// <summary>Every parameter of a stack in double precision, in <see cref="RnnConfig.Parameters"/> order.</summary>
/// <remarks>Thread-safety: plain arrays: safe to read from several threads, to write from one while none reads. Lifetime: managed; nothing to free.</remarks>
public sealed class ReferenceWeights
{
    /// <summary>Zeros shaped for <paramref name="config"/>.</summary>
    public ReferenceWeights(RnnConfig config)
    {
        Config = config;
        Values = config.Parameters().Select(p => new double[p.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
    }

    /// <summary>The configuration.</summary>
    public RnnConfig Config { get; }

    /// <summary>One flat array a parameter, in PyTorch's order.</summary>
    public double[][] Values { get; }

    /// <summary>The parameters of one layer and direction, in spec order.</summary>
    public DirectionWeights Direction(int layer, int direction)
    {
        int count = Config.Definition.Parameters.Count;
        return new DirectionWeights(Values.AsSpan((layer * Config.Directions + direction) * count, count).ToArray());
    }

    /// <summary>Widens float parameters.</summary>
    public static ReferenceWeights From(RnnParameters parameters)
    {
        var weights = new ReferenceWeights(parameters.Config);
        // One pass over the flat values: the parameters lie in this order, back to back.
        ReadOnlySpan<float> values = parameters.Values.Span;
        for (int i = 0, offset = 0; i < weights.Values.Length; offset += weights.Values[i].Length, i++)
            Widen(values.Slice(offset, weights.Values[i].Length), weights.Values[i]);
        return weights;
    }

    /// <summary>The values as doubles.</summary>
    internal static double[] Widen(ReadOnlySpan<float> values)
    {
        var wide = new double[values.Length];
        Widen(values, wide);
        return wide;
    }

    private static void Widen(ReadOnlySpan<float> values, Span<double> destination)
    {
        for (int i = 0; i < values.Length; i++) destination[i] = values[i];
    }
}

/// <summary>The result of <see cref="ReferenceRnn.Forward"/>: outputs, final states and what backward needs.</summary>
/// <remarks>Thread-safety: plain arrays: safe to read from several threads, to write from one while none reads. Lifetime: managed; nothing to free.</remarks>
public sealed class ReferenceForward
{
    internal ReferenceForward(RnnConfig config, ReferenceWeights weights, int steps, int batch, int[]? lengths)
    {
        (Config, Weights, Steps, Batch, Lengths) = (config, weights, steps, batch, lengths);
        Output = new double[steps * batch * config.OutputSize];
        int states = config.NumLayers * config.Directions * batch * config.HiddenSize;
        HiddenN = new double[states];
        CellN = config.Cell.HasCellState() ? new double[states] : null;
    }

    /// <summary>The configuration.</summary>
    public RnnConfig Config { get; }
    /// <summary>The weights used.</summary>
    public ReferenceWeights Weights { get; }
    /// <summary>T.</summary>
    public int Steps { get; }
    /// <summary>N.</summary>
    public int Batch { get; }
    /// <summary>The per-sequence lengths [N] the pass ran with (a copy), or null when every sequence ran all T steps.</summary>
    public IReadOnlyList<int>? Lengths { get; }
    /// <summary>y [T, N, D·H]; zero at a sequence's steps past its length.</summary>
    public double[] Output { get; }
    /// <summary>hN [L·D, N, H]: each sequence's state at its own end (the reverse direction's: after step 0).</summary>
    public double[] HiddenN { get; }
    /// <summary>cN [L·D, N, H] for LSTM, else null.</summary>
    public double[]? CellN { get; }

    /// <summary>Each layer's input and each direction's steps, for <see cref="ReferenceRnn.Backward"/>.</summary>
    internal StackingTape<Memory<double>> Tape { get; set; } = null!;
}

/// <summary>Gradients from <see cref="ReferenceRnn.Backward"/>.</summary>
/// <remarks>Thread-safety: the record is immutable, its arrays are the caller's plain memory. Lifetime: managed; nothing to free.</remarks>
/// <param name="Input">dx [T, N, I].</param>
/// <param name="HiddenZero">dh0 [L·D, N, H].</param>
/// <param name="CellZero">dc0 [L·D, N, H] for LSTM, else null.</param>
/// <param name="Weights">The gradient of every parameter.</param>
public sealed record ReferenceGradients(double[] Input, double[] HiddenZero, double[]? CellZero, ReferenceWeights Weights);

/// <summary>
/// The reference implementation of a whole stack (layers, directions) in double precision: plain code,
/// checked by finite differences and by PyTorch, against which every fast backend is tested. The layers and directions
/// are stacked by <see cref="RecurrentStacking{TBuffer}"/>, as every backend's are; each direction is
/// <see cref="ReferenceCell"/>'s time loop. Thread-safety: safe; pure functions of their arguments.
/// </summary>
/// <remarks>Lifetime: holds nothing.</remarks>
public static class ReferenceRnn
{
    /// <summary>
    /// Runs the stack over x [T, N, I] from h0 and c0 ([L·D, N, H]; zeros when null). With <paramref name="lengths"/>
    /// ([N], each in [1, T], any order; null = all T) sequence n is x[0 … lengths[n]−1, n] alone, as PyTorch's
    /// <c>pack_padded_sequence(x, lengths, enforce_sorted=False)</c> → RNN → <c>pad_packed_sequence(total_length=T)</c>:
    /// its outputs past its end are zero, its final states are those at its own end, and x past its end is never read.
    /// </summary>
    /// <exception cref="ArgumentException">x has not T·N·I elements, or <paramref name="lengths"/> is invalid
    /// (see <see cref="SequenceLengths.Validate"/>).</exception>
    public static ReferenceForward Forward(ReferenceWeights weights, double[] x, int steps, int batch, double[]? h0 = null, double[]? c0 = null,
        int[]? lengths = null)
    {
        var config = weights.Config;
        if (x.Length != steps * batch * config.InputSize)
            throw new ArgumentException($"x: expected {steps}·{batch}·{config.InputSize} elements, got {x.Length}.", nameof(x));
        var packed = PackedBatch.Create(lengths, steps, batch);
        lengths = (int[]?)lengths?.Clone();   // kept for backward; the caller's array may change after this returns
        var result = new ReferenceForward(config, weights, steps, batch, lengths);
        // Backward reads x again (the tape keeps it as layer 0's input): a copy keeps it the pass's own.
        result.Tape = RecurrentStacking<Memory<double>>.Forward(new DirectionCompute(weights, null), config, steps, batch, packed,
            (double[])x.Clone(), fromTable: false, h0 ?? new double[result.HiddenN.Length], result.CellN is null ? default : c0 ?? new double[result.CellN.Length],
            result.Output, result.HiddenN, result.CellN, keepForBackward: true)!;
        return result;
    }

    /// <summary>
    /// Back-propagates from dy [T, N, D·H], dhN and dcN ([L·D, N, H]; zeros when null) through the forward
    /// pass <paramref name="forward"/>, with the lengths it ran with: dy at a sequence's steps past its length is
    /// ignored, and dx there is zero.
    /// </summary>
    public static ReferenceGradients Backward(ReferenceForward forward, double[] dy, double[]? dhN = null, double[]? dcN = null)
    {
        var config = forward.Config;
        var grads = new ReferenceGradients(new double[forward.Steps * forward.Batch * config.InputSize], new double[forward.HiddenN.Length],
            forward.CellN is null ? null : new double[forward.CellN.Length], new ReferenceWeights(config));
        RecurrentStacking<Memory<double>>.Backward(new DirectionCompute(forward.Weights, grads.Weights), config, forward.Tape, forward.Steps, forward.Batch,
            dy, dhN ?? new double[grads.HiddenZero.Length], grads.CellZero is null ? default : dcN ?? new double[grads.CellZero.Length],
            grads.Input, grads.HiddenZero, grads.CellZero);
        return grads;
    }

    /// <summary>One direction of the reference: <see cref="ReferenceCell"/> on the stacking's rows.</summary>
    private sealed class DirectionCompute(ReferenceWeights weights, ReferenceWeights? grads) : HostDirectionCompute<double>
    {
        /// <summary>Plain arrays: the reference keeps nothing pooled.</summary>
        public override BufferLease<Memory<double>> Allocate(long elements, string what) => new(new double[elements], null);

        public override IDisposable? Forward(in DirectionPass<Memory<double>> pass, bool keepForBackward)
        {
            RequireDenseRows(pass.X, pass.InputSize, "x");
            int n = pass.Batch, h = pass.HiddenSize;
            return ReferenceCell.Forward(weights.Config.Cell, weights.Direction(pass.Layer, pass.Direction), pass.Steps, n, pass.InputSize, h, pass.Packed,
                From(pass.X), State(pass.H0, n, h), State(pass.C0, n, h), pass.Reverse, From(pass.Y), pass.Y.Stride, State(pass.HN, n, h), State(pass.CN, n, h));
        }

        public override void Backward(in DirectionPass<Memory<double>> pass, IDisposable saved)
        {
            RequireDenseRows(pass.X, pass.InputSize, "x");
            RequireDenseRows(pass.DX, pass.InputSize, "dx");
            int n = pass.Batch, h = pass.HiddenSize;
            var dx = From(pass.DX)[..(Rows(pass) * pass.InputSize)];
            if (!pass.AccumulateDX) dx.Clear();
            ReferenceCell.Backward(weights.Config.Cell, weights.Direction(pass.Layer, pass.Direction), (DirectionTape)saved, pass.Steps, n, pass.InputSize, h,
                pass.Packed, From(pass.X), pass.Reverse, From(pass.DY), pass.DY.Stride, State(pass.DHN, n, h), State(pass.DCN, n, h),
                dx, State(pass.DH0, n, h), State(pass.DC0, n, h), grads!.Direction(pass.Layer, pass.Direction));
        }

        private static int Rows(in DirectionPass<Memory<double>> pass) => pass.Packed?.Rows ?? pass.Steps * pass.Batch;

        /// <summary>
        /// The reference's time loop steps the input rows by I, to stay plain: a stacking that handed it strided input rows
        /// would be read wrongly, so it is refused rather than assumed.
        /// </summary>
        private static void RequireDenseRows(StridedRows<Memory<double>> rows, int width, string what)
        {
            if (rows.Stride != width)
                throw new InvalidOperationException($"reference direction: {what} rows {rows.Stride} apart; the reference reads dense rows of {width}.");
        }
    }
}
