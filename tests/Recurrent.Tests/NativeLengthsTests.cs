using NUnit.Framework;
using Recurrent.Kernels.Cpu;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>
/// Variable-length batches where only the native backend goes: its batch split (each thread a slice of the sorted rows
/// through all steps, sliced by tokens) as the running batch shrinks under the slices, runs where one step holds every
/// token or one sequence holds most, the tape's size per real token, and the C ABI's check of batch_sizes. Every cell and
/// every contract shape with random lengths is the backend contract's (ForwardAndBackward_WithLengths_MatchReference).
/// </summary>
[TestFixture]
[NonParallelizable]  // sets the process-wide thread count
public class NativeLengthsTests
{
    /// <summary>
    /// N=20, H=129: the fused path splits the batch among the threads (4 slices of the 20 sorted rows) and runs each slice
    /// through all steps alone. Lengths spread from 1 to T so sequences end (and, reverse, start) inside every slice and at
    /// its edges. Against the reference, and bit for bit against one thread, where each step runs all its rows at once.
    /// </summary>
    [TestCaseSource(typeof(TestData), nameof(TestData.AllCells))]
    public void BatchSplit_WithAShrinkingBatch_MatchesTheReference_AndOneThread(CellKind cell)
    {
        var config = new RnnConfig(cell, 7, 129, numLayers: 2, bidirectional: true);
        int[] lengths = [12, 1, 5, 12, 3, 7, 9, 2, 11, 6, 4, 8, 10, 12, 1, 5, 7, 3, 9, 2];
        var problem = new Problem(config, 12, lengths, seed: 40 + (int)cell);
        var expected = problem.Reference();
        try
        {
            NativeLibrary.ThreadCount = 4;
            var split = problem.Run(new NativeCpuBackend());
            Problem.AssertClose(split, expected, "4 threads");
            NativeLibrary.ThreadCount = 1;
            var whole = problem.Run(new NativeCpuBackend());
            for (int i = 0; i < split.Length; i++) Assert.That(split[i].Values, Is.EqualTo(whole[i].Values), $"4 threads against 1: {split[i].Name}");
        }
        finally
        {
            NativeLibrary.ThreadCount = 0;
        }
    }

    /// <summary>
    /// Every length 1 in T=4: the passes run one step (the steps where no sequence runs are no steps of theirs), which is
    /// a dense T=1 run on x's first step, bit for bit; y, dx are zero after it, dy after it is not read.
    /// </summary>
    [TestCaseSource(nameof(PathCases))]
    public void EveryLengthOne_IsTheDenseRunOfTheFirstStep(CellKind cell, bool fused)
    {
        const int steps = 4, batch = 5;
        var config = new RnnConfig(cell, 3, 17, numLayers: 2, bidirectional: true);
        var problem = new Problem(config, steps, Enumerable.Repeat(1, batch).ToArray(), seed: 7);
        var actual = problem.Run(new NativeCpuBackend(fused));
        var first = problem.FirstStep().Run(new NativeCpuBackend(fused));
        for (int i = 0; i < actual.Length; i++)
        {
            var (name, values) = actual[i];
            // y and dx: step 0's rows, then zeros; the rest whole.
            int rows = name is "y" or "dx" ? first[i].Values.Length : values.Length;
            Assert.That(values[..rows], Is.EqualTo(first[i].Values), name + (rows < values.Length ? " at step 0" : ""));
            Assert.That(values[rows..], Is.All.Zero, name + " after step 0");
        }
    }

    /// <summary>
    /// One sequence of 40 steps among 15 of 1 to 3: after step 2 the batch is one row, whose recurrent product is a single
    /// row against W_hh, for 37 steps, forward, in reverse (where it starts alone and the rest join at its end) and back.
    /// </summary>
    [TestCaseSource(nameof(PathCases))]
    public void OneLongSequenceAmongShortOnes_MatchesTheReference(CellKind cell, bool fused)
    {
        var config = new RnnConfig(cell, 6, 33, numLayers: 2, bidirectional: true);
        var random = new Random(11);
        var lengths = Enumerable.Range(0, 16).Select(_ => 1 + random.Next(3)).ToArray();
        lengths[9] = 40;
        var problem = new Problem(config, 40, lengths, seed: 12 + (int)cell);
        Problem.AssertClose(problem.Run(new NativeCpuBackend(fused)), problem.Reference(), "");
    }

