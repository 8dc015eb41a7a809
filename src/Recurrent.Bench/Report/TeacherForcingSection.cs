using System.Diagnostics;
using Recurrent.Sequence;

namespace Recurrent.Bench.Report;

/// <summary>A teacher-forced model the report trains both ways: its name, its shape and how to run and inspect it.</summary>
/// <param name="Model">What the table calls it.</param>
/// <param name="Shape">T, N, I (the external input or embedding width) and H.</param>
/// <param name="Train">One training step (forward, loss, backward) on a fixed batch: returns the loss, adds the gradients.</param>
/// <param name="Gradients">Every parameter's accumulated gradient, by name.</param>
/// <param name="ZeroGrad">Sets every gradient to zero.</param>
/// <param name="Owned">The model, disposed once it is measured (on a device that frees its workspaces).</param>
internal sealed record TeacherForcingCase(
    string Model, BenchShape Shape, Func<TrainingSchedule, float> Train, Func<IReadOnlyList<(string Name, float[] Grad)>> Gradients, Action ZeroGrad,
    IDisposable? Owned = null);

/// <summary>One teacher-forced model timed both ways, or why it was not.</summary>
internal sealed record TeacherForcingMeasurement(
    string Model, BenchShape Shape, Samples? StepByStepSamples, SampleStatistics? StepByStep, Samples? ParallelSamples, SampleStatistics? Parallel,
    double? MaxDeviation, string? Error)
{
    /// <summary>Step-by-step median / parallel median: how much running over all T·N rows at once buys.</summary>
    public double? Ratio => StepByStep is { } s && Parallel is { Median: > 0 } p ? s.Median / p.Median : null;
}

/// <summary>
/// The report's teacher-forcing section (issue #6): one training step of each teacher-forced model run parallel over time
/// (<see cref="TrainingSchedule.ParallelOverTime"/>) and step by step (<see cref="TrainingSchedule.StepByStep"/>, the
/// baseline), at the report's shapes with a vocabulary (or output width) of <see cref="TeacherForcingShapes.OutputSize"/>.
/// The two schedules must agree on the loss and every gradient before either is timed.
/// </summary>
internal static class TeacherForcingSection
{
    /// <summary>
    /// The models at one shape: the output-recurrent network (fig. 10.4 of the Deep Learning book) with an external input
    /// of I features and cross-entropy or squared-error outputs, the same network driven by its fed-back tokens alone
    /// (I = 0), and an LSTM language model (embedding width I) whose recurrent layer runs on <paramref name="backend"/>.
    /// On an <see cref="IlgpuBackend"/> the output-recurrent networks run on its accelerator too; else on the CPU.
    /// </summary>
    public static IEnumerable<Func<TeacherForcingCase>> Cases(BenchShape shape, IRnnBackend backend)
    {
        const int outputs = TeacherForcingShapes.OutputSize;
        int steps = shape.Steps, batch = shape.Batch, input = shape.InputSize, hidden = shape.HiddenSize;
        var device = backend as IlgpuBackend;
        string where = device is null ? "" : $" ({backend.Name})";

        TeacherForcingCase OutputRecurrent(string model, int inputSize, SequenceLoss loss)
        {
            var random = new Random(1);
            var network = new OutputRecurrentNetwork(inputSize, hidden, outputs, loss, seed: 1, device: device);
            var x = inputSize == 0 ? null
                : new FloatTensor(Enumerable.Range(0, steps * batch * inputSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), steps, batch, inputSize);
            var targets = TeacherForcingShapes.RandomTargets(loss, steps, batch, random);
            return new(model + where, shape with { InputSize = inputSize }, schedule => network.Train(x, targets, schedule),
                () => network.Parameters.All.Select(p => (p.Name, p.Grad.ToArray())).ToList(), network.ZeroGrad, network);
        }

        yield return () => OutputRecurrent("output-recurrent, cross-entropy", input, SequenceLoss.SoftmaxCrossEntropy);
        yield return () => OutputRecurrent("output-recurrent, cross-entropy, no input", 0, SequenceLoss.SoftmaxCrossEntropy);
        yield return () => OutputRecurrent("output-recurrent, squared error", input, SequenceLoss.SquaredError);
        yield return () =>
        {
            var model = new RecurrentSequenceModel(new Lstm(input, hidden, backend: backend, seed: 1), outputs, SequenceLoss.SoftmaxCrossEntropy, startToken: 0, seed: 1);
            var targets = TeacherForcingShapes.RandomTargets(SequenceLoss.SoftmaxCrossEntropy, steps, batch, new Random(1));
            return new($"LSTM language model ({backend.Name})", shape, schedule => model.Train(targets, schedule),
                () => model.Parameters.All.Select(p => (p.Name, p.Grad.ToArray())).ToList(),
                model.ZeroGrad, model);
        };
    }

