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
        var dy = new FloatTensor(TestData.UniformSingle(random, rows * config.OutputSize), shape.Steps, shape.Batch, config.OutputSize);

        var tableTensor = new FloatTensor(table, vocab, shape.Input);
        using var actual = native.ForwardFromTable(tableTensor, ids, shape.Steps, shape.Batch, keepForBackward: true);
        using var expected = reference.ForwardFromTable(tableTensor, ids, shape.Steps, shape.Batch, keepForBackward: true);
        Assert.That(actual.Table!.Gathered, Is.EqualTo(vocab >= rows), "the table path runs exactly when V < T·N");
        Assertions.AllClose(actual.Output.ToArray(), PyTorchData.Widen(expected.Output), Tolerances.Float32, "y");
        Assertions.AllClose(actual.HiddenState.ToArray(), PyTorchData.Widen(expected.HiddenState), Tolerances.Float32, "hN");

        var actualTableGradient = TestData.UniformSingle(random, table.Length);  // accumulated into, not overwritten
        var expectedTableGradient = (float[])actualTableGradient.Clone();
        native.BackwardFromTable(actual, dy, new FloatTensor(actualTableGradient, vocab, shape.Input));
        reference.BackwardFromTable(expected, dy, new FloatTensor(expectedTableGradient, vocab, shape.Input));
        Assertions.AllClose(actualTableGradient, Array.ConvertAll(expectedTableGradient, v => (double)v), Tolerances.Float32, "d table");
        foreach (var (a, e) in native.Parameters.All.Zip(reference.Parameters.All))
            Assertions.AllClose(a.Grad.ToArray(), PyTorchData.Widen(e.Grad), Tolerances.Float32, a.Name);
    }

    [TestCase(CellKind.Lstm, 3)]
    [TestCase(CellKind.GruResetBefore, 3)]
    [TestCase(CellKind.RnnTanh, 5)]
    [TestCase(CellKind.Lstm, 20)]
    public void FromTable_WithStates_MatchesForwardAndBackwardOnGatheredRows(CellKind cell, int vocab)
    {
        const int steps = 4, batch = 3, input = 5, hidden = 7;
        var config = new RnnConfig(cell, input, hidden, numLayers: 2, bidirectional: true);
        var layer = PyTorchData.CreateLayer(config, seed: 3);
        var random = new Random(vocab);
        FloatTensor Random(params int[] shape) => new(TestData.UniformSingle(random, shape.Aggregate(1, (a, b) => a * b)), shape);
        var table = Random(vocab, input);
        var ids = Enumerable.Range(0, steps * batch).Select(r => r % 7 == 6 ? -1 : random.Next(vocab)).ToArray();
        int[] state = config.StateShape(batch);
        bool hasCell = cell.HasCellState();
        FloatTensor h0 = Random(state), dhN = Random(state), dy = Random(steps, batch, config.OutputSize);
        FloatTensor? c0 = hasCell ? Random(state) : null, dcN = hasCell ? Random(state) : null;

        var x = new FloatTensor(steps, batch, input);
        for (int r = 0; r < ids.Length; r++)
            if (ids[r] >= 0) table.Span.Slice(ids[r] * input, input).CopyTo(x.Span.Slice(r * input, input));
        using var dense = layer.Forward(x, h0, c0, keepForBackward: true);
        var expected = layer.Backward(dense, dy, dhN, dcN);
        var expectedGrads = layer.Parameters.All.Select(p => PyTorchData.Widen(p.Grad)).ToArray();
        var expectedTableGradient = new double[table.Length];
        for (int r = 0; r < ids.Length; r++)
            for (int i = 0; ids[r] >= 0 && i < input; i++) expectedTableGradient[ids[r] * input + i] += expected.Input.Span[r * input + i];
        layer.ZeroGrad();

        using var fromTable = layer.ForwardFromTable(table, ids, steps, batch, h0, c0, keepForBackward: true);
        Assert.That(fromTable.Table!.Gathered, Is.EqualTo(vocab >= steps * batch));
        Assertions.AllClose(fromTable.Output.ToArray(), PyTorchData.Widen(dense.Output), Tolerances.Float32, "y");
        Assertions.AllClose(fromTable.HiddenState.ToArray(), PyTorchData.Widen(dense.HiddenState), Tolerances.Float32, "hN");
        if (hasCell) Assertions.AllClose(fromTable.CellState!.ToArray(), PyTorchData.Widen(dense.CellState!), Tolerances.Float32, "cN");
        var tableGradient = new FloatTensor(vocab, input);
        var actual = layer.BackwardFromTable(fromTable, dy, tableGradient, dhN, dcN);
        Assertions.AllClose(actual.InitialHidden.ToArray(), PyTorchData.Widen(expected.InitialHidden), Tolerances.Float32, "dh0");
        if (hasCell) Assertions.AllClose(actual.InitialCell!.ToArray(), PyTorchData.Widen(expected.InitialCell!), Tolerances.Float32, "dc0");
        Assertions.AllClose(tableGradient.ToArray(), expectedTableGradient, Tolerances.Float32, "d table");
        foreach (var (p, e) in layer.Parameters.All.Zip(expectedGrads))
            Assertions.AllClose(p.Grad.ToArray(), e, Tolerances.Float32, p.Name);
    }

    [Test]
    public void ForwardFromTable_RejectsBadInput_NamingTheArgument()
    {
        var layer = new Lstm(3, 4);
        var table = new FloatTensor(2, 3);
        Assert.That(Assert.Throws<ArgumentException>(() => layer.ForwardFromTable(new FloatTensor(2, 4), [0, 1], 1, 2))!.ParamName, Is.EqualTo("table"));
        Assert.That(Assert.Throws<ArgumentException>(() => layer.ForwardFromTable(table, [0], 1, 2))!.Message, Does.Contain("expected [2]"));
        Assert.That(Assert.Throws<ArgumentException>(() => layer.ForwardFromTable(table, [], 0, 2))!.ParamName, Is.EqualTo("steps"));
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => layer.ForwardFromTable(table, [0, 2], 1, 2))!;
        Assert.That(outside.ParamName, Is.EqualTo("ids"));
        Assert.That(outside.Message, Does.Contain("[0, 2)"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => layer.ForwardFromTable(table, [-2, 0], 1, 2))!.ParamName, Is.EqualTo("ids"));
        var poisoned = new FloatTensor(2, 3);
        poisoned.Span[4] = float.NaN;
        Assert.That(Assert.Throws<ArgumentException>(() => layer.ForwardFromTable(poisoned, [0, 1], 1, 2))!.ParamName, Is.EqualTo("table"));
        using var pass = layer.ForwardFromTable(table, [0, 1], 1, 2, keepForBackward: true);
        Assert.That(Assert.Throws<ArgumentException>(() => layer.BackwardFromTable(pass, null, new FloatTensor(3, 3)))!.ParamName, Is.EqualTo("tableGradient"));
    }

    [Test]
    public void Backward_RefusesTheOtherKindOfPass()
    {
        var layer = new Lstm(3, 4);
        using var fromTable = layer.ForwardFromTable(new FloatTensor(2, 3), [0, 1, 1, 0, -1, 1], 3, 2, keepForBackward: true);
        var e = Assert.Throws<ArgumentException>(() => layer.Backward(fromTable, null))!;
        Assert.That(e.ParamName, Is.EqualTo("forward"));
        using var dense = layer.Forward(new FloatTensor(3, 2, 3), keepForBackward: true);
        e = Assert.Throws<ArgumentException>(() => layer.BackwardFromTable(dense, new FloatTensor(3, 2, 4), new FloatTensor(2, 3)))!;
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
