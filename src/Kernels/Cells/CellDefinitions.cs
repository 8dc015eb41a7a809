namespace Recurrent;

/// <summary>
/// The registry: every <see cref="CellKind"/>'s <see cref="CellDefinition"/>. Adding a cell is a value of the enum, a file
/// beside this one and one line in <see cref="All"/>.
/// </summary>
/// <remarks>Thread-safety: safe; a read-only registry. Lifetime: nothing to free.</remarks>
public static class CellDefinitions
{
    /// <summary>Every definition, in the order of <see cref="CellKind"/>'s values.</summary>
    public static IReadOnlyList<CellDefinition> All { get; } =
    [
        Cells.ElmanCell.Tanh,
        Cells.ElmanCell.Relu,
        Cells.LstmCell.Definition,
        Cells.GruResetAfterCell.Definition,
        Cells.GruResetBeforeCell.Definition,
    ];

    // Indexed by the enum's value: GateCount is read on hot paths' setup, so no dictionary.
    private static readonly CellDefinition?[] ByKind = Index(All);

    private static CellDefinition?[] Index(IReadOnlyList<CellDefinition> all)
    {
        var byKind = new CellDefinition?[all.Max(d => (int)d.Kind) + 1];
        foreach (var definition in all)
        {
            if (byKind[(int)definition.Kind] is not null)
                throw new InvalidOperationException($"{definition.Kind} is registered twice.");
            byKind[(int)definition.Kind] = definition;
        }
        return byKind;
    }

    /// <summary>Whether <paramref name="cell"/> has a definition.</summary>
    public static bool IsRegistered(CellKind cell) => (uint)cell < (uint)ByKind.Length && ByKind[(int)cell] is not null;

    /// <summary>The definition of <paramref name="cell"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cell"/> is not a registered cell.</exception>
    public static CellDefinition Definition(this CellKind cell) =>
        IsRegistered(cell) ? ByKind[(int)cell]! : throw new ArgumentOutOfRangeException(nameof(cell), cell, "unknown cell kind");
}
