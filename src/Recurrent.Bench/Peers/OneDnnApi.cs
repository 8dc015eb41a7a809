using System.Runtime.InteropServices;
using InteropLibrary = System.Runtime.InteropServices.NativeLibrary;

namespace Recurrent.Bench.Peers;

/// <summary>A failed call into oneDNN, with the status it returned.</summary>
public sealed class OneDnnException(int status, string operation)
    : Exception($"{operation} failed with oneDNN status {status} ({OneDnnApi.StatusName(status)}).")
{
    /// <summary>The <c>dnnl_status_t</c> value.</summary>
    public int Status { get; } = status;
}

/// <summary>
/// The pieces of oneDNN 2.x's C API (<c>oneapi/dnnl/dnnl.h</c>) that the RNN peer needs, bound at run time
/// from <c>libdnnl.so.2</c> so that a machine without the library still builds and runs everything else.
/// Descriptor structs (<c>dnnl_memory_desc_t</c>, <c>dnnl_rnn_desc_t</c>) stay opaque: they live in native
/// buffers at least as large as oneDNN 2.6's (696 and 15,344 bytes) and only oneDNN reads or writes them.
/// </summary>
internal sealed unsafe class OneDnnApi
{
    public const string DefaultLibrary = "libdnnl.so.2";

    /// <summary>Bytes reserved for one <c>dnnl_memory_desc_t</c>; oneDNN 2.6.3 uses 696.</summary>
    public const int MemoryDescBytes = 1024;
    /// <summary>Bytes reserved for one <c>dnnl_rnn_desc_t</c>; oneDNN 2.6.3 uses 15,344.</summary>
    public const int RnnDescBytes = 16384;

    // dnnl_types.h values (oneDNN 2.x).
    public const int F32 = 3;
    public const int FormatAny = 1, Tnc = 4, Ldnc = 5, Ldgo = 5, Ldgoi = 16;
    public const int ForwardTraining = 64, ForwardInference = 96, Backward = 128;
    public const int Unidirectional = 0, BidirectionalConcat = 2;
    public const int EltwiseRelu = 0x1f, EltwiseTanh = 0x2f;
    public const int EngineCpu = 1, StreamDefault = 1;
    public const int QueryImplInfoString = 8, QueryExecArgMd = 255;
    public const int ArgSrcLayer = 1, ArgSrcIter = 2, ArgSrcIterC = 3, ArgDstLayer = 17, ArgWeightsLayer = 33, ArgWeightsIter = 34, ArgBias = 41, ArgWorkspace = 64;
    public const int ArgFrom = 1, ArgTo = 17;
    public const int ArgDiffSrcLayer = 129, ArgDiffSrcIter = 130, ArgDiffSrcIterC = 131, ArgDiffDstLayer = 145, ArgDiffWeightsLayer = 161, ArgDiffWeightsIter = 162, ArgDiffBias = 169;
    public static readonly void* MemoryAllocate = (void*)(nint)(-1); // DNNL_MEMORY_ALLOCATE

    [StructLayout(LayoutKind.Sequential)]
    public struct ExecArg
    {
        public int Arg;
        public nint Memory;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Version
    {
        public int Major, Minor, Patch;
        public nint Hash;
        public uint CpuRuntime, GpuRuntime;
    }

    private static readonly Lazy<(OneDnnApi? Api, string? Reason)> Default = new(() => TryLoad(DefaultLibrary));

    private readonly nint _library;

