namespace Recurrent.Reference;

/// <summary>
/// The registry of reference steps: one <see cref="IReferenceCell"/> per <see cref="CellKind"/>, each in its own file beside
/// this one. Adding a cell is a file and one line in <see cref="All"/>.
/// </summary>
internal static class ReferenceCells
{
    /// <summary>Every implementation, in the order of <see cref="CellKind"/>'s values.</summary>
    public static IReadOnlyList<IReferenceCell> All { get; } =
    [
        ElmanReference.Tanh,
        ElmanReference.Relu,
        new LstmReference(),
        new GruResetAfterReference(),
        new GruResetBeforeReference(),
    ];

    private static readonly Dictionary<CellKind, IReferenceCell> ByKind = All.ToDictionary(c => c.Kind);

    /// <summary>Whether <paramref name="cell"/> has a reference implementation.</summary>
    public static bool IsRegistered(CellKind cell) => ByKind.ContainsKey(cell);

    /// <summary>The reference implementation of <paramref name="cell"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">None is registered.</exception>
    public static IReferenceCell For(CellKind cell) => ByKind.TryGetValue(cell, out var implementation) ? implementation
        : throw new ArgumentOutOfRangeException(nameof(cell), cell, "no reference implementation of this cell kind");
}
