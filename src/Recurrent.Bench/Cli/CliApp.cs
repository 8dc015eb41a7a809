using Spectre.Console;
using Spectre.Console.Cli;

namespace Recurrent.Bench.Cli;

/// <summary>The command line: the report by default, "bench" for the BenchmarkDotNet suites.</summary>
internal static class CliApp
{
    /// <summary>Exit code of a usage error (unknown option, malformed value), as sysexits' EX_USAGE-like convention of most CLIs.</summary>
    public const int UsageError = 2;

    /// <summary>Runs the command line on <paramref name="console"/> (the terminal when null) and returns the exit code.</summary>
    public static int Run(string[] args, IAnsiConsole? console = null)
    {
        if (console is null)
        {
            console = AnsiConsole.Console;
            // Redirected to a file or CI log, Spectre assumes 80 columns and wraps the table cell by cell; a log reads
            // better with long lines.
            if (Console.IsOutputRedirected) console.Profile.Width = Math.Max(console.Profile.Width, 180);
        }
        var app = new CommandApp<ReportCommand>();
        app.Configure(config =>
        {
            config.SetApplicationName("dotnet run -c Release --project src/Recurrent.Bench --");
            config.ConfigureConsole(console);
            // Unknown options are usage errors, not silently ignored; "bench" takes its pass-through arguments after "--".
            config.UseStrictParsing();
            config.AddCommand<ReportCommand>("report")
                .WithDescription("The benchmark report (the default): fused vs unfused cells, peers side by side; writes artifacts/report.");
            config.AddCommand<LanguageModelCommand>("language-model")
                .WithDescription("Times one schedule (step-by-step or parallel) of the teacher-forcing section's LSTM language model alone, at one shape.");
            config.AddCommand<LengthsCommand>("lengths")
                .WithDescription("Variable-length batches on the native CPU backend: lengths spread from T/2 to T, packed against padded to T.");
            config.AddCommand<BenchCommand>("bench")
                .WithDescription("The BenchmarkDotNet suites; arguments after -- go to BenchmarkSwitcher (e.g. bench -- --filter '*Gemm*').");
            config.SetExceptionHandler((exception, _) =>
            {
                if (exception is CommandAppException)
                {
                    console.MarkupLine($"[red]error:[/] {Markup.Escape(exception.Message)}");
                    console.MarkupLine("Run with --help for the options.");
                    return UsageError;
                }
                console.WriteException(exception);
                return 1;
            });
        });
        return app.Run(args);
    }
}
