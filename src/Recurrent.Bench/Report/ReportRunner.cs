using System.Diagnostics;
using Recurrent.Bench.Peers;
using Spectre.Console;

namespace Recurrent.Bench.Report;

/// <summary>
/// Runs a report: measures the machine's ceiling, then every configuration (cell × shape × mode × implementation),
/// each first checked for agreement and only then timed. A failing implementation is recorded with its error and
/// the run goes on.
/// </summary>
internal sealed class ReportRunner(ReportOptions options, IAnsiConsole console)
{
    /// <summary>No configuration gets less than this, however many there are: below it the samples are too few to mean much.</summary>
    private static readonly TimeSpan MinTimeBox = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// Configurations not started when measuring has taken this many times the budget (or the sum of the minimum time
    /// boxes, when that is larger) are skipped and listed as such:
    /// on a busy machine slow configurations overrun their boxes (each keeps its minimum samples), and the report must
    /// still end in bounded time.
    /// </summary>
    public const double DeadlineFactor = 2;

    /// <summary>The share of the budget the teacher-forcing section gets on top of it, split over its models and schedules.</summary>
    public const double TeacherForcingBudgetShare = 0.25;

    /// <summary>An implementation the report measures: one of our backend variants or a peer.</summary>
    private sealed record Implementation(string Name, VariantRole Role, Func<CellKind, RunMode, bool> Supports, Func<Workload, RunMode, IPeerRun> Prepare, string? Error);

    public ReportResult Run(IReadOnlyList<IPeer> peers, IReadOnlyList<UnavailablePeer> unavailablePeers)
    {
        var total = Stopwatch.StartNew();
        var machine = MachineInfo.Collect();
        var backends = new List<IRnnBackend>();
        try
        {
            var implementations = new List<Implementation>();
            foreach (var variant in options.Backend.Variants)
            {
                IRnnBackend? backend = null;
                string? error = null;
                try
                {
                    backend = variant.Create();
                    backends.Add(backend);
                }
                catch (Exception e)
                {
                    error = $"could not create the backend: {e.GetType().Name}: {e.Message}";
                }
                string name = backend?.Name ?? (variant.Role == VariantRole.Unfused ? $"{options.Backend.Name}-unfused" : options.Backend.Name);
                implementations.Add(new(name, variant.Role, (_, _) => true, (w, m) => new BackendRun(backend!, w, m), error));
            }
            if (options.Peers)
                foreach (var peer in peers)
                    implementations.Add(new(peer.Name, VariantRole.Peer, (c, m) => peer.Supports(c) && (m == RunMode.Inference || peer.SupportsTraining),
                        (w, m) => peer.Prepare(w.Parameters, w.Input, m == RunMode.Training), null));

            var shapes = options.Full ? options.Sweep.Select(p => p.Shape).Distinct().ToList() : options.Shapes.ToList();
            // Our variants everywhere first, the peers after: when a busy machine makes the run hit its deadline, what
            // is skipped is the side-by-side, not the fused-vs-unfused comparison that is the report's main job.
            var configurations = (from peerPhase in new[] { false, true }
                                  from shape in shapes
                                  from cell in options.Cells
                                  from mode in options.Modes
                                  from implementation in implementations
                                  where (implementation.Role == VariantRole.Peer) == peerPhase && implementation.Supports(cell, mode)
                                  select (shape, cell, mode, implementation)).ToList();

            MachineCeiling ceiling = null!;
            var measurements = new List<Measurement>();
            var teacherForcing = new List<TeacherForcingMeasurement>();
            // The sequence models run on the report's backend (its fused variant; see TeacherForcingSection.Cases), else on the default.
            var layerBackend = backends.FirstOrDefault() ?? NativeCpuBackend.Default;
            var teacherCases = options.TeacherForcingShapes.SelectMany(shape => TeacherForcingSection.Cases(shape, layerBackend)).ToList();
            console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(context =>
                {
                    var ceilingTask = context.AddTask("measuring this machine's ceiling (FMA probe, GEMM)", maxValue: 1);
                    ceiling = MachineCeiling.Measure(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(2));
                    ceilingTask.Increment(1);
                    var task = context.AddTask("configurations", maxValue: Math.Max(1, configurations.Count));
                    var measuring = Stopwatch.StartNew();
                    var deadline = TimeSpan.FromTicks(Math.Max(options.Budget.Ticks, MinTimeBox.Ticks * configurations.Count)) * DeadlineFactor;
                    // The reference corner per problem, and the first output that passed per problem and mode, which every
                    // later implementation of the same problem must match.
                    var references = new Dictionary<(BenchShape, CellKind), (float[]? Corner, string? Error)>();
                    var firstOutputs = new Dictionary<(BenchShape, CellKind, RunMode), (float[] Output, string Name)>();
                    Workload? workload = null;
                    int done = 0;
                    foreach (var (shape, cell, mode, implementation) in configurations)
                    {
                        task.Description = Markup.Escape($"{implementation.Name}: {Measurement.Label(cell, shape, mode)}");
                        if (measuring.Elapsed > deadline)
                        {
                            measurements.Add(new(implementation.Name, implementation.Role, cell, shape, mode, Workload.FlopsOf(cell, shape, mode), null, null, null,
                                $"skipped: measuring passed {DeadlineFactor}× the budget of {options.Budget.TotalSeconds:F0} s (a busy machine?); rerun with a larger --budget or fewer --cells/--shapes", Skipped: true));
                        }
                        else
                        {
                            if (workload is null || workload.Cell != cell || workload.Shape != shape) workload = new Workload(cell, shape);
                            if (!references.TryGetValue((shape, cell), out var reference))
                            {
                                try { reference = (workload.ReferenceCorner(Agreement.ReferenceSteps, Agreement.ReferenceRows), null); }
                                catch (Exception e) { reference = (null, $"the reference failed: {e.Message}"); }
                                references[(shape, cell)] = reference;
                            }
                            firstOutputs.TryGetValue((shape, cell, mode), out var first);
                            // What is left of the budget, shared by what is left to do: a configuration that overran
                            // (a slow iteration still gets its minimum samples) shortens the ones after it.
                            var left = options.Budget - measuring.Elapsed;
                            var timeBox = TimeSpan.FromTicks(Math.Max(MinTimeBox.Ticks, left.Ticks / (configurations.Count - done)));
                            var measurement = MeasureOne(workload, mode, implementation, reference.Corner, reference.Error, first.Output, first.Name, timeBox, out var output);
                            if (output is not null && first.Output is null) firstOutputs[(shape, cell, mode)] = (output, implementation.Name);
                            measurements.Add(measurement);
                        }
                        task.Increment(1);
                        done++;
                    }
                    task.Description = "configurations";

                    if (teacherCases.Count == 0) return;
                    var teacherTask = context.AddTask("teacher forcing: parallel over time vs step by step", maxValue: teacherCases.Count);
                    var teacherBox = TimeSpan.FromTicks(Math.Max(MinTimeBox.Ticks, (long)(options.Budget.Ticks * TeacherForcingBudgetShare / (2 * teacherCases.Count))));
                    foreach (var create in teacherCases)
                    {
                        TeacherForcingCase? model = null;
                        try { model = create(); }
                        catch (Exception e) { teacherForcing.Add(new("(could not be built)", BenchShape.Standard, null, null, null, null, null, $"{e.GetType().Name}: {e.Message}")); }
                        if (model is not null)
                        {
                            teacherTask.Description = Markup.Escape($"teacher forcing: {model.Model} {model.Shape}");
                            using (model.Owned) teacherForcing.Add(TeacherForcingSection.Measure(model, teacherBox, options.TargetSamples));
                        }
                        teacherTask.Increment(1);
                    }
                    teacherTask.Description = "teacher forcing";
                });

            return new ReportResult(options, machine, ceiling, implementations.Where(i => i.Role != VariantRole.Peer).Select(i => i.Name).ToList(),
                options.Peers ? peers.Select(p => p.Name).ToList() : [], unavailablePeers, measurements, total.Elapsed, teacherForcing);
        }
        finally
        {
            foreach (var backend in backends) (backend as IDisposable)?.Dispose();
        }
    }

