using System.Globalization;

namespace Recurrent.Bench.Report;

/// <summary>One problem size of the report: T steps, N batch, I input features, H hidden features (one layer, one direction).</summary>
internal sealed record BenchShape(int Steps, int Batch, int InputSize, int HiddenSize)
{
    /// <summary>The standard shape of the project's comparisons (see /work/shared/PEERS.md): T=100, N=64, I=H=512.</summary>
    public static BenchShape Standard { get; } = new(100, 64, 512, 512);

    /// <summary>The small shape: T=50, N=16, I=H=128.</summary>
    public static BenchShape Small { get; } = new(50, 16, 128, 128);

    /// <summary>What the report runs when no --shapes is given.</summary>
    public static IReadOnlyList<BenchShape> Defaults { get; } = [Standard, Small];

    /// <summary>Shapes small enough for the double-precision reference backend to finish in seconds.</summary>
    public static IReadOnlyList<BenchShape> ReferenceDefaults { get; } = [new(8, 4, 16, 16), new(4, 2, 8, 8)];

    /// <summary>Written the way <see cref="ParseList"/> reads it: <c>T=100,N=64,I=512,H=512</c>.</summary>
    public override string ToString() => $"T={Steps},N={Batch},I={InputSize},H={HiddenSize}";

    /// <summary>
    /// Reads shapes separated by ';', each a comma-separated list of T=, N=, I=, H= in any order, all four required,
    /// each a positive integer. Example: <c>T=100,N=64,I=512,H=512;T=50,N=16,I=128,H=128</c>.
    /// </summary>
    /// <exception cref="FormatException">The text is malformed; the message says which shape and what is wrong.</exception>
    public static IReadOnlyList<BenchShape> ParseList(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new FormatException("--shapes: expected at least one shape such as T=100,N=64,I=512,H=512, got nothing.");
        var shapes = new List<BenchShape>();
        foreach (var part in text.Split(';', StringSplitOptions.TrimEntries))
        {
            if (part.Length == 0) continue;
            shapes.Add(Parse(part));
        }
        if (shapes.Count == 0)
            throw new FormatException($"--shapes: expected at least one shape such as T=100,N=64,I=512,H=512, got '{text}'.");
        return shapes;
    }

    /// <summary>Reads one shape such as <c>T=100,N=64,I=512,H=512</c>.</summary>
    /// <exception cref="FormatException">The text is malformed.</exception>
    public static BenchShape Parse(string text)
    {
        var values = new Dictionary<char, int>();
        foreach (var field in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var pair = field.Split('=', StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || pair[0].Length != 1 || "TNIH".IndexOf(char.ToUpperInvariant(pair[0][0])) < 0)
                throw new FormatException($"shape '{text}': expected fields T=, N=, I=, H=, got '{field}'.");
            char key = char.ToUpperInvariant(pair[0][0]);
            if (!int.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < 1)
                throw new FormatException($"shape '{text}': {key} must be a positive integer, got '{pair[1]}'.");
            if (!values.TryAdd(key, value))
                throw new FormatException($"shape '{text}': {key} is given twice.");
        }
        var missing = "TNIH".Where(k => !values.ContainsKey(k)).ToArray();
        if (missing.Length > 0)
            throw new FormatException($"shape '{text}': missing {string.Join(", ", missing.Select(k => k + "="))}; expected T=,N=,I=,H=.");
        return new BenchShape(values['T'], values['N'], values['I'], values['H']);
    }
}
