using Recurrent.Reference;

namespace Recurrent.Tests;

/// <summary>Shapes and seeded random data shared by the tests.</summary>
public static class TestData
{
    public static readonly CellKind[] AllCells = Enum.GetValues<CellKind>();

    /// <summary>A stack shape: T, N, I, H, L, bidirectional.</summary>
    public sealed record Shape(int Steps, int Batch, int Input, int Hidden, int Layers, bool Bidirectional)
    {
        public RnnConfig Config(CellKind cell) => new(cell, Input, Hidden, Layers, Bidirectional);
        public override string ToString() => $"T{Steps}_N{Batch}_I{Input}_H{Hidden}_L{Layers}{(Bidirectional ? "_bi" : "")}";
    }

    /// <summary>Small shapes for finite differences: T=1, N=1, H=1, I≠H, odd sizes, two layers, both directions.</summary>
    public static readonly Shape[] GradientShapes =
    [
        new(1, 1, 1, 1, 1, false),
        new(3, 2, 3, 2, 2, true),
        new(4, 1, 5, 3, 1, true),
        new(2, 3, 2, 5, 2, false),
    ];

    public static double[] Uniform(Random random, int count, double bound = 1)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++) values[i] = (random.NextDouble() * 2 - 1) * bound;
        return values;
    }

    public static float[] UniformSingle(Random random, int count, double bound = 1) =>
        Array.ConvertAll(Uniform(random, count, bound), v => (float)v);

    public static ReferenceWeights RandomWeights(RnnConfig config, Random random, double bound = 0.8)
    {
        var weights = new ReferenceWeights(config);
        for (int i = 0; i < weights.Values.Length; i++) weights.Values[i] = Uniform(random, weights.Values[i].Length, bound);
        return weights;
    }
}
