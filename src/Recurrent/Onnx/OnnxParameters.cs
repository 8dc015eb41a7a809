using Recurrent.Sequence;

namespace Recurrent.Onnx;

/// <summary>
/// Where the ONNX export and import touch parameter storage. Writes go only into models the import has just made,
/// before anyone else sees them.
/// </summary>
internal static class OnnxParameters
{
    public static ReadOnlySpan<float> Read(RnnParameters parameters, ParameterSpec spec, int layer, int direction) =>
        parameters[layer, direction, spec].Value.Span;

    public static Span<float> Write(RnnParameters parameters, ParameterSpec spec, int layer, int direction) =>
        parameters[layer, direction, spec].Value.Span;

    /// <summary>The sequence model's own parameter <paramref name="name"/>: <c>embedding</c>, <c>output_weight</c> or <c>output_bias</c>.</summary>
    public static Span<float> Of(RecurrentSequenceModel model, string name) => model.Parameters[name].Value.Span;

    public const string Embedding = "embedding", OutputWeight = "output_weight", OutputBias = "output_bias";
}
