using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

/// <summary>
/// A stack whose input rows come from a table (an embedding lookup): the native backend's table path (each table row
/// projected once, gate gradients summed per row before the products) against the double reference run on the
/// gathered dense input, whose input gradient is then summed per table row.
/// </summary>
[TestFixture]
public class TableInputTests
{
    /// <summary>T, N, I, H, L, bidirectional, V: V below T·N (the table path) except the last, which falls back to gathering.</summary>
    private static readonly (TestData.Shape Shape, int Vocab)[] Cases =
    [
        (new(3, 2, 5, 3, 1, false), 4),
        (new(4, 3, 3, 17, 2, true), 5),
        (new(5, 2, 20, 33, 1, false), 1),
        (new(2, 3, 7, 65, 2, false), 3),
        (new(3, 17, 33, 129, 1, true), 7),
        (new(2, 2, 3, 5, 1, false), 9),
    ];

    private static IEnumerable<TestCaseData> AllCases() =>
        from cell in TestData.AllCells
        from c in Cases
        from fused in new[] { true, false }
        select new TestCaseData(cell, c.Shape, c.Vocab, fused).SetArgDisplayNames(cell.ToString(), c.Shape.ToString(), $"V{c.Vocab}", fused ? "fused" : "unfused");

    [TestCaseSource(nameof(AllCases))]
    public void ForwardAndBackwardFromTable_MatchReferenceOnGatheredRows(CellKind cell, TestData.Shape shape, int vocab, bool fused)
    {
        var config = new RnnConfig(cell, shape.Input, shape.Hidden, shape.Layers, shape.Bidirectional);
        var native = PyTorchData.CreateLayer(config, new NativeCpuBackend(fused), seed: 3);
        var reference = PyTorchData.CreateLayer(config, ReferenceBackend.Instance, seed: 3);
        int rows = shape.Steps * shape.Batch;
        var random = new Random(rows * 7 + vocab);
        var table = TestData.UniformSingle(random, vocab * shape.Input);
        // Repeated ids, and −1 (a zero row, as a sequence model's start value without a start token).
        var ids = Enumerable.Range(0, rows).Select(r => r % 5 == 4 ? -1 : random.Next(vocab)).ToArray();
        var dy = new Tensor(TestData.UniformSingle(random, rows * config.OutputSize), shape.Steps, shape.Batch, config.OutputSize);

        using var actual = native.ForwardFromTable(table, vocab, ids, shape.Steps, shape.Batch, keepForBackward: true);
        using var expected = reference.ForwardFromTable(table, vocab, ids, shape.Steps, shape.Batch, keepForBackward: true);
        Assert.That(actual.Table!.Gathered, Is.EqualTo(vocab >= rows), "the table path runs exactly when V < T·N");
        Assertions.AllClose(actual.Output.Data, PyTorchData.Widen(expected.Output), Tolerances.Float32, "y");
        Assertions.AllClose(actual.HiddenState.Data, PyTorchData.Widen(expected.HiddenState), Tolerances.Float32, "hN");

        var actualTableGradient = TestData.UniformSingle(random, table.Length);  // accumulated into, not overwritten
        var expectedTableGradient = (float[])actualTableGradient.Clone();
        native.BackwardFromTable(actual, dy, actualTableGradient);
        reference.BackwardFromTable(expected, dy, expectedTableGradient);
        Assertions.AllClose(actualTableGradient, Array.ConvertAll(expectedTableGradient, v => (double)v), Tolerances.Float32, "d table");
        foreach (var (a, e) in native.Parameters.All.Zip(reference.Parameters.All))
            Assertions.AllClose(a.Grad.Data, PyTorchData.Widen(e.Grad), Tolerances.Float32, a.Name);
    }

    [Test]
    public void Backward_RefusesTheOtherKindOfPass()
    {
        var layer = new Lstm(3, 4);
        using var fromTable = layer.ForwardFromTable(new float[2 * 3], 2, [0, 1, 1, 0, -1, 1], 3, 2, keepForBackward: true);
        var e = Assert.Throws<ArgumentException>(() => layer.Backward(fromTable, null))!;
        Assert.That(e.ParamName, Is.EqualTo("forward"));
        using var dense = layer.Forward(new Tensor(3, 2, 3), keepForBackward: true);
        e = Assert.Throws<ArgumentException>(() => layer.BackwardFromTable(dense, new Tensor(3, 2, 4), new float[6]))!;
        Assert.That(e.ParamName, Is.EqualTo("forward"));
    }

    [Test]
    public void NativeRnn_RejectsAnIdOutsideTheTable_NamingIt()
    {
        const int steps = 2, batch = 2, input = 3, hidden = 4, vocab = 3;
        int gh = 4 * hidden;
        var e = Assert.Throws<NativeException>(() => NativeRnn.Forward(CellKind.Lstm, true, steps, batch, input, hidden, false,
            new float[gh * input], new float[gh * hidden], new float[gh], new float[gh], RnnInputRows.FromTable(new float[vocab * input], vocab, [0, 2, 3, 1]),
            new float[batch * hidden], new float[batch * hidden], new float[steps * batch * hidden], new float[batch * hidden], new float[batch * hidden], false))!;
        Assert.That(e.Message, Does.Contain("input_ids[2] is 3").And.Contain("[0, 3)"));
    }
}