    public readonly delegate* unmanaged<Version*> dnnl_version;
    public readonly delegate* unmanaged<nint*, int, nuint, int> dnnl_engine_create;
    public readonly delegate* unmanaged<nint, int> dnnl_engine_destroy;
    public readonly delegate* unmanaged<nint*, nint, uint, int> dnnl_stream_create;
    public readonly delegate* unmanaged<nint, int> dnnl_stream_wait;
    public readonly delegate* unmanaged<nint, int> dnnl_stream_destroy;
    public readonly delegate* unmanaged<void*, int, long*, int, int, int> dnnl_memory_desc_init_by_tag;
    public readonly delegate* unmanaged<void*, nuint> dnnl_memory_desc_get_size;
    public readonly delegate* unmanaged<nint*, void*, nint, void*, int> dnnl_memory_create;
    public readonly delegate* unmanaged<nint, void**, int> dnnl_memory_get_data_handle;
    public readonly delegate* unmanaged<nint, int> dnnl_memory_destroy;
    public readonly delegate* unmanaged<nint*, void*, nint, nint, nint, int> dnnl_primitive_desc_create;
    public readonly delegate* unmanaged<nint, int, int, void*> dnnl_primitive_desc_query_md;
    public readonly delegate* unmanaged<nint, int, int, void*, int> dnnl_primitive_desc_query;
    public readonly delegate* unmanaged<nint, int> dnnl_primitive_desc_destroy;
    public readonly delegate* unmanaged<nint*, nint, int> dnnl_primitive_create;
    public readonly delegate* unmanaged<nint, nint, int, ExecArg*, int> dnnl_primitive_execute;
    public readonly delegate* unmanaged<nint, int> dnnl_primitive_destroy;
    public readonly delegate* unmanaged<nint*, void*, nint, void*, nint, nint, int> dnnl_reorder_primitive_desc_create;
    // (desc, prop, direction, src_layer, src_iter, src_iter_c, weights_layer, weights_iter, bias, dst_layer, dst_iter, dst_iter_c, flags)
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_lstm_forward_desc_init;
    // ... then diff_src_layer, diff_src_iter, diff_src_iter_c, diff_weights_layer, diff_weights_iter, diff_bias, diff_dst_layer, diff_dst_iter, diff_dst_iter_c, flags
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*,
        void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_lstm_backward_desc_init;
    // (desc, prop, direction, src_layer, src_iter, weights_layer, weights_iter, bias, dst_layer, dst_iter, flags)
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_gru_forward_desc_init;
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_lbr_gru_forward_desc_init;
    // ... then diff_src_layer, diff_src_iter, diff_weights_layer, diff_weights_iter, diff_bias, diff_dst_layer, diff_dst_iter, flags
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*,
        void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_gru_backward_desc_init;
    public readonly delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*,
        void*, void*, void*, void*, void*, void*, void*, uint, int> dnnl_lbr_gru_backward_desc_init;
    // (desc, prop, activation, direction, src_layer, src_iter, weights_layer, weights_iter, bias, dst_layer, dst_iter, flags, alpha, beta)
    public readonly delegate* unmanaged<void*, int, int, int, void*, void*, void*, void*, void*, void*, void*, uint, float, float, int> dnnl_vanilla_rnn_forward_desc_init;
    public readonly delegate* unmanaged<void*, int, int, int, void*, void*, void*, void*, void*, void*, void*,
        void*, void*, void*, void*, void*, void*, void*, uint, float, float, int> dnnl_vanilla_rnn_backward_desc_init;

