namespace Recurrent.Onnx;

/// <summary>
/// The one place where ONNX's gate order meets Recurrent's (PyTorch's, <see cref="CellDefinition.Gates"/>), for export
/// and import alike (ONNX operator specification, docs/Operators.md, LSTM and GRU: "W[iofc]", "W[zrh]").
/// </summary>
internal static class OnnxGateOrder
{
    /// <summary>For each of ONNX's gate blocks, the index of Recurrent's gate block it is (a map for <see cref="GateBlocks"/>).</summary>
    /// <exception cref="NotSupportedException">ONNX has no operator for the cell.</exception>
    public static int[] SourceGateOf(CellKind cell) => cell switch
    {
        CellKind.Lstm => [0, 3, 1, 2],                                  // ONNX i, o, f, c  =  Recurrent i, o, f, g
        CellKind.GruResetAfter or CellKind.GruResetBefore => [1, 0, 2], // ONNX z, r, h  =  Recurrent z, r, n
        CellKind.RnnTanh or CellKind.RnnRelu => [0],
        _ => throw new NotSupportedException($"ONNX has no operator for {cell} cells."),
    };

    /// <summary>ONNX's gate names in its order, for messages and tests.</summary>
    public static string[] Gates(CellKind cell) => cell switch
    {
        CellKind.Lstm => ["i", "o", "f", "c"],
        CellKind.GruResetAfter or CellKind.GruResetBefore => ["z", "r", "h"],
        CellKind.RnnTanh or CellKind.RnnRelu => ["h"],
        _ => throw new NotSupportedException($"ONNX has no operator for {cell} cells."),
    };

    /// <summary>The ONNX operator of a cell: <c>LSTM</c>, <c>GRU</c> or <c>RNN</c>.</summary>
    /// <exception cref="NotSupportedException">ONNX has no operator for the cell.</exception>
    public static string OperatorName(CellKind cell) => cell switch
    {
        CellKind.Lstm => "LSTM",
        CellKind.GruResetAfter or CellKind.GruResetBefore => "GRU",
        CellKind.RnnTanh or CellKind.RnnRelu => "RNN",
        _ => throw new NotSupportedException($"ONNX has no operator for {cell} cells."),
    };
}
