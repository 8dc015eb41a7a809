using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>Runs an ONNX model in ONNX Runtime (CPU) on named float or integer inputs and returns every output.</summary>
internal static class OnnxRuntimeHarness
{
    public abstract record Input(string Name);
    public sealed record Floats(string Name, float[] Values, params long[] Shape) : Input(Name);
    public sealed record Int32s(string Name, int[] Values, params long[] Shape) : Input(Name);
    public sealed record Int64s(string Name, long[] Values, params long[] Shape) : Input(Name);

    /// <summary>Every output of the model, by name, as float32 values.</summary>
    public static Dictionary<string, float[]> Run(byte[] model, params Input[] inputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var session = new InferenceSession(model, options);
        var values = inputs.Select(input => input switch
        {
            Floats f => OrtValue.CreateTensorValueFromMemory(f.Values, f.Shape),
            Int32s i => OrtValue.CreateTensorValueFromMemory(i.Values, i.Shape),
            Int64s l => OrtValue.CreateTensorValueFromMemory(l.Values, l.Shape),
            _ => throw new ArgumentException(input.GetType().Name),
        }).ToList();
        try
        {
            using var runOptions = new RunOptions();
            var outputNames = session.OutputMetadata.Keys.ToList();
            using var results = session.Run(runOptions, inputs.Select(i => i.Name).ToList(), values, outputNames);
            return outputNames.Zip(results).ToDictionary(p => p.First, p => p.Second.GetTensorDataAsSpan<float>().ToArray());
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>ONNX Runtime's native library loads here (it comes with the benchmark's NuGet restore).</summary>
    public static void RequireAvailable()
    {
        Assert.That(Recurrent.Bench.Peers.OnnxRuntimePeer.TryCreate(out var peer, out var unavailable), Is.True, unavailable?.Reason);
        peer!.Dispose();
    }
}
