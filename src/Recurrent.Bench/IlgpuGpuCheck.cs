using System.Diagnostics;
using System.Globalization;
using Recurrent.Kernels.Ilgpu;
using Recurrent.Sequence;

namespace Recurrent.Bench;

/// <summary>
/// The GPU machine's check: opens an ILGPU accelerator, checks the backend against the reference (every cell, fused and
/// unfused, outputs, states and every gradient), then times LSTM and GRU forward and forward+backward, fused against
/// unfused; then the teacher-forced sequence models (<see cref="OutputRecurrentNetwork"/>, an LSTM
/// <see cref="RecurrentSequenceModel"/>) on the device against the same models on the CPU, and their training step timed
/// parallel over time against step by step. Used by <c>scripts/gpu-check.sh</c> through its small check program and wireable as <c>Recurrent.Bench gpu-check</c>.
/// Arguments: <c>--device cuda|cpu|auto</c> (default cuda), <c>--shapes standard,small|tiny</c>, <c>--reps N</c>,
/// <c>--csv PATH</c> (timings as <c>impl,cell,shape,pass,ms</c> for the script's joint table). Returns 0 when every
/// parity check passes.
/// </summary>
public static class IlgpuGpuCheck
{
    /// <summary>A timed shape: T, N, I = H.</summary>
    private sealed record BenchShape(string Name, int Steps, int Batch, int Size);

    private static readonly BenchShape[] Standard = [new("standard", 100, 64, 512), new("small", 50, 16, 128)];
    private static readonly BenchShape[] Tiny = [new("tiny", 5, 2, 8)];

