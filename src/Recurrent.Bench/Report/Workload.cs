using Recurrent.Bench.Peers;

namespace Recurrent.Bench.Report;

/// <summary>What is timed: inference (forward only) or a training step (forward keeping the tape, then backward).</summary>
internal enum RunMode
{
    /// <summary>Forward without keeping anything for backward.</summary>
    Inference,
    /// <summary>Forward keeping the tape, then backward with dy = 1.</summary>
    Training,
}

/// <summary>
/// One problem of the report: a cell at a shape, with the weights and input every implementation receives
/// (one layer, one direction, seeded so runs repeat).
/// </summary>
internal sealed class Workload
{
    private const int WeightSeed = 42, InputSeed = 7;

    public Workload(CellKind cell, BenchShape shape)
    {
        (Cell, Shape) = (cell, shape);
        Config = new RnnConfig(cell, shape.InputSize, shape.HiddenSize);
        Parameters = new RnnParameters(Config);
        Parameters.Reset(WeightSeed);
        var random = new Random(InputSeed);
        var data = new float[shape.Steps * shape.Batch * shape.InputSize];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        Input = new FloatTensor(data, shape.Steps, shape.Batch, shape.InputSize);
    }

    public CellKind Cell { get; }
    public BenchShape Shape { get; }
    public RnnConfig Config { get; }
    /// <summary>The weights, PyTorch's layout; shared read-only by every implementation.</summary>
    public RnnParameters Parameters { get; }
    /// <summary>x [T, N, I].</summary>
    public FloatTensor Input { get; }

    /// <summary>
    /// FLOPs of the matrix products, the work every implementation must do: forward 2·T·N·G·H·(I+H) (G = 4 LSTM, 3 GRU,
    /// 1 RNN); backward ≈ 2× forward (the input gradient and the weight gradient are one product each), so a training
    /// step counts 3× forward. Pointwise work is left out, as cuDNN and oneDNN count.
    /// </summary>
    public double Flops(RunMode mode) => FlopsOf(Cell, Shape, mode);

    /// <summary>As <see cref="Flops"/>, without building the workload.</summary>
    public static double FlopsOf(CellKind cell, BenchShape shape, RunMode mode)
    {
        double forward = 2.0 * shape.Steps * shape.Batch * cell.GateCount() * shape.HiddenSize * (double)(shape.InputSize + shape.HiddenSize);
        return mode == RunMode.Training ? 3 * forward : forward;
    }

    /// <summary>
    /// Lengths [N] spread evenly over [⌈T/2⌉, T] (the quantiles of the uniform distribution there), ascending: a
    /// variable-length batch of the shape with about three quarters of its padded tokens real, which the sort of the packed
    /// layout reverses whole. No random numbers, so scripts/lengths_torch.py runs the same batch. The workload of every
    /// variable-length measurement (the lengths command, VariableLengthBenchmarks).
    /// </summary>
    public static int[] UniformLengths(BenchShape shape)
    {
        int shortest = (shape.Steps + 1) / 2, span = shape.Steps - shortest + 1;
        return [.. Enumerable.Range(0, shape.Batch).Select(n => shortest + (int)((long)n * span / shape.Batch))];
    }

    /// <summary>
    /// The reference's output on a corner of the problem: the first <paramref name="steps"/> steps of the first
    /// <paramref name="rows"/> batch rows, [steps, rows, H]. In one forward direction y[0..t) depends only on x[0..t), and
    /// batch rows never mix, so this corner is exact yet keeps the double-precision reference cheap at any T and N.
    /// </summary>
    public float[] ReferenceCorner(int steps, int rows)
    {
        steps = Math.Min(steps, Shape.Steps);
        rows = Math.Min(rows, Shape.Batch);
        var x = new FloatTensor(steps, rows, Shape.InputSize);
        for (int t = 0; t < steps; t++)
            Input.Span.Slice(t * Shape.Batch * Shape.InputSize, rows * Shape.InputSize).CopyTo(x.Span[(t * rows * Shape.InputSize)..]);
        var state = Config.StateShape(rows);
        var y = new FloatTensor(steps, rows, Shape.HiddenSize);
        ReferenceBackend.Instance.Forward(Parameters, x, new FloatTensor(state), Cell.HasCellState() ? new FloatTensor(state) : null,
            y, new FloatTensor(state), Cell.HasCellState() ? new FloatTensor(state) : null, keepForBackward: false);
        return y.ToArray();
    }

    /// <summary>The same corner cut out of a full output y [T, N, H].</summary>
    public float[] Corner(ReadOnlySpan<float> y, int steps, int rows)
    {
        steps = Math.Min(steps, Shape.Steps);
        rows = Math.Min(rows, Shape.Batch);
        int h = Shape.HiddenSize;
        var corner = new float[steps * rows * h];
        for (int t = 0; t < steps; t++)
            y.Slice(t * Shape.Batch * h, rows * h).CopyTo(corner.AsSpan(t * rows * h));
        return corner;
    }
}

/// <summary>
/// One of Recurrent's backends prepared for a workload: buffers allocated once, outside the timed region. With lengths the
/// batch is a variable-length one (the backend packs it per pass, as a layer's caller gets it).
/// </summary>
internal sealed class BackendRun : IPeerRun
{
    private readonly IRnnBackend _backend;
    private readonly RnnParameters _parameters;
    private readonly bool _training;
    private readonly int[]? _lengths;
    private readonly FloatTensor _x, _h0, _hN, _dy, _dhN, _dx, _dh0;
    private readonly FloatTensor? _c0, _cN, _dcN, _dc0;

    public BackendRun(IRnnBackend backend, Workload workload, RunMode mode, int[]? lengths = null)
    {
        (_backend, _parameters, _training, _x, _lengths) = (backend, workload.Parameters, mode == RunMode.Training, workload.Input, lengths);
        var shape = workload.Shape;
        var state = workload.Config.StateShape(shape.Batch);
        bool cell = workload.Cell.HasCellState();
        FloatTensor? CellState() => cell ? new FloatTensor(state) : null;
        (_h0, _hN, _c0, _cN) = (new FloatTensor(state), new FloatTensor(state), CellState(), CellState());
        Output = new FloatTensor(shape.Steps, shape.Batch, shape.HiddenSize);
        _dy = new FloatTensor(Enumerable.Repeat(1f, Output.Length).ToArray(), shape.Steps, shape.Batch, shape.HiddenSize);
        (_dhN, _dcN, _dh0, _dc0) = (new FloatTensor(state), CellState(), new FloatTensor(state), CellState());
        _dx = new FloatTensor(shape.Steps, shape.Batch, shape.InputSize);
    }

    /// <summary>y [T, N, H] of the last run.</summary>
    public FloatTensor Output { get; }

    public void Run()
    {
        using var tape = _backend.Forward(_parameters, _x, _h0, _c0, Output, _hN, _cN, keepForBackward: _training, _lengths);
        if (_training) _backend.Backward(_parameters, tape!, _dy, _dhN, _dcN, _dx, _dh0, _dc0);
    }

    public void Dispose() { }
}
