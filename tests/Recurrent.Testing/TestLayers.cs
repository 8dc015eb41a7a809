namespace Recurrent.Tests;

/// <summary>The public layer classes, chosen by configuration.</summary>
public static class TestLayers
{
    /// <summary>The <see cref="Lstm"/>, <see cref="Gru"/> or <see cref="ElmanRnn"/> of <paramref name="config"/> on <paramref name="backend"/>, its parameters reset from <paramref name="seed"/>.</summary>
    public static RecurrentLayer Create(RnnConfig config, IRnnBackend? backend = null, int seed = 0) => config.Cell switch
    {
        CellKind.Lstm => new Lstm(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, backend, seed),
        CellKind.GruResetAfter => new Gru(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, GruVariant.ResetAfter, backend, seed),
        CellKind.GruResetBefore => new Gru(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, GruVariant.ResetBefore, backend, seed),
        CellKind.RnnTanh => new ElmanRnn(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, RnnActivation.Tanh, backend, seed),
        CellKind.RnnRelu => new ElmanRnn(config.InputSize, config.HiddenSize, config.NumLayers, config.Bidirectional, RnnActivation.Relu, backend, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(config)),
    };
}
