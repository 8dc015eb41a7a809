using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Recurrent.Kernels.Cpu;
using NativeLibrary = Recurrent.Kernels.Cpu.NativeLibrary;

namespace Recurrent.Bench.Report;

/// <summary>What the numbers were measured on, recorded with every report.</summary>
internal sealed record MachineInfo(
    string CpuModel, int LogicalCores, string CpuFeatures, bool Vector512Accelerated, string Os, string Architecture,
    string DotNet, IReadOnlyDictionary<string, string> Libraries, IReadOnlyDictionary<string, string> Environment, DateTime StartedUtc)
{
    /// <summary>Environment variables that change what the peers' libraries do.</summary>
    private static readonly string[] RelevantVariables = ["OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "DNNL_MAX_CPU_ISA", "DOTNET_TieredPGO"];

    public static MachineInfo Collect()
    {
        string features;
        string native;
        try
        {
            features = NativeLibrary.CpuFeatures.ToString();
            native = $"ABI {NativeLibrary.Version}, active ISA {NativeLibrary.Isa}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or NativeException)
        {
            features = native = $"unknown: {e.Message}";
        }
        var libraries = new Dictionary<string, string>
        {
            ["Recurrent"] = VersionOf(typeof(IRnnBackend).Assembly),
            ["recurrent_native"] = native,
            ["ScottPlot"] = VersionOf(typeof(ScottPlot.Plot).Assembly),
            ["Spectre.Console"] = VersionOf(typeof(Spectre.Console.AnsiConsole).Assembly),
        };
        if (GitCommit() is { } commit) libraries["Recurrent commit"] = commit;
        var environment = RelevantVariables
            .Select(v => (v, System.Environment.GetEnvironmentVariable(v)))
            .Where(p => p.Item2 is not null)
            .ToDictionary(p => p.v, p => p.Item2!);
        return new MachineInfo(ReadCpuModel(), System.Environment.ProcessorCount, features, Vector512.IsHardwareAccelerated,
            RuntimeInformation.OSDescription, RuntimeInformation.OSArchitecture.ToString(), RuntimeInformation.FrameworkDescription,
            libraries, environment, DateTime.UtcNow);
    }

    private static string VersionOf(Assembly assembly) =>
        assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>The commit of the working tree the report runs from, when git is there to say.</summary>
    private static string? GitCommit()
    {
        try
        {
            using var git = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("git", "describe --always --dirty")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = AppContext.BaseDirectory,
            });
            if (git is null) return null;
            string output = git.StandardOutput.ReadToEnd().Trim();
            return git.WaitForExit(5000) && git.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no git on this machine
        }
    }

    private static string ReadCpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }
}
