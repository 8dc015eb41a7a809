namespace Recurrent.Bench.Report;

/// <summary>The command-line names of the cells: short, lower case, as users type them.</summary>
internal static class CellNames
{
    private static readonly (string Name, CellKind Cell)[] Names =
    [
        ("lstm", CellKind.Lstm),
        ("gru", CellKind.GruResetAfter),
        ("gru-reset-after", CellKind.GruResetAfter),
        ("gru-reset-before", CellKind.GruResetBefore),
        ("rnn", CellKind.RnnTanh),
        ("rnn-tanh", CellKind.RnnTanh),
        ("rnn-relu", CellKind.RnnRelu),
    ];

    /// <summary>The report's default cells: LSTM, both GRU forms, Elman RNN with tanh.</summary>
    public static IReadOnlyList<CellKind> Defaults { get; } = [CellKind.Lstm, CellKind.GruResetAfter, CellKind.GruResetBefore, CellKind.RnnTanh];

    /// <summary>Every accepted name, for help and error messages.</summary>
    public static string Accepted => string.Join(", ", Names.Select(n => n.Name));

    /// <summary>The short name of a cell for tables and file names.</summary>
    public static string Of(CellKind cell) => cell switch
    {
        CellKind.Lstm => "lstm",
        CellKind.GruResetAfter => "gru-reset-after",
        CellKind.GruResetBefore => "gru-reset-before",
        CellKind.RnnTanh => "rnn-tanh",
        CellKind.RnnRelu => "rnn-relu",
        _ => cell.ToString(),
    };

    /// <summary>Reads a comma-separated list of cell names (or CellKind names), without duplicates, in the order given.</summary>
    /// <exception cref="FormatException">A name is unknown.</exception>
    public static IReadOnlyList<CellKind> ParseList(string text)
    {
        var cells = new List<CellKind>();
        foreach (var name in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var match = Names.Where(n => n.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(n => (CellKind?)n.Cell).FirstOrDefault();
            if (match is null && Enum.TryParse<CellKind>(name, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)) match = parsed;
            if (match is null) throw new FormatException($"--cells: unknown cell '{name}'; expected some of {Accepted}.");
            if (!cells.Contains(match.Value)) cells.Add(match.Value);
        }
        if (cells.Count == 0) throw new FormatException($"--cells: expected at least one of {Accepted}, got '{text}'.");
        return cells;
    }
}
