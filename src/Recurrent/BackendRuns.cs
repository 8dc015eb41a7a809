namespace Recurrent;

/// <summary>
/// One forward and backward pass straight on an <see cref="IRnnBackend"/>, below the layer API's checks: what the tests and
/// the GPU check compare between backends.
/// </summary>
internal static class BackendRuns
{
    /// <summary>
    /// Forward (keeping the tape) then backward from zero parameter gradients; every result by name: y, hN, cN, dx, dh0,
    /// dc0 and each parameter's gradient (cN and dc0 only for a cell with a cell state); with <paramref name="lengths"/>, a
    /// variable-length batch.
    /// </summary>
    public static Dictionary<string, float[]> ForwardBackward(IRnnBackend backend, RnnParameters parameters, FloatTensor x, FloatTensor h0, FloatTensor? c0, FloatTensor dy, FloatTensor dhN, FloatTensor? dcN,
        int[]? lengths = null)
    {
        var config = parameters.Config;
        int steps = x.Shape[0], batch = x.Shape[1];
        var state = config.StateShape(batch);
        var y = new FloatTensor(steps, batch, config.OutputSize);
        var hN = new FloatTensor(state);
        var cN = c0 is null ? null : new FloatTensor(state);
        parameters.ZeroGrad();
        using var tape = backend.Forward(parameters, x, h0, c0, y, hN, cN, keepForBackward: true, lengths)!;
        var dx = new FloatTensor(steps, batch, config.InputSize);
        var dh0 = new FloatTensor(state);
        var dc0 = c0 is null ? null : new FloatTensor(state);
        backend.Backward(parameters, tape, dy, dhN, dcN, dx, dh0, dc0);
        var results = new Dictionary<string, float[]> { ["y"] = y.ToArray(), ["hN"] = hN.ToArray(), ["dx"] = dx.ToArray(), ["dh0"] = dh0.ToArray() };
        if (cN is not null) results["cN"] = cN.ToArray();
        if (dc0 is not null) results["dc0"] = dc0.ToArray();
        foreach (var p in parameters.All) results[p.Name] = p.Grad.ToArray();
        return results;
    }
}
