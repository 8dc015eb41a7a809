using Recurrent.Bench.Cli;

namespace Recurrent.Bench;

internal static class Program
{
    private static int Main(string[] args) => CliApp.Run(args);
}
