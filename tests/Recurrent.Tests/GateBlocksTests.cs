using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>Gate-block reordering: the destination's blocks in the map's order, undone by Unpermute, and bad maps refused.</summary>
[TestFixture]
public class GateBlocksTests
{
    [Test]
    public void Permute_TakesEachDestinationBlockFromItsSourceBlock_AndUnpermuteUndoesIt()
    {
        // Four blocks of three: block g holds 10·g + i.
        float[] source = [.. Enumerable.Range(0, 12).Select(i => (float)(10 * (i / 3) + i % 3))];
        int[] map = [0, 3, 1, 2];   // ONNX's LSTM order i, o, f, c from PyTorch's i, f, g, o
        var permuted = new float[12];
        GateBlocks.Permute(source, 3, map, permuted);
        Assert.That(permuted, Is.EqualTo(new float[] { 0, 1, 2, 30, 31, 32, 10, 11, 12, 20, 21, 22 }));
        var back = new float[12];
        GateBlocks.Unpermute(permuted, 3, map, back);
        Assert.That(back, Is.EqualTo(source));
    }

    [Test]
    public void Permute_RefusesAMapThatIsNotAPermutationOrLengthsThatDoNotFit()
    {
        var values = new float[6];
        var e = Assert.Throws<ArgumentException>(() => GateBlocks.Permute(values, 2, [0, 0, 1], new float[6]));
        Assert.That(e!.ParamName, Is.EqualTo("sourceGateOf"));
        Assert.Throws<ArgumentException>(() => GateBlocks.Permute(values, 2, [0, 1, 3], new float[6]));
        Assert.Throws<ArgumentException>(() => GateBlocks.Unpermute(values, 2, [0, 1, 2], new float[5]));
        Assert.Throws<ArgumentException>(() => GateBlocks.Permute(values, 3, [0, 1, 2], new float[6]));
    }
}