    /// <summary>
    /// A training pass keeps its packed input (a buffer from a pool) until its tape is disposed: passes that run meanwhile,
    /// and one that runs after another tape gave its buffer back, leave its backward unchanged. Disposing twice returns
    /// the buffer once; backward through a disposed tape is refused.
    /// </summary>
    [Test]
    public void Backward_ReadsItsOwnPackedInput_WhileOtherPassesUseThePool()
    {
        var config = new RnnConfig(CellKind.Lstm, 5, 8, numLayers: 2, bidirectional: true);
        int[] lengths = [3, 6, 1, 4];
        var problem = new Problem(config, 6, lengths, seed: 21);
        var expected = problem.Run(new NativeCpuBackend());

        var backend = new NativeCpuBackend();
        var layer = TestLayers.Create(config, backend, 21);
        var (x, h0, c0, dy, dhN, dcN) = problem.Inputs;
        using var kept = layer.Forward(x, h0, c0, keepForBackward: true, lengths: lengths);
        var other = new FloatTensor(TestData.UniformSingle(new Random(3), x.Length), [.. x.Shape]);
        var returned = layer.Forward(other, keepForBackward: true, lengths: lengths);
        returned.Dispose();
        returned.Dispose();
        using (layer.Forward(other, keepForBackward: true, lengths: lengths))
        using (layer.Forward(other, lengths: lengths))
        {
            var gradients = layer.Backward(kept, dy, dhN, dcN);
            Assert.That(gradients.Input.ToArray(), Is.EqualTo(expected.Single(e => e.Name == "dx").Values), "dx");
            Assert.That(gradients.InitialHidden.ToArray(), Is.EqualTo(expected.Single(e => e.Name == "dh0").Values), "dh0");
            foreach (var p in layer.Parameters.All)
                Assert.That(p.Grad.ToArray(), Is.EqualTo(expected.Single(e => e.Name == "grad " + p.Name).Values), p.Name);
        }

        var parameters = layer.Parameters;
        var (y, hN, cN) = (new FloatTensor(6, 4, config.OutputSize), new FloatTensor(config.StateShape(4)), new FloatTensor(config.StateShape(4)));
        var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true, lengths)!;
        tape.Dispose();
        tape.Dispose();
        Assert.Throws<ObjectDisposedException>(() => backend.Backward(parameters, tape, dy, dhN, dcN, new FloatTensor([.. x.Shape]), new FloatTensor(config.StateShape(4)),
            new FloatTensor(config.StateShape(4))));
    }

    private static IEnumerable<TestCaseData> PathCases() =>
        from cell in TestData.AllCells
        from fused in new[] { true, false }
        select new TestCaseData(cell, fused).SetArgDisplayNames(cell.ToString(), fused ? "fused" : "unfused");

    /// <summary>The tape holds the documented floats per real token (LSTM 6·H, GRU reset-after 5·H, reset-before 4·H, Elman H) plus h0 (and c0).</summary>
    [TestCase(CellKind.Lstm, 6, 2)]
    [TestCase(CellKind.GruResetAfter, 5, 1)]
    [TestCase(CellKind.GruResetBefore, 4, 1)]
    [TestCase(CellKind.RnnTanh, 1, 1)]
    public void Tape_HoldsTheDocumentedBytesPerRealToken(CellKind cell, int floatsPerTokenPerH, int initialStates)
    {
        const int steps = 5, batch = 3, input = 2, hidden = 9;
        int[] batchSizes = [3, 3, 2, 1, 1];
        int rows = batchSizes.Sum(), gh = cell.GateCount() * hidden, nh = batch * hidden;
        using var tape = NativeRnn.Forward(cell, fused: true, steps, batch, input, hidden, reverse: true,
            new float[gh * input], new float[gh * hidden], new float[gh], new float[gh], RnnInputRows.Dense(new float[rows * input]), new float[nh],
            new float[nh], new float[rows * hidden], new float[nh], new float[nh], keepForBackward: true, batchSizes: batchSizes)!;
        Assert.That(tape.Bytes, Is.EqualTo(4L * (floatsPerTokenPerH * rows * hidden + initialStates * nh)));
        Assert.That(tape.BatchSizes.ToArray(), Is.EqualTo(batchSizes), "the tape keeps the batch sizes for backward");
    }

    /// <summary>The C ABI refuses batch sizes that are not a packed batch's, naming batch_sizes, the step and the rule; T of them or none.</summary>
    [TestCase(new[] { 2, 2, 1 }, "batch_sizes[0] is 2; expected 3, the batch")]
    [TestCase(new[] { 4, 2, 1 }, "batch_sizes[0] is 4; expected 3, the batch")]
    [TestCase(new[] { 3, 1, 2 }, "batch_sizes[2] is 2; expected a size in [1, b[1] = 1]")]
    [TestCase(new[] { 3, 2, 0 }, "batch_sizes[2] is 0; expected a size in [1, b[1] = 2]")]
    [TestCase(new[] { 3, -1, -1 }, "batch_sizes[1] is -1")]
    public void NativeRnn_RefusesBatchSizesThatAreNotAPackedBatchs(int[] batchSizes, string message)
    {
        var e = Assert.Throws<NativeException>(() => ForwardWithBatchSizes(batchSizes))!;
        Assert.That(e.Message, Does.Contain("rc_rnn_forward: " + message));
        Assert.That(e.Status, Is.EqualTo(NativeStatus.InvalidArgument));
    }

    [Test]
    public void NativeRnn_RefusesBatchSizesOfAnotherLength_NamingThem()
    {
        var e = Assert.Throws<ArgumentException>(() => ForwardWithBatchSizes([3, 2]))!;
        Assert.That(e.ParamName, Is.EqualTo("batchSizes"));
        Assert.That(e.Message, Does.Contain("expected [3]").And.Contain("got 2"));
    }

    // T=3, N=3; buffers of T·N rows, enough for any sums these sizes give.
    private static void ForwardWithBatchSizes(int[] batchSizes)
    {
        const int steps = 3, batch = 3, input = 2, hidden = 4;
        int gh = 4 * hidden, nh = batch * hidden;
        NativeRnn.Forward(CellKind.Lstm, true, steps, batch, input, hidden, false, new float[gh * input], new float[gh * hidden], new float[gh],
            new float[gh], RnnInputRows.Dense(new float[steps * batch * input]), new float[nh], new float[nh], new float[steps * nh], new float[nh],
            new float[nh], keepForBackward: false, batchSizes: batchSizes);
    }

    /// <summary>A stack, its parameters, a padded batch with lengths and the seeds of a loss; runs it on a backend or the reference.</summary>
    private sealed class Problem
    {
        private readonly RnnConfig _config;
        private readonly int _steps, _batch, _seed;
        private readonly int[] _lengths;
        private readonly FloatTensor _x, _h0, _dy, _dhN;
        private readonly FloatTensor? _c0, _dcN;

        public Problem(RnnConfig config, int steps, int[] lengths, int seed)
        {
            (_config, _steps, _batch, _lengths, _seed) = (config, steps, lengths.Length, lengths, seed);
            var random = new Random(seed);
            int[] state = config.StateShape(_batch);
            FloatTensor Noise(params int[] shape) => new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);
            _x = Noise(steps, _batch, config.InputSize);
            _dy = Noise(steps, _batch, config.OutputSize);
            _h0 = Noise(state);
            _dhN = Noise(state);
            _c0 = config.Cell.HasCellState() ? Noise(state) : null;
            _dcN = config.Cell.HasCellState() ? Noise(state) : null;
        }

        private Problem(Problem source, FloatTensor x, FloatTensor dy)
        {
            (_config, _steps, _batch, _lengths, _seed) = (source._config, 1, source._batch, Enumerable.Repeat(1, source._batch).ToArray(), source._seed);
            (_x, _dy, _h0, _dhN, _c0, _dcN) = (x, dy, source._h0, source._dhN, source._c0, source._dcN);
        }

        /// <summary>x, h0, c0, dy, dhN, dcN.</summary>
        public (FloatTensor X, FloatTensor H0, FloatTensor? C0, FloatTensor Dy, FloatTensor DhN, FloatTensor? DcN) Inputs => (_x, _h0, _c0, _dy, _dhN, _dcN);

        /// <summary>The same problem cut to its first step, dense.</summary>
        public Problem FirstStep()
        {
            FloatTensor First(FloatTensor t) => new(t.Span[..(_batch * t.Shape[2])].ToArray(), 1, _batch, t.Shape[2]);
            return new Problem(this, First(_x), First(_dy));
        }

        /// <summary>y, hN, cN, dx, dh0, dc0 and the parameter gradients of a training pass through the layer API, named.</summary>
        public (string Name, float[] Values)[] Run(IRnnBackend backend)
        {
            var layer = TestLayers.Create(_config, backend, _seed);
            int[]? lengths = _steps == 1 ? null : _lengths;
            using var forward = layer.Forward(_x, _h0, _c0, keepForBackward: true, lengths: lengths);
            var gradients = layer.Backward(forward, _dy, _dhN, _dcN);
            return [("y", forward.Output.ToArray()), ("hN", forward.HiddenState.ToArray()), ("cN", forward.CellState?.ToArray() ?? []), ("dx", gradients.Input.ToArray()),
                ("dh0", gradients.InitialHidden.ToArray()), ("dc0", gradients.InitialCell?.ToArray() ?? []),
                .. layer.Parameters.All.Select(p => ("grad " + p.Name, p.Grad.ToArray()))];
        }

        /// <summary>What <see cref="Run"/> gives, from the double reference on the same float parameters and inputs.</summary>
        public double[][] Reference()
        {
            var parameters = TestLayers.Create(_config, ReferenceBackend.Instance, _seed).Parameters;
            var forward = ReferenceRnn.Forward(ReferenceWeights.From(parameters), Widen(_x), _steps, _batch, Widen(_h0), _c0 is null ? null : Widen(_c0), _lengths);
            var backward = ReferenceRnn.Backward(forward, Widen(_dy), Widen(_dhN), _dcN is null ? null : Widen(_dcN));
            return [forward.Output, forward.HiddenN, forward.CellN ?? [], backward.Input, backward.HiddenZero, backward.CellZero ?? [],
                .. backward.Weights.Values];
        }

        public static void AssertClose((string Name, float[] Values)[] actual, double[][] expected, string what)
        {
            Assert.That(actual, Has.Length.EqualTo(expected.Length));
            for (int i = 0; i < actual.Length; i++) Assertions.AllClose(actual[i].Values, expected[i], Tolerances.Float32, $"{what} {actual[i].Name}".Trim());
        }

        private static double[] Widen(FloatTensor t) => Array.ConvertAll(t.ToArray(), v => (double)v);
    }
}
