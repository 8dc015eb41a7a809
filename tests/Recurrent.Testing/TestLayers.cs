namespace Recurrent.Tests;

/// <summary>The public layer classes, chosen by configuration.</summary>
public static class TestLayers
{
    /// <summary>The <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/> of <paramref name="config"/> on <paramref name="backend"/>, its parameters reset from <paramref name="seed"/>.</summary>
    public static RecurrentLayer Create(RnnConfig config, IRnnBackend? backend = null, int seed = 0) => RecurrentLayer.Create(config, backend, seed);
}
