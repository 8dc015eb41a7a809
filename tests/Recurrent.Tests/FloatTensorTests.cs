using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>A tensor over its own array, over part of a larger one (a view), and under another shape: what aliases what, and the bounds.</summary>
[TestFixture]
public class FloatTensorTests
{
    [Test]
    public void View_AliasesItsPartOfTheStorage_AndNothingElse()
    {
        var storage = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
        var view = FloatTensor.View(storage, 3, 2, 2);
        Assert.That(view.Length, Is.EqualTo(4));
        Assert.That(view.Shape, Is.EqualTo(new[] { 2, 2 }));
        Assert.That(view.ToArray(), Is.EqualTo(new float[] { 3, 4, 5, 6 }));
        Assert.That(view[1, 0], Is.EqualTo(5f), "row-major from the offset");
        view[1, 1] = -1;
        view.Span[0] = -2;
        Assert.That(storage, Is.EqualTo(new float[] { 0, 1, 2, -2, 4, 5, -1, 7, 8, 9 }), "writes land in the storage, inside the view only");
        storage[4] = 40;
        Assert.That(view.Memory.Span[1], Is.EqualTo(40f), "and the storage's writes are seen");
        var copy = view.ToArray();
        copy[0] = 99;
        var clone = view.Clone();
        clone.Span[0] = 99;
        Assert.That(storage[3], Is.EqualTo(-2f), "ToArray and Clone copy");
    }

    [Test]
    public void View_OfNothing_AtTheEnd_IsEmpty()
    {
        var view = FloatTensor.View(new float[3], 3, 0, 5);
        Assert.That(view.Length, Is.Zero);
        Assert.That(view.Span.IsEmpty, Is.True);
    }

    [TestCase(-1, new[] { 1 }, "offset")]
    [TestCase(11, new[] { 0 }, "offset")]
    [TestCase(8, new[] { 3 }, "shape")]
    [TestCase(0, new[] { 2, 6 }, "shape")]
    public void View_OutsideTheStorage_ThrowsArgumentOutOfRangeNamingTheArgument(int offset, int[] shape, string argument)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => FloatTensor.View(new float[10], offset, shape))!;
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.Contain("10"), "the message gives the storage's length");
    }

    [Test]
    public void View_NegativeDimension_ThrowsArgumentException()
    {
        var error = Assert.Throws<ArgumentException>(() => FloatTensor.View(new float[10], 0, 2, -1))!;
        Assert.That(error.ParamName, Is.EqualTo("shape"));
    }

    [Test]
    public void Reshape_SharesTheElements_AndRefusesAnotherCount()
    {
        var storage = new float[12];
        var view = FloatTensor.View(storage, 2, 2, 3, 1);
        var flat = view.Reshape(6);
        flat[5] = 7;
        Assert.That(view[1, 2, 0], Is.EqualTo(7f));
        Assert.That(storage[7], Is.EqualTo(7f));
        var error = Assert.Throws<ArgumentException>(() => view.Reshape(4, 2))!;
        Assert.That(error.ParamName, Is.EqualTo("shape"));
        Assert.That(error.Message, Does.Contain("[4, 2]").And.Contain("[2, 3, 1]"));
    }

    [Test]
    public void RequireFinite_ReadsTheViewOnly()
    {
        var storage = new float[] { float.NaN, 1, 2, float.PositiveInfinity };
        Assert.DoesNotThrow(() => FloatTensor.RequireFinite(FloatTensor.View(storage, 1, 2), "x"));
        var error = Assert.Throws<ArgumentException>(() => FloatTensor.RequireFinite(FloatTensor.View(storage, 1, 3), "x"))!;
        Assert.That(error.Message, Does.Contain("element 2"));
    }
}
