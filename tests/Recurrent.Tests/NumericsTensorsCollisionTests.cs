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
