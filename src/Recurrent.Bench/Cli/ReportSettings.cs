using System.ComponentModel;
using Recurrent.Bench.Report;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>Options of the report (the default command). Spectre.Console.Cli parses them; <see cref="Validate"/> resolves them.</summary>
internal sealed class ReportSettings : CommandSettings
{
    /// <summary>Total measuring time of the quick report; with the ceiling probe and checks the run stays under 3 minutes.</summary>
    public const double QuickBudgetSeconds = 75;

    /// <summary>Total measuring time of the full sweep.</summary>
    public const double FullBudgetSeconds = 900;

    [CommandOption("--full")]
    [Description("Sweep N ∈ {1,8,32,64,256}, H ∈ {128,256,512,1024} (I = H), T ∈ {1,10,100,1000}, one factor at a time around T=100,N=64,I=H=512, and draw curves.")]
    public bool Full { get; init; }

    [CommandOption("--backend <NAME>")]
    [Description("auto (ILGPU on CUDA when a GPU is present, else the native CPU library), native-cpu, ilgpu-cuda, ilgpu-cpu or reference (tiny shapes only).")]
    [DefaultValue("auto")]
    public string Backend { get; init; } = "auto";

    [CommandOption("--cells <LIST>")]
    [Description("Comma-separated cells: lstm, gru-reset-after (gru), gru-reset-before, rnn-tanh (rnn), rnn-relu. Default: lstm,gru-reset-after,gru-reset-before,rnn-tanh.")]
    public string? Cells { get; init; }

    [CommandOption("--shapes <LIST>")]
    [Description("Shapes separated by ';', e.g. \"T=100,N=64,I=512,H=512;T=50,N=16,I=128,H=128\" (the default).")]
    public string? Shapes { get; init; }

    [CommandOption("--modes <LIST>")]
    [Description("inference, training or both (default): inference is forward only; training is forward + backward.")]
    public string? Modes { get; init; }

    [CommandOption("--out <DIR>")]
    [Description("Report folder, replaced as a whole when the run completes.")]
    [DefaultValue("artifacts/report")]
    public string Out { get; init; } = "artifacts/report";

    [CommandOption("--samples <COUNT>")]
    [Description("Target timed samples per configuration (fewer when its time box runs out; never under 3).")]
    [DefaultValue(15)]
    public int Samples { get; init; } = 15;

    [CommandOption("--budget <SECONDS>")]
    [Description("Total measuring time, shared out evenly as each configuration's time box. Default 75 (quick) or 900 (--full).")]
    public double? Budget { get; init; }

    [CommandOption("--no-peers")]
    [Description("Do not load or measure the peers (oneDNN, ONNX Runtime).")]
    public bool NoPeers { get; init; }

    [CommandOption("--no-teacher-forcing")]
    [Description("Skip the teacher-forcing section (output-recurrent networks and an LSTM language model trained parallel over time vs step by step, at the report's shapes).")]
    public bool NoTeacherForcing { get; init; }

    /// <summary>The resolved options, set by a successful <see cref="Validate"/>.</summary>
    public ReportOptions? Resolved { get; private set; }

    public override ValidationResult Validate()
    {
        try
        {
            Resolved = Resolve();
            return ValidationResult.Success();
        }
        catch (FormatException e)
        {
            return ValidationResult.Error(e.Message);
        }
    }

    private ReportOptions Resolve()
    {
        var notes = new List<string>();
        BackendFamily backend;
        if (Backend.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            backend = BackendCatalog.Best();
            if (backend.SlowOnlyTinyShapes)
                notes.Add("No fast backend is present (" + string.Join("; ", BackendCatalog.All.Where(b => !b.SlowOnlyTinyShapes)
                    .Select(b => $"{b.Name}: {b.UnavailableReason}")) + $"), so this report measures the {backend.Name} backend.");
        }
        else
        {
            backend = BackendCatalog.Find(Backend) ?? throw new FormatException($"--backend: unknown backend '{Backend}'; expected one of {BackendCatalog.Accepted}.");
            if (!backend.IsAvailable) throw new FormatException($"--backend: {backend.Name} is not available here: {backend.UnavailableReason}.");
        }
        if (Samples < SampleTimer.MinSamples) throw new FormatException($"--samples: expected at least {SampleTimer.MinSamples}, got {Samples}.");
        if (Budget is { } b && !(b > 0 && double.IsFinite(b))) throw new FormatException($"--budget: expected a positive number of seconds, got {b}.");
        if (Full && Shapes is not null) throw new FormatException("--full sweeps its own shapes; drop --shapes, or drop --full.");
        if (Full && backend.SlowOnlyTinyShapes)
            throw new FormatException($"--full: the {backend.Name} backend is only sensible at tiny shapes and the sweep reaches T=1000, N=256, H=1024; use a fast backend ({string.Join(", ", BackendCatalog.All.Where(b => !b.SlowOnlyTinyShapes).Select(b => b.Name))}).");

        IReadOnlyList<BenchShape> shapes;
        if (Shapes is not null) shapes = BenchShape.ParseList(Shapes);
        else if (backend.SlowOnlyTinyShapes && !Full)
        {
            shapes = BenchShape.ReferenceDefaults;
            notes.Add($"The {backend.Name} backend is only sensible at tiny shapes, so the report runs {string.Join(" and ", shapes)} instead of the standard shapes; pass --shapes to override.");
        }
        else shapes = BenchShape.Defaults;

        var modes = Modes is null ? [RunMode.Inference, RunMode.Training] : ParseModes(Modes);
        var sweep = Full ? ReportOptions.FullSweep() : [];
        if (Full) notes.Add("The full sweep varies one factor at a time around T=100, N=64, I=H=512 (with I = H when H varies), not the whole grid.");
        return new ReportOptions(backend, Cells is null ? CellNames.Defaults : CellNames.ParseList(Cells), shapes, modes, Samples,
            TimeSpan.FromSeconds(Budget ?? (Full ? FullBudgetSeconds : QuickBudgetSeconds)), Full, sweep, Out, !NoPeers, notes, !NoTeacherForcing);
    }

    /// <summary>Reads --modes: inference, training or both, comma-separated.</summary>
    /// <exception cref="FormatException">A mode is unknown.</exception>
    internal static IReadOnlyList<RunMode> ParseModes(string text)
    {
        var modes = new List<RunMode>();
        foreach (var name in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Enum.TryParse<RunMode>(name, ignoreCase: true, out var mode) || !Enum.IsDefined(mode))
                throw new FormatException($"--modes: unknown mode '{name}'; expected inference, training or both.");
            if (!modes.Contains(mode)) modes.Add(mode);
        }
        return modes.Count > 0 ? modes : throw new FormatException($"--modes: expected inference, training or both, got '{text}'.");
    }
}