    private OneDnnApi(nint library)
    {
        _library = library;
        dnnl_version = (delegate* unmanaged<Version*>)InteropLibrary.GetExport(library, nameof(dnnl_version));
        dnnl_engine_create = (delegate* unmanaged<nint*, int, nuint, int>)InteropLibrary.GetExport(library, nameof(dnnl_engine_create));
        dnnl_engine_destroy = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_engine_destroy));
        dnnl_stream_create = (delegate* unmanaged<nint*, nint, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_stream_create));
        dnnl_stream_wait = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_stream_wait));
        dnnl_stream_destroy = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_stream_destroy));
        dnnl_memory_desc_init_by_tag = (delegate* unmanaged<void*, int, long*, int, int, int>)InteropLibrary.GetExport(library, nameof(dnnl_memory_desc_init_by_tag));
        dnnl_memory_desc_get_size = (delegate* unmanaged<void*, nuint>)InteropLibrary.GetExport(library, nameof(dnnl_memory_desc_get_size));
        dnnl_memory_create = (delegate* unmanaged<nint*, void*, nint, void*, int>)InteropLibrary.GetExport(library, nameof(dnnl_memory_create));
        dnnl_memory_get_data_handle = (delegate* unmanaged<nint, void**, int>)InteropLibrary.GetExport(library, nameof(dnnl_memory_get_data_handle));
        dnnl_memory_destroy = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_memory_destroy));
        dnnl_primitive_desc_create = (delegate* unmanaged<nint*, void*, nint, nint, nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_desc_create));
        dnnl_primitive_desc_query_md = (delegate* unmanaged<nint, int, int, void*>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_desc_query_md));
        dnnl_primitive_desc_query = (delegate* unmanaged<nint, int, int, void*, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_desc_query));
        dnnl_primitive_desc_destroy = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_desc_destroy));
        dnnl_primitive_create = (delegate* unmanaged<nint*, nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_create));
        dnnl_primitive_execute = (delegate* unmanaged<nint, nint, int, ExecArg*, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_execute));
        dnnl_primitive_destroy = (delegate* unmanaged<nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_primitive_destroy));
        dnnl_reorder_primitive_desc_create = (delegate* unmanaged<nint*, void*, nint, void*, nint, nint, int>)InteropLibrary.GetExport(library, nameof(dnnl_reorder_primitive_desc_create));
        dnnl_lstm_forward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_lstm_forward_desc_init));
        dnnl_lstm_backward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_lstm_backward_desc_init));
        dnnl_gru_forward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_gru_forward_desc_init));
        dnnl_lbr_gru_forward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_lbr_gru_forward_desc_init));
        dnnl_gru_backward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_gru_backward_desc_init));
        dnnl_lbr_gru_backward_desc_init = (delegate* unmanaged<void*, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, int>)InteropLibrary.GetExport(library, nameof(dnnl_lbr_gru_backward_desc_init));
        dnnl_vanilla_rnn_forward_desc_init = (delegate* unmanaged<void*, int, int, int, void*, void*, void*, void*, void*, void*, void*, uint, float, float, int>)InteropLibrary.GetExport(library, nameof(dnnl_vanilla_rnn_forward_desc_init));
        dnnl_vanilla_rnn_backward_desc_init = (delegate* unmanaged<void*, int, int, int, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, void*, uint, float, float, int>)InteropLibrary.GetExport(library, nameof(dnnl_vanilla_rnn_backward_desc_init));
        var version = dnnl_version();
        VersionText = $"{version->Major}.{version->Minor}.{version->Patch}";
        CpuRuntime = version->CpuRuntime switch { 1 => "sequential", 2 => "OpenMP", 4 => "TBB", 8 => "threadpool", var other => $"runtime {other}" };
    }

    /// <summary>The version as "major.minor.patch".</summary>
    public string VersionText { get; }

    /// <summary>The CPU threading runtime the library was built with (Debian's: OpenMP).</summary>
    public string CpuRuntime { get; }

    /// <summary>The library loaded from <see cref="DefaultLibrary"/>, or null with the reason it could not be.</summary>
    public static (OneDnnApi? Api, string? Reason) Shared => Default.Value;

    /// <summary>Loads <paramref name="library"/> and resolves every export; never throws.</summary>
    public static (OneDnnApi? Api, string? Reason) TryLoad(string library)
    {
        if (!InteropLibrary.TryLoad(library, out nint handle))
            return (null, $"{library} not found");
        try
        {
            return (new OneDnnApi(handle), null);
        }
        catch (EntryPointNotFoundException e)
        {
            InteropLibrary.Free(handle);
            return (null, $"{library} lacks an export oneDNN 2.x has: {e.Message}");
        }
    }

    /// <summary>Throws <see cref="OneDnnException"/> unless <paramref name="status"/> is dnnl_success.</summary>
    public static void Check(int status, string operation)
    {
        if (status != 0) throw new OneDnnException(status, operation);
    }

    internal static string StatusName(int status) => status switch
    {
        0 => "success",
        1 => "out of memory",
        2 => "invalid arguments",
        3 => "unimplemented",
        4 => "iterator ends",
        5 => "runtime error",
        6 => "not required",
        _ => "unknown",
    };

    public override string ToString() => $"oneDNN {VersionText} ({CpuRuntime}) at {_library:x}";
}