    private Measurement MeasureOne(Workload workload, RunMode mode, Implementation implementation, float[]? reference, string? referenceError,
        float[]? firstOutput, string? firstName, TimeSpan timeBox, out float[]? output)
    {
        output = null;
        double flops = workload.Flops(mode);
        Measurement Failed(string error, double? deviation = null) =>
            new(implementation.Name, implementation.Role, workload.Cell, workload.Shape, mode, flops, null, null, deviation, error);

        if (implementation.Error is not null) return Failed(implementation.Error);
        if (reference is null) return Failed(referenceError ?? "no reference output");
        try
        {
            using var run = implementation.Prepare(workload, mode);
            var firstRun = Stopwatch.StartNew();
            run.Run();
            firstRun.Stop();
            var y = run.Output.ToArray();
            if (y.Length != workload.Shape.Steps * workload.Shape.Batch * workload.Shape.HiddenSize)
                return Failed($"output has {y.Length} elements, expected T·N·H = {workload.Shape.Steps * workload.Shape.Batch * workload.Shape.HiddenSize}");
            var corner = workload.Corner(y, Agreement.ReferenceSteps, Agreement.ReferenceRows);
            double deviation = Agreement.MaxDeviation(corner, reference);
            string? disagreement = Agreement.Check(corner, reference, $"the reference (first {Agreement.ReferenceSteps} steps, first {Agreement.ReferenceRows} batch rows)")
                ?? (firstOutput is null ? null : Agreement.Check(y, firstOutput, firstName!));
            if (disagreement is not null) return Failed(disagreement, deviation);
            output = (float[])y.Clone();
            var samples = SampleTimer.Measure(run.Run, firstRun.Elapsed, timeBox, options.TargetSamples);
            return new(implementation.Name, implementation.Role, workload.Cell, workload.Shape, mode, flops, samples,
                SampleStatistics.Of(samples.MillisecondsPerIteration), deviation, null);
        }
        catch (Exception e)
        {
            return Failed($"{e.GetType().Name}: {e.Message}");
        }
    }
}
