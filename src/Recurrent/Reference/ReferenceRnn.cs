namespace Recurrent.Reference;

/// <summary>Every parameter of a stack in double precision, in <see cref="RnnConfig.Parameters"/> order.</summary>
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

    /// <summary>The four parameters of one layer and direction.</summary>
    public DirectionWeights Direction(int layer, int direction)
    {
        // The four every cell has lead each direction's block (ParameterSpec.RnnBase); a cell with more has them after.
        int first = (layer * Config.Directions + direction) * Config.Definition.Parameters.Count;
        return new DirectionWeights(Values[first], Values[first + 1], Values[first + 2], Values[first + 3]);
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
public sealed class ReferenceForward
{
    internal ReferenceForward(RnnConfig config, ReferenceWeights weights, int steps, int batch, int[]? lengths)
    {
        (Config, Weights, Steps, Batch, Lengths) = (config, weights, steps, batch, lengths);
        Output = new double[steps * batch * config.OutputSize];
        int states = config.NumLayers * config.Directions * batch * config.HiddenSize;
        HiddenN = new double[states];
        CellN = config.Cell.HasCellState() ? new double[states] : null;
        LayerInputs = new double[config.NumLayers][];
        Tapes = new DirectionTape[config.NumLayers, config.Directions];
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

    internal double[][] LayerInputs { get; }
    internal DirectionTape[,] Tapes { get; }
}

/// <summary>Gradients from <see cref="ReferenceRnn.Backward"/>.</summary>
/// <param name="Input">dx [T, N, I].</param>
/// <param name="HiddenZero">dh0 [L·D, N, H].</param>
/// <param name="CellZero">dc0 [L·D, N, H] for LSTM, else null.</param>
/// <param name="Weights">The gradient of every parameter.</param>
public sealed record ReferenceGradients(double[] Input, double[] HiddenZero, double[]? CellZero, ReferenceWeights Weights);

/// <summary>
/// The reference implementation of a whole stack (layers, directions) in double precision: plain code,
/// checked by finite differences and by PyTorch, against which every fast backend is tested. Thread-safe: pure functions
/// of their arguments.
/// </summary>
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
        int hidden = config.HiddenSize, dirs = config.Directions, nh = batch * hidden;
        if (x.Length != steps * batch * config.InputSize)
            throw new ArgumentException($"x: expected {steps}·{batch}·{config.InputSize} elements, got {x.Length}.", nameof(x));
        SequenceLengths.Validate(lengths, steps, batch);
        lengths = (int[]?)lengths?.Clone();   // kept for backward; the caller's array may change after this returns
        var result = new ReferenceForward(config, weights, steps, batch, lengths);
        double[] layerInput = x;
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            int inputSize = config.LayerInputSize(layer);
            result.LayerInputs[layer] = layerInput;
            var layerOutput = new double[steps * batch * config.OutputSize];
            for (int dir = 0; dir < dirs; dir++)
            {
                int state = (layer * dirs + dir) * nh;
                var y = new double[steps * nh];
                result.Tapes[layer, dir] = ReferenceCell.Forward(config.Cell, weights.Direction(layer, dir), steps, batch, inputSize, hidden,
                    layerInput, Slice(h0, state, nh), Slice(c0, state, nh), dir == 1,
                    y, result.HiddenN.AsSpan(state, nh), result.CellN is null ? default : result.CellN.AsSpan(state, nh), lengths);
                Interleave(y, layerOutput, steps * batch, hidden, dirs, dir);
            }
            layerInput = layerOutput;
        }
        layerInput.CopyTo(result.Output, 0);
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
        int steps = forward.Steps, batch = forward.Batch, hidden = config.HiddenSize, dirs = config.Directions, nh = batch * hidden;
        var grads = new ReferenceGradients(new double[steps * batch * config.InputSize], new double[forward.HiddenN.Length],
            forward.CellN is null ? null : new double[forward.CellN.Length], new ReferenceWeights(config));
        double[] dLayerOutput = dy;
        for (int layer = config.NumLayers - 1; layer >= 0; layer--)
        {
            int inputSize = config.LayerInputSize(layer);
            var dLayerInput = new double[steps * batch * inputSize];
            for (int dir = 0; dir < dirs; dir++)
            {
                int state = (layer * dirs + dir) * nh;
                var dyDir = new double[steps * nh];
                Deinterleave(dLayerOutput, dyDir, steps * batch, hidden, dirs, dir);
                ReferenceCell.Backward(config.Cell, forward.Weights.Direction(layer, dir), forward.Tapes[layer, dir], steps, batch, inputSize, hidden,
                    forward.LayerInputs[layer], dir == 1, dyDir, Slice(dhN, state, nh), Slice(dcN, state, nh),
                    dLayerInput, grads.HiddenZero.AsSpan(state, nh), grads.CellZero is null ? default : grads.CellZero.AsSpan(state, nh),
                    grads.Weights.Direction(layer, dir));
            }
            dLayerOutput = dLayerInput;
        }
        dLayerOutput.CopyTo(grads.Input, 0);
        return grads;
    }

    private static ReadOnlySpan<double> Slice(double[]? state, int start, int length) =>
        state is null ? new double[length] : state.AsSpan(start, length);

    // y of one direction [rows, H] into the layer's output [rows, D·H] at feature offset dir·H, and back.
    private static void Interleave(double[] source, double[] destination, int rows, int hidden, int dirs, int dir)
    {
        for (int r = 0; r < rows; r++)
            Array.Copy(source, r * hidden, destination, (r * dirs + dir) * hidden, hidden);
    }

    private static void Deinterleave(double[] source, double[] destination, int rows, int hidden, int dirs, int dir)
    {
        for (int r = 0; r < rows; r++)
            Array.Copy(source, (r * dirs + dir) * hidden, destination, r * hidden, hidden);
    }
}
