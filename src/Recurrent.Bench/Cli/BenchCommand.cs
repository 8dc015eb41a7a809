using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Running;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>
/// Runs the BenchmarkDotNet suites: every [Benchmark] class of this assembly, through BenchmarkSwitcher, with the
/// arguments after "bench" passed on (--filter, --job, --list ...).
/// </summary>
internal sealed class BenchCommand : Command<BenchCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddExporter(MarkdownExporter.GitHub, CsvExporter.Default, JsonExporter.Full)
            .WithArtifactsPath(Path.Combine("artifacts", "benchmarks"));
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchCommand).Assembly).Run([.. context.Remaining.Raw], config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