    /// <summary>Runs the check; see the class summary for the arguments.</summary>
    /// <param name="args">The command-line arguments after <c>gpu-check</c>.</param>
    /// <param name="absoluteTolerance">The test suite's <c>Tolerances.Float32.Absolute</c> (the check program compiles that file in).</param>
    /// <param name="relativeTolerance">The test suite's <c>Tolerances.Float32.Relative</c>.</param>
    public static int Run(string[] args, double absoluteTolerance, double relativeTolerance)
    {
        string Option(string name, string fallback)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        var device = Option("--device", "cuda") switch
        {
            "cpu" => IlgpuDevice.Cpu,
            "auto" => IlgpuDevice.Auto,
            "opencl" => IlgpuDevice.OpenCL,
            _ => IlgpuDevice.Cuda,
        };
        var shapes = Option("--shapes", "standard,small") == "tiny" ? Tiny : Standard;
        int reps = int.Parse(Option("--reps", "20"), CultureInfo.InvariantCulture);
        string? csvPath = Option("--csv", "") is { Length: > 0 } p ? p : null;

        using var fused = new IlgpuBackend(device, fused: true);
        using var unfused = new IlgpuBackend(device, fused: false);
        Console.WriteLine($"device: {fused.DeviceName} ({fused.Name}); GEMM: {fused.GemmDescription}{(fused.CuBlasFailure is null ? "" : $" (cuBLAS not used: {fused.CuBlasFailure})")}");

        int failures = 0;
        Console.WriteLine($"parity against the reference (|a − e| ≤ {absoluteTolerance:g3} + {relativeTolerance:g3}·|e|), worst |a − e| − tolerance per case (≤ 0 passes):");
        foreach (var cell in Enum.GetValues<CellKind>())
            // The larger cases have T·N = 72 > 64 rows, so bias gradients take the two-pass column sum; the last one has
            // per-sequence lengths (unsorted, with ties, 1 and T): the packed layout.
            foreach (var (steps, batch, input, hidden, layers, bidirectional, lengths) in new[]
                     {
                         (1, 1, 1, 1, 1, false, (int[]?)null), (9, 8, 7, 33, 2, true, null), (9, 8, 7, 33, 2, true, [5, 9, 1, 5, 7, 9, 2, 4]),
                     })
                foreach (var backend in new[] { fused, unfused })
                {
                    var (worst, what) = Parity(backend, new RnnConfig(cell, input, hidden, layers, bidirectional), steps, batch, lengths, absoluteTolerance, relativeTolerance);
                    bool ok = worst <= 0;
                    if (!ok) failures++;
                    Console.WriteLine($"  {(ok ? "ok  " : "FAIL")} {backend.Name,-22} {cell,-15} T{steps} N{batch} I{input} H{hidden} L{layers}{(bidirectional ? " bi" : "")}"
                        + $"{(lengths is null ? "" : " lengths " + string.Join(",", lengths))}  worst {worst:E2} ({what})");
                }

        failures += SequenceParity(fused, absoluteTolerance, relativeTolerance);

        var rows = new List<string>();
        Console.WriteLine();
        Console.WriteLine($"timings: median of {reps} runs, ms, device work synchronized; each call copies its inputs to the device and its");
        Console.WriteLine("results back once: 'copies' is that part, 'no-copies' the rest (what a caller with device-resident data would see)");
        Console.WriteLine($"{"impl",-22} {"cell",-15} {"shape",-9} {"pass",-9} {"ms",10} {"copies",10} {"no-copies",10}");
        foreach (var shape in shapes)
            foreach (var cell in new[] { CellKind.Lstm, CellKind.GruResetAfter, CellKind.GruResetBefore })
                foreach (var backend in new[] { fused, unfused })
                    foreach (bool training in new[] { false, true })
                    {
                        var (ms, copies) = Time(backend, cell, shape, training, reps);
                        string pass = training ? "fwd+bwd" : "forward";
                        Console.WriteLine($"{backend.Name,-22} {cell,-15} {shape.Name,-9} {pass,-9} {ms,10:F3} {copies,10:F3} {ms - copies,10:F3}");
                        rows.Add(string.Create(CultureInfo.InvariantCulture, $"{backend.Name},{cell},{shape.Name},{pass},{ms:F4}"));
                        rows.Add(string.Create(CultureInfo.InvariantCulture, $"{backend.Name}-no-copies,{cell},{shape.Name},{pass},{ms - copies:F4}"));
                    }
        if (csvPath is not null) File.WriteAllLines(csvPath, rows);
        SequenceTimings(fused, shapes, reps);
        Console.WriteLine(failures == 0 ? "parity: all passed" : $"parity: {failures} FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// The sequence models on <paramref name="backend"/>'s device against the same models (same seeds) on the CPU: loss
    /// and every gradient of one training step, both schedules. Cases cover both losses, the output-recurrent network
    /// with and without external input (without it, its parallel step runs per token) and an LSTM and a reset-before GRU
    /// language model, at T·N = 72 rows; each also as a padded batch (lengths, in any order, 1 and T among them) with
    /// garbage past the ends, the language model's expectation then from its stack on the reference backend, which runs
    /// lengths everywhere. Returns the number of failures.
    /// </summary>
    private static int SequenceParity(IlgpuBackend backend, double absolute, double relative)
    {
        Console.WriteLine("sequence models on the device against the same models on the CPU, worst |a − e| − tolerance (≤ 0 passes):");
        const int steps = 9, batch = 8;
        int[]?[] paddings = [null, [9, 3, 1, 9, 5, 7, 2, 8]];
        int failures = 0;
        void Report(string name, double worst, string what)
        {
            bool ok = worst <= 0;
            if (!ok) failures++;
            Console.WriteLine($"  {(ok ? "ok  " : "FAIL")} {name,-58} worst {worst:E2} ({what})");
        }
        foreach (var (input, loss, activation) in new[] { (7, SequenceLoss.SoftmaxCrossEntropy, RnnActivation.Tanh), (7, SequenceLoss.SquaredError, RnnActivation.Relu), (0, SequenceLoss.SoftmaxCrossEntropy, RnnActivation.Tanh) })
        foreach (var lengths in paddings)
        {
            int output = input == 0 ? 5 : 17;
            int? start = loss == SequenceLoss.SoftmaxCrossEntropy ? 0 : null;
            var random = new Random(5);
            var x = input == 0 ? null : new FloatTensor(Values(random, steps * batch * input), steps, batch, input);
            var targets = Targets(loss, steps, batch, output, random, lengths);
            var cpu = new OutputRecurrentNetwork(input, 33, output, loss, activation, start, seed: 3);
            float expected = cpu.Train(x, targets);
            using var onDevice = new OutputRecurrentNetwork(input, 33, output, loss, activation, start, seed: 3, device: backend);
            foreach (var schedule in Enum.GetValues<TrainingSchedule>())
            {
                onDevice.ZeroGrad();
                float actual = onDevice.Train(x, targets, schedule);
                var (worst, what) = Worst([("loss", [actual], [expected]), .. onDevice.Parameters.All.Zip(cpu.Parameters.All, (a, e) => (a.Name, a.Grad.ToArray(), e.Grad.ToArray()))], absolute, relative);
                Report($"output-recurrent {loss} {activation} T{steps} N{batch} I{input} H33 O{output}{(lengths is null ? "" : " padded")} {schedule}", worst, what);
            }
        }
        foreach (var (cell, loss) in new[] { (CellKind.Lstm, SequenceLoss.SoftmaxCrossEntropy), (CellKind.GruResetBefore, SequenceLoss.SquaredError) })
        foreach (var lengths in paddings)
        {
            RecurrentLayer Layer(IRnnBackend? rnn) => cell == CellKind.Lstm ? new Lstm(7, 33, backend: rnn, seed: 3) : new Gru(7, 33, variant: GruVariant.ResetBefore, backend: rnn, seed: 3);
            int? start = loss == SequenceLoss.SoftmaxCrossEntropy ? 0 : null;
            var targets = Targets(loss, steps, batch, 17, new Random(6), lengths);
            var cpu = new RecurrentSequenceModel(Layer(lengths is null ? null : ReferenceBackend.Instance), 17, loss, start, seed: 3);
            float expected = cpu.Train(targets);
            using var onDevice = new RecurrentSequenceModel(Layer(backend), 17, loss, start, seed: 3);
            foreach (var schedule in Enum.GetValues<TrainingSchedule>())
            {
                onDevice.ZeroGrad();
                float actual = onDevice.Train(targets, schedule);
                var grads = onDevice.Parameters.All.Zip(cpu.Parameters.All, (a, e) => (a.Name, a.Grad.ToArray(), e.Grad.ToArray()));
                var (worst, what) = Worst([("loss", [actual], [expected]), .. grads], absolute, relative);
                Report($"{cell} language model {loss} T{steps} N{batch} I7 H33 O17{(lengths is null ? "" : " padded")} {schedule}", worst, what);
            }
        }
        return failures;
    }

    /// <summary>
    /// One training step of the sequence models on the device, parallel over time and step by step (median ms; each step
    /// includes its parameter upload and gradient download): the output-recurrent network with I = H, O = 256, both losses,
    /// and an LSTM language model over a vocabulary of 256.
    /// </summary>
    private static void SequenceTimings(IlgpuBackend backend, BenchShape[] shapes, int reps)
    {
        const int output = 256;
        Console.WriteLine();
        Console.WriteLine($"sequence models, one training step on {backend.Name}: median of {reps} runs, ms");
        Console.WriteLine($"{"model",-40} {"shape",-9} {"parallel",10} {"step-by-step",13}");
        foreach (var shape in shapes)
        {
            int steps = shape.Steps, batch = shape.Batch, h = shape.Size;
            var random = new Random(2);
            var x = new FloatTensor(Values(random, steps * batch * h), steps, batch, h);
            foreach (var loss in Enum.GetValues<SequenceLoss>())
            {
                using var network = new OutputRecurrentNetwork(h, h, output, loss, seed: 1, device: backend);
                var targets = Targets(loss, steps, batch, output, random);
                double Step(TrainingSchedule schedule) => Median(() => network.Train(x, targets, schedule), reps);
                Console.WriteLine($"{"output-recurrent " + loss,-40} {shape.Name,-9} {Step(TrainingSchedule.ParallelOverTime),10:F3} {Step(TrainingSchedule.StepByStep),13:F3}");
            }
            using var model = new RecurrentSequenceModel(new Lstm(h, h, backend: backend, seed: 1), output, SequenceLoss.SoftmaxCrossEntropy, startToken: 0, seed: 1);
            var tokens = Targets(SequenceLoss.SoftmaxCrossEntropy, steps, batch, output, random);
            double ModelStep(TrainingSchedule schedule) => Median(() => model.Train(tokens, schedule), reps);
            Console.WriteLine($"{"LSTM language model",-40} {shape.Name,-9} {ModelStep(TrainingSchedule.ParallelOverTime),10:F3} {ModelStep(TrainingSchedule.StepByStep),13:F3}");
        }
    }

    private static float[] Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    /// <summary>Random targets; with <paramref name="lengths"/>, garbage past each end (ids outside the vocabulary, NaN), which must not be read.</summary>
    private static SequenceTargets Targets(SequenceLoss loss, int steps, int batch, int output, Random random, int[]? lengths = null)
    {
        bool Past(int row) => lengths is not null && row / batch >= lengths[row % batch];
        return loss == SequenceLoss.SoftmaxCrossEntropy
            ? SequenceTargets.Tokens(Enumerable.Range(0, steps * batch).Select(r => Past(r) ? output + 3 : random.Next(output)).ToArray(), steps, batch, lengths)
            : SequenceTargets.Real(new FloatTensor(Values(random, steps * batch * output).Select((v, i) => Past(i / output) ? float.NaN : v).ToArray(), steps, batch, output), lengths);
    }

    /// <summary>The worst excess of actual over expected beyond the tolerance, and where.</summary>
    private static (double Worst, string What) Worst(IEnumerable<(string Name, float[] Actual, float[] Expected)> pairs, double absolute, double relative)
    {
        double worst = double.NegativeInfinity;
        string what = "";
        foreach (var (name, a, e) in pairs)
            for (int i = 0; i < e.Length; i++)
            {
                double excess = Math.Abs(a[i] - e[i]) - (absolute + relative * Math.Abs(e[i]));
                if (double.IsNaN(a[i])) excess = double.PositiveInfinity;
                if (excess > worst) (worst, what) = (excess, $"{name}[{i}]");
            }
        return (worst, what);
    }

    /// <summary>Median milliseconds of <paramref name="run"/> (which waits for the device) after three warm-up calls.</summary>
    private static double Median(Action run, int reps)
    {
        for (int i = 0; i < 3; i++) run();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var watch = Stopwatch.StartNew();
            run();
            times[i] = watch.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    /// <summary>Forward and backward on <paramref name="backend"/> and the reference; the worst excess over the tolerance.</summary>
    private static (double Worst, string What) Parity(IlgpuBackend backend, RnnConfig config, int steps, int batch, int[]? lengths, double absolute, double relative)
    {
        var parameters = new RnnParameters(config);
        parameters.Reset(11);
        var random = new Random(3);
        float[] Values(int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var state = config.StateShape(batch);
        int stateLength = state.Aggregate(1, (a, b) => a * b);
        bool lstm = config.Cell.HasCellState();
        var x = new FloatTensor(Values(steps * batch * config.InputSize), steps, batch, config.InputSize);
        var h0 = new FloatTensor(Values(stateLength), state);
        var c0 = lstm ? new FloatTensor(Values(stateLength), state) : null;
        var dy = new FloatTensor(Values(steps * batch * config.OutputSize), steps, batch, config.OutputSize);
        var dhN = new FloatTensor(Values(stateLength), state);
        var dcN = lstm ? new FloatTensor(Values(stateLength), state) : null;
        var expected = BackendRuns.ForwardBackward(ReferenceBackend.Instance, parameters, x, h0, c0, dy, dhN, dcN, lengths);
        var actual = BackendRuns.ForwardBackward(backend, parameters, x, h0, c0, dy, dhN, dcN, lengths);
        double worst = double.NegativeInfinity;
        string what = "";
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            for (int i = 0; i < e.Length; i++)
            {
                double excess = Math.Abs(a[i] - e[i]) - (absolute + relative * Math.Abs(e[i]));
                if (double.IsNaN(a[i])) excess = double.PositiveInfinity;
                if (excess > worst) (worst, what) = (excess, $"{name}[{i}]");
            }
        }
        return (worst, what);
    }

    /// <summary>Median milliseconds of one forward (or forward and backward) call after warm-up, and the median of its copies.</summary>
    private static (double Total, double Copies) Time(IlgpuBackend backend, CellKind cell, BenchShape shape, bool training, int reps)
    {
        var config = new RnnConfig(cell, shape.Size, shape.Size);
        var parameters = new RnnParameters(config);
        parameters.Reset(1);
        var random = new Random(2);
        int steps = shape.Steps, batch = shape.Batch, h = shape.Size;
        var state = config.StateShape(batch);
        var x = new FloatTensor(Enumerable.Range(0, steps * batch * h).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), steps, batch, h);
        FloatTensor h0 = new(state), hN = new(state), dhN = new(state), dh0 = new(state);
        FloatTensor? c0 = cell.HasCellState() ? new(state) : null, cN = c0 is null ? null : new(state);
        FloatTensor? dcN = c0 is null ? null : new(state), dc0 = c0 is null ? null : new(state);
        FloatTensor y = new(steps, batch, h), dx = new(steps, batch, h);
        var dy = new FloatTensor(Enumerable.Range(0, steps * batch * h).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), steps, batch, h);
        void Once()
        {
            using var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, training);
            if (tape is not null) backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
            backend.Synchronize();
        }
        for (int i = 0; i < 3; i++) Once();   // kernel compilation and cuBLAS set-up stay out of the timings
        var times = new double[reps];
        var copies = new double[reps];
        backend.MeasureTransfers = true;
        try
        {
            for (int i = 0; i < reps; i++)
            {
                backend.ResetTransferTime();
                var watch = Stopwatch.StartNew();
                Once();
                times[i] = watch.Elapsed.TotalMilliseconds;
                copies[i] = backend.TransferTime.TotalMilliseconds;
            }
        }
        finally
        {
            backend.MeasureTransfers = false;
        }
        Array.Sort(times);
        Array.Sort(copies);
        return (times[reps / 2], copies[reps / 2]);
    }
}
