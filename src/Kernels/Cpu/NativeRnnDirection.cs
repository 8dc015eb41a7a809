using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>
/// The managed mirror of <c>rc_rnn_direction</c> (rc_api.h): every argument of one native direction pass, forward and
/// backward. Field for field as the C struct; NativeRnnDirectionLayoutTests compares size and offsets with the native
/// library's own, so a field added on one side only fails a test rather than shifting every field after it.
/// Pointers are raw: <see cref="NativeRnn"/> fills it inside <c>fixed</c> blocks and validates each span's length first.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeRnnDirection
{
    /// <summary>RC_RNN_MAX_PARAMETERS.</summary>
    public const int MaxParameters = 8;

    public int Cell;
    public int Fused;
    public long Steps;
    public long Batch;
    public long InputSize;
    public long HiddenSize;
    public int Reverse;
    public int AccumulateDX;
    /// <summary>By parameter-spec position (<c>CellDefinition.IndexOf</c>): weight_ih, weight_hh, bias_ih, bias_hh, then a cell's extras.</summary>
    public PointerTable Parameters;
    public PointerTable Gradients;
    public long ParameterCount;
    public float* X;
    public long XStride;
    public float* InputTable;
    public int* InputIds;
    public long Vocab;
    /// <summary>[T]: the running sequences per step of a packed batch (cuDNN's layout); null for a dense batch.</summary>
    public int* BatchSizes;
    public float* H0;
    public float* C0;
    public float* Y;
    public long YStride;
    public float* HN;
    public float* CN;
    public float* DY;
    public long DYStride;
    public float* DHN;
    public float* DCN;
    public float* DX;
    public long DXStride;
    public float* DInputTable;
    public float* DH0;
    public float* DC0;

    /// <summary>RC_RNN_MAX_PARAMETERS pointers inline, as the C array.</summary>
    [InlineArray(MaxParameters)]
    public struct PointerTable
    {
        private nint _element;
    }

    /// <summary>Byte offsets of the fields in declaration order (arrays as one field), as rc_rnn_direction_layout lists them.</summary>
    internal static long[] FieldOffsets()
    {
        NativeRnnDirection d = default;
        byte* b = (byte*)&d;
        long O(void* field) => (byte*)field - b;
        return
        [
            O(&d.Cell), O(&d.Fused), O(&d.Steps), O(&d.Batch), O(&d.InputSize), O(&d.HiddenSize), O(&d.Reverse), O(&d.AccumulateDX),
            O(&d.Parameters), O(&d.Gradients), O(&d.ParameterCount), O(&d.X), O(&d.XStride), O(&d.InputTable), O(&d.InputIds), O(&d.Vocab),
            O(&d.BatchSizes), O(&d.H0), O(&d.C0), O(&d.Y), O(&d.YStride), O(&d.HN), O(&d.CN), O(&d.DY),
            O(&d.DYStride), O(&d.DHN), O(&d.DCN), O(&d.DX), O(&d.DXStride), O(&d.DInputTable), O(&d.DH0), O(&d.DC0),
        ];
    }
}
