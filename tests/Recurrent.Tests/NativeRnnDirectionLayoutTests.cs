using NUnit.Framework;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Tests;

/// <summary>
/// The managed mirror of <c>rc_rnn_direction</c> against the C struct: a field added, removed or reordered on one side
/// only would shift every pointer after it, and the native library would read one buffer as another.
/// </summary>
[TestFixture]
public class NativeRnnDirectionLayoutTests
{
    [Test]
    public unsafe void ManagedMirror_HasTheNativeStructsSizeAndFieldOffsets()
    {
        long size;
        var offsets = new long[64];
        int count;
        fixed (long* p = offsets) count = NativeRnn.rc_rnn_direction_layout(&size, p, offsets.Length);
        var managed = NativeRnnDirection.FieldOffsets();
        Assert.That(count, Is.EqualTo(managed.Length), "field count");
        Assert.That(offsets[..count], Is.EqualTo(managed), "field offsets, in declaration order");
        Assert.That(sizeof(NativeRnnDirection), Is.EqualTo(size), "sizeof");
    }

    [Test]
    public void Forward_Throws_WhenYIsTooShortForItsRowStride()
    {
        const int steps = 2, batch = 3, input = 2, hidden = 4;
        var cell = CellKind.Lstm;
        int gh = cell.GateCount() * hidden;
        // Rows 2H apart need (T·N − 1)·2H + H elements: one fewer must be refused, naming y.
        var y = new float[(steps * batch - 1) * 2 * hidden + hidden - 1];
        var e = Assert.Throws<ArgumentException>(() => NativeRnn.Forward(cell, true, steps, batch, input, hidden, false,
            new float[gh * input], new float[gh * hidden], new float[gh], new float[gh], RnnInputRows.Dense(new float[steps * batch * input]),
            new float[batch * hidden], new float[batch * hidden], y, new float[batch * hidden], new float[batch * hidden],
            keepForBackward: false, yStride: 2 * hidden));
        Assert.That(e!.ParamName, Is.EqualTo("y"));
    }

    [Test]
    public void Forward_Throws_WhenTheRowStrideIsBelowTheRowWidth()
    {
        const int steps = 2, batch = 3, input = 2, hidden = 4;
        var cell = CellKind.Lstm;
        int gh = cell.GateCount() * hidden;
        var e = Assert.Throws<ArgumentException>(() => NativeRnn.Forward(cell, true, steps, batch, input, hidden, false,
            new float[gh * input], new float[gh * hidden], new float[gh], new float[gh], RnnInputRows.Dense(new float[steps * batch * input]),
            new float[batch * hidden], new float[batch * hidden], new float[steps * batch * hidden], new float[batch * hidden],
            new float[batch * hidden], keepForBackward: false, yStride: hidden - 1));
        Assert.That(e!.ParamName, Is.EqualTo("y"));
    }
}