    /// <summary>
    /// Checks that both schedules give the same loss and gradients (within <see cref="Agreement"/>'s tolerance), then times
    /// each in a time box of its own.
    /// </summary>
    public static TeacherForcingMeasurement Measure(TeacherForcingCase model, TimeSpan timeBox, int targetSamples)
    {
        TeacherForcingMeasurement Failed(string error, double? deviation = null) =>
            new(model.Model, model.Shape, null, null, null, null, deviation, error);
        try
        {
            (float Loss, float[][] Grads, TimeSpan Time) Once(TrainingSchedule schedule)
            {
                model.ZeroGrad();
                var watch = Stopwatch.StartNew();
                float loss = model.Train(schedule);
                var time = watch.Elapsed;
                return (loss, model.Gradients().Select(g => g.Grad).ToArray(), time);
            }
            var parallel = Once(TrainingSchedule.ParallelOverTime);
            var stepByStep = Once(TrainingSchedule.StepByStep);
            var names = model.Gradients().Select(g => g.Name).ToArray();
            double deviation = Agreement.MaxDeviation([parallel.Loss], [stepByStep.Loss]);
            string? disagreement = Agreement.Check([parallel.Loss], [stepByStep.Loss], "the step-by-step loss");
            for (int p = 0; p < names.Length; p++)
            {
                deviation = Math.Max(deviation, Agreement.MaxDeviation(parallel.Grads[p], stepByStep.Grads[p]));
                disagreement ??= Agreement.Check(parallel.Grads[p], stepByStep.Grads[p], $"the step-by-step gradient of {names[p]}");
            }
            if (disagreement is not null) return Failed("parallel " + disagreement, deviation);

            var stepSamples = SampleTimer.Measure(() => model.Train(TrainingSchedule.StepByStep), stepByStep.Time, timeBox, targetSamples);
            var parallelSamples = SampleTimer.Measure(() => model.Train(TrainingSchedule.ParallelOverTime), parallel.Time, timeBox, targetSamples);
            return new(model.Model, model.Shape, stepSamples, SampleStatistics.Of(stepSamples.MillisecondsPerIteration),
                parallelSamples, SampleStatistics.Of(parallelSamples.MillisecondsPerIteration), deviation, null);
        }
        catch (Exception e)
        {
            return Failed($"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The section's table: one row per model and shape.</summary>
    public static IReadOnlyList<string> Headers { get; } =
        ["model", "shape", "step by step", "parallel over time", "step by step / parallel", "max |Δ| loss, gradients"];

    /// <summary>The rows of <see cref="Headers"/>.</summary>
    public static IReadOnlyList<IReadOnlyList<string>> Rows(IReadOnlyList<TeacherForcingMeasurement> measurements) =>
        measurements.Select(m => (IReadOnlyList<string>)(m.Error is not null
            ? [m.Model, Describe(m.Shape), "FAILED: " + m.Error, "–", "–", Deviation(m.MaxDeviation)]
            : [m.Model, Describe(m.Shape), SummaryTable.Time(m.StepByStep!), SummaryTable.Time(m.Parallel!), SummaryTable.Times(m.Ratio), Deviation(m.MaxDeviation)]))
        .ToList();

    /// <summary>What the section says under its table.</summary>
    public const string Explanation =
        "One training step (forward, loss, backward) on a fixed batch, vocabulary or output width "
        + "256. *Parallel over time* runs everything that does not depend on the previous step over all T·N rows at once: "
        + "one product per weight and fused pointwise passes; the output-recurrent network (h_t = act(b + W·y_{t−1} + U·x_t), "
        + "o_t = c + V·h_t) has no loop over time at all, the language model keeps only its LSTM recurrence sequential, and "
        + "reads its input rows straight from the embedding table (each of the 256 rows projected once rather than each of "
        + "the T·N uses). *Step by step* is the baseline a hand-written loop over t in a framework runs: per-step products "
        + "over N rows, a per-step output layer and loss, then backward from t = T−1. Both must agree on the loss and every "
        + "gradient (same tolerance as above) before either is timed.";

    private static string Describe(BenchShape shape) => $"T={shape.Steps},N={shape.Batch},I={shape.InputSize},H={shape.HiddenSize}";

    private static string Deviation(double? deviation) => deviation is { } d ? d.ToString("G2", System.Globalization.CultureInfo.InvariantCulture) : "–";
}
