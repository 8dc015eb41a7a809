// Both namespaces imported at once: Recurrent's tensor must not share a name with anything in System.Numerics.Tensors
// (which has a static class Tensor and Tensor<T>). This file compiling is the test; the asserts keep it honest.
using NUnit.Framework;
using Recurrent;
using System.Numerics.Tensors;

namespace Recurrent.Tests;

public sealed class NumericsTensorsCollisionTests
{
    [Test]
    public void BothNamespacesImported_OurTensorAndTheirsCompileSideBySide()
    {
        var ours = new FloatTensor([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        Tensor<float> theirs = Tensor.Create(ours.ToArray(), [2, 3]);
        Assert.That(theirs.Lengths.ToArray(), Is.EqualTo(new nint[] { 2, 3 }));
        Assert.That(ours.Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(TensorPrimitives.Sum<float>(ours.Span), Is.EqualTo(21f));
    }
}

public sealed class NumericsTensorsInteropTests
{
    [Test]
    public void AsTensorSpan_IsTheSameMemoryWithTheShape()
    {
        var storage = new float[10];
        var ours = FloatTensor.View(storage, 2, 2, 3);
        TensorSpan<float> span = ours.AsTensorSpan();
        Assert.That(span.Lengths.ToArray(), Is.EqualTo(new nint[] { 2, 3 }));
        span[[1, 2]] = 7f;                                   // element (1, 2) = offset 2 + 1·3 + 2
        Assert.That(storage[7], Is.EqualTo(7f));
        ours.Span[0] = 5f;
        Assert.That(ours.AsReadOnlyTensorSpan()[[0, 0]], Is.EqualTo(5f));
    }

    [Test]
    public void From_CopiesShapeAndElements_DenseOrStrided()
    {
        Tensor<float> theirs = Tensor.Create(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var dense = FloatTensor.From(theirs);
        Assert.That(dense.Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(dense.ToArray(), Is.EqualTo(new float[] { 1, 2, 3, 4, 5, 6 }));

        // A column slice: strided, not dense.
        var column = theirs.AsReadOnlyTensorSpan()[.., 1..2];
        var copied = FloatTensor.From(column);
        Assert.That(copied.Shape, Is.EqualTo(new[] { 2, 1 }));
        Assert.That(copied.ToArray(), Is.EqualTo(new float[] { 2, 5 }));

        var back = FloatTensor.From(dense.AsReadOnlyTensorSpan());
        Assert.That(back.ToArray(), Is.EqualTo(dense.ToArray()));
        back.Span[0] = 9f;
        Assert.That(dense.Span[0], Is.EqualTo(1f), "From copies");
    }
}
