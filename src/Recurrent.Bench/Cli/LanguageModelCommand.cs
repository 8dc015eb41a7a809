using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Recurrent.Bench.Report;
using Recurrent.Sequence;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>
/// Times one schedule of the teacher-forcing section's LSTM language model alone (the same model, vocabulary, seed and
/// targets, on the default native backend), for before/after comparisons of that schedule without the whole report:
/// untimed training steps for the warm-up time, then the timed ones; prints each step's time and their median per step
/// and per time step.
/// </summary>
internal sealed class LanguageModelCommand(IAnsiConsole console) : Command<LanguageModelCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--schedule <NAME>")]
        [Description("step-by-step (the stack stepped one time step at a time) or parallel (over all T·N rows at once).")]
        [DefaultValue("step-by-step")]
        public string Schedule { get; init; } = "step-by-step";

        [CommandOption("--shape <SHAPE>")]
        [Description("T, N, I (the embedding width) and H, as the report's --shapes writes one, e.g. T=50,N=16,I=128,H=128.")]
        [DefaultValue("T=100,N=64,I=512,H=512")]
        public string Shape { get; init; } = "T=100,N=64,I=512,H=512";

        [CommandOption("--iterations <COUNT>")]
        [Description("Timed training steps after the untimed first one.")]
        [DefaultValue(5)]
        public int Iterations { get; init; } = 5;

        [CommandOption("--warmup <SECONDS>")]
        [Description("Untimed training steps first, for at least this long (and at least one): tiered compilation promotes the per-step code only after 30 calls and a quiet period, so the first half second or so of small steps runs slower code.")]
        [DefaultValue(2.0)]
        public double Warmup { get; init; } = 2.0;

        public override ValidationResult Validate()
        {
            if (Schedule is not ("step-by-step" or "parallel"))
                return ValidationResult.Error($"--schedule: expected step-by-step or parallel, got '{Schedule}'.");
            if (Iterations < 1) return ValidationResult.Error($"--iterations: expected at least 1, got {Iterations}.");
            if (!(Warmup >= 0 && double.IsFinite(Warmup))) return ValidationResult.Error($"--warmup: expected seconds ≥ 0, got {Warmup}.");
            try
            {
                if (BenchShape.ParseList(Shape).Count != 1) return ValidationResult.Error($"--shape: expected one shape, got '{Shape}'.");
            }
            catch (FormatException e)
            {
                return ValidationResult.Error(e.Message.StartsWith("--shapes") ? "--shape" + e.Message["--shapes".Length..] : "--shape: " + e.Message);
            }
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var shape = BenchShape.ParseList(settings.Shape)[0];
        var schedule = settings.Schedule == "parallel" ? TrainingSchedule.ParallelOverTime : TrainingSchedule.StepByStep;
        // As TeacherForcingSection builds it.
        using var model = new RecurrentSequenceModel(new Lstm(shape.InputSize, shape.HiddenSize, seed: 1), TeacherForcingShapes.OutputSize,
            SequenceLoss.SoftmaxCrossEntropy, startToken: 0, seed: 1);
        var targets = TeacherForcingShapes.RandomTargets(SequenceLoss.SoftmaxCrossEntropy, shape.Steps, shape.Batch, new Random(1));
        var warmup = Stopwatch.StartNew();
        int warmups = 0;
        do
        {
            model.Train(targets, schedule);
            warmups++;
        }
        while (warmup.Elapsed.TotalSeconds < settings.Warmup);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var milliseconds = new double[settings.Iterations];
        for (int i = 0; i < milliseconds.Length; i++)
        {
            model.ZeroGrad();
            var watch = Stopwatch.StartNew();
            model.Train(targets, schedule);
            milliseconds[i] = watch.Elapsed.TotalMilliseconds;
        }
        double median = SampleStatistics.Of(milliseconds).Median;
        var inv = CultureInfo.InvariantCulture;
        console.WriteLine(string.Create(inv, $"LSTM language model, {settings.Schedule}, {shape}, O={TeacherForcingShapes.OutputSize}: "
            + $"{string.Join(" ", milliseconds.Select(m => m.ToString("F1", inv)))} ms; median {median:F1} ms per training step, "
            + $"{median / shape.Steps:F3} ms per time step (after {warmups} untimed)"));
        return 0;
    }
}
