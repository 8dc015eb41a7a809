using NUnit.Framework;
using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>The reference's backward pass against central finite differences of its forward pass, in double.</summary>
[TestFixture]
public class ReferenceGradientTests
{
    private static IEnumerable<TestCaseData> Cases() =>
        from cell in TestData.AllCells
        from shape in TestData.GradientShapes
        select new TestCaseData(cell, shape).SetName($"Backward_MatchesFiniteDifferences_{cell}_{shape}");

    [TestCaseSource(nameof(Cases))]
    public void Backward_MatchesFiniteDifferences(CellKind cell, TestData.Shape shape)
    {
        var config = shape.Config(cell);
        var random = new Random(1234 + (int)cell);
        int steps = shape.Steps, batch = shape.Batch;
        var weights = TestData.RandomWeights(config, random);
        var x = TestData.Uniform(random, steps * batch * shape.Input);
        int stateLength = config.NumLayers * config.Directions * batch * config.HiddenSize;
        var h0 = TestData.Uniform(random, stateLength, 0.5);
        var c0 = cell.HasCellState() ? TestData.Uniform(random, stateLength, 0.5) : null;
        // The loss is a fixed random projection of every output, so every gradient path is exercised.
        var dy = TestData.Uniform(random, steps * batch * config.OutputSize);
        var dhN = TestData.Uniform(random, stateLength);
        var dcN = cell.HasCellState() ? TestData.Uniform(random, stateLength) : null;

        double Loss()
        {
            var f = ReferenceRnn.Forward(weights, x, steps, batch, h0, c0);
            double loss = Dot(f.Output, dy) + Dot(f.HiddenN, dhN);
            if (dcN is not null) loss += Dot(f.CellN!, dcN);
            return loss;
        }

        var forward = ReferenceRnn.Forward(weights, x, steps, batch, h0, c0);
        var grads = ReferenceRnn.Backward(forward, dy, dhN, dcN);

        FiniteDifferences.Check(x, grads.Input, Loss, "dx");
        FiniteDifferences.Check(h0, grads.HiddenZero, Loss, "dh0");
        if (c0 is not null) FiniteDifferences.Check(c0, grads.CellZero!, Loss, "dc0");
        var names = config.Parameters().Select(p => p.Name).ToArray();
        for (int p = 0; p < weights.Values.Length; p++)
            FiniteDifferences.Check(weights.Values[p], grads.Weights.Values[p], Loss, names[p]);
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
