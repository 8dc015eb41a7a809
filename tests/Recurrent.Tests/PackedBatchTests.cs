using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>The packed layout of a variable-length batch, and the layer API's checks of lengths.</summary>
[TestFixture]
public class PackedBatchTests
{
    [Test]
    public void Create_SortsByLengthStably_AndCountsTheRunningSequencesPerStep()
    {
        var packed = PackedBatch.Create([2, 4, 1, 4, 2], steps: 4, batch: 5)!;
        Assert.That(packed.Order, Is.EqualTo(new[] { 1, 3, 0, 4, 2 }), "longest first; equal lengths keep batch order");
        Assert.That(packed.BatchSizes, Is.EqualTo(new[] { 5, 4, 2, 2 }));
        Assert.That(packed.Offsets, Is.EqualTo(new[] { 0, 5, 9, 11, 13 }));
        Assert.That(packed.Rows, Is.EqualTo(2 + 4 + 1 + 4 + 2), "the real tokens");
        Assert.That(packed.RunningSteps, Is.EqualTo(4));
    }

    /// <summary>Steps where no sequence runs (every length below T) are not steps of a pass: RunningSteps is the longest length.</summary>
    [Test]
    public void RunningSteps_IsTheLongestLength()
    {
        var packed = PackedBatch.Create([2, 1, 2], steps: 5, batch: 3)!;
        Assert.That(packed.BatchSizes, Is.EqualTo(new[] { 3, 2, 0, 0, 0 }));
        Assert.That(packed.RunningSteps, Is.EqualTo(2));
    }

    [Test]
    public void Create_IsNull_WithoutLengths_OrWhenEverySequenceRunsAllSteps()
    {
        Assert.That(PackedBatch.Create(null, 3, 2), Is.Null);
        Assert.That(PackedBatch.Create([3, 3], 3, 2), Is.Null);
    }

    [Test]
    public void PackThenUnpack_KeepsTheRealRows_AndZeroesThePadding()
    {
        int steps = 3, batch = 3, features = 2;
        var packed = PackedBatch.Create([1, 3, 2], steps, batch)!;
        var padded = Enumerable.Range(1, steps * batch * features).Select(v => (float)v).ToArray();
        var rows = new float[packed.Rows * features];
        packed.Pack(padded, rows, features);
        // Step 0: sequences 1, 2, 0 (sorted by length); step 1: 1, 2; step 2: 1.
        Assert.That(rows, Is.EqualTo(new float[] { 3, 4, 5, 6, 1, 2, 9, 10, 11, 12, 15, 16 }));
        var back = new float[padded.Length];
        Array.Fill(back, float.NaN);
        packed.Unpack(rows, back, features);
        for (int r = 0; r < steps * batch; r++)
        {
            bool real = r / batch < new[] { 1, 3, 2 }[r % batch];
            Assert.That(back.AsSpan(r * features, features).ToArray(), Is.EqualTo(real ? padded.AsSpan(r * features, features).ToArray() : new float[features]), $"row {r}");
        }
        var ids = Enumerable.Range(0, steps * batch).ToArray();
        var packedIds = new int[packed.Rows];
        packed.PackIds(ids, packedIds);
        Assert.That(packedIds, Is.EqualTo(new[] { 1, 2, 0, 4, 5, 7 }));
    }

    [Test]
    public void SortStates_ThenUnsortStates_RoundTrips_EverySlice()
    {
        var packed = PackedBatch.Create([1, 3, 2], 3, 3)!;
        var states = Enumerable.Range(0, 2 * 3 * 2).Select(v => (float)v).ToArray();   // [S=2, N=3, H=2]
        var sorted = new float[states.Length];
        packed.SortStates(states, sorted, 2);
        Assert.That(sorted, Is.EqualTo(new float[] { 2, 3, 4, 5, 0, 1, 8, 9, 10, 11, 6, 7 }));
        var back = new float[states.Length];
        packed.UnsortStates(sorted, back, 2);
        Assert.That(back, Is.EqualTo(states));
    }

    private static IEnumerable<TestCaseData> BadLengths()
    {
        yield return new TestCaseData(new[] { 2 }).SetArgDisplayNames("wrong_count");
        yield return new TestCaseData(new[] { 2, 0 }).SetArgDisplayNames("zero");
        yield return new TestCaseData(new[] { 4, 1 }).SetArgDisplayNames("above_T");
        yield return new TestCaseData(new[] { -1, 1 }).SetArgDisplayNames("negative");
    }

    [TestCaseSource(nameof(BadLengths))]
    public void Forward_RefusesBadLengths_NamingThem_BeforeAnyWork(int[] lengths)
    {
        var layer = new Lstm(2, 3);
        var x = new FloatTensor(3, 2, 2);
        var e = Assert.Throws<ArgumentException>(() => layer.Forward(x, lengths: lengths));
        Assert.That(e!.ParamName, Is.EqualTo("lengths"));
        var table = new FloatTensor(4, 2);
        e = Assert.Throws<ArgumentException>(() => layer.ForwardFromTable(table, new int[6], 3, 2, lengths: lengths));
        Assert.That(e!.ParamName, Is.EqualTo("lengths"));
    }

    [Test]
    public void FromValues_RefusesNonIntegerLengths_NamingThem()
    {
        foreach (var bad in new[] { 1.5f, float.NaN, -2f })
        {
            var e = Assert.Throws<ArgumentException>(() => SequenceLengths.FromValues(new[] { 2f, bad }, 3, 2));
            Assert.That(e!.ParamName, Is.EqualTo("lengths"), $"{bad}");
        }
    }
}
