using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

/// <summary>
/// The native library numbers its cells in one registration (src/Kernels/Native/cells/registry.h) and the managed side
/// in <see cref="CellKind"/>; a call passes the number across. These tests hold the two to one definition: same names at
/// the same numbers, same gate counts and cell-state flags, and no cell on one side only. Each instruction set has its
/// own table, so every path the CPU offers is checked.
/// </summary>
[TestFixture]
public class NativeCellRegistryTests
{
    private static IEnumerable<NativeIsa> Isas() => [NativeIsa.Auto, NativeIsa.Avx2, NativeIsa.Portable];

    [TestCaseSource(nameof(Isas))]
    public void EveryCellKind_HasTheSameNameGateCountCellStateAndParameterCount_InTheNativeRegistry(NativeIsa isa)
    {
        try
        {
            NativeLibrary.Isa = isa;
            foreach (var cell in Enum.GetValues<CellKind>())
            {
                var (name, gates, hasCellState, parameters) = NativeRnn.NativeCellInfo((int)cell);
                Assert.Multiple(() =>
                {
                    Assert.That(name, Is.EqualTo(cell.ToString()), $"native name of cell {(int)cell}");
                    Assert.That(gates, Is.EqualTo(cell.GateCount()), $"gate count of {cell}");
                    Assert.That(hasCellState, Is.EqualTo(cell.HasCellState()), $"cell state of {cell}");
                    Assert.That(parameters, Is.EqualTo(cell.Definition().Parameters.Count), $"parameter count of {cell}");
                });
            }
        }
        finally
        {
            NativeLibrary.Isa = NativeIsa.Auto;
        }
    }

    [Test]
    public void NativeRegistry_HasNoCellThatCellKindLacks()
    {
        int managed = Enum.GetValues<CellKind>().Length;
        Assert.That(NativeRnn.NativeCellCount, Is.EqualTo(managed));
        // The numbers are contiguous from 0 on both sides, so the count settles it; the first number past the end is refused.
        Assert.That(Enum.GetValues<CellKind>().Select(c => (int)c), Is.EqualTo(Enumerable.Range(0, managed)));
        var error = Assert.Throws<NativeException>(() => NativeRnn.NativeCellInfo(managed))!;
        Assert.That(error.Message, Does.Contain("cell"));
    }
}
