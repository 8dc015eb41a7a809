using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Recurrent.Kernels.Cpu;

/// <summary>Status codes returned by every export of the native library.</summary>
public enum NativeStatus
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>An argument was out of range; the message names it.</summary>
    InvalidArgument = 1,
    /// <summary>The native side could not allocate memory.</summary>
    OutOfMemory = 2,
    /// <summary>Any other native failure.</summary>
    Internal = 3,
}

/// <summary>CPU features the native kernels can use, as detected at run time.</summary>
[Flags]
public enum CpuFeatures : uint
{
    /// <summary>No vector extension beyond baseline x86-64.</summary>
    None = 0,
    /// <summary>AVX2 with FMA3.</summary>
    Avx2Fma = 1,
    /// <summary>AVX-512 Foundation.</summary>
    Avx512F = 2,
}

/// <summary>The instruction-set level the native kernels run with.</summary>
public enum NativeIsa
{
    /// <summary>The widest level the CPU supports.</summary>
    Auto = 0,
    /// <summary>Portable C++ without explicit vector intrinsics.</summary>
    Portable = 1,
    /// <summary>AVX2 + FMA kernels.</summary>
    Avx2 = 2,
    /// <summary>AVX-512 kernels.</summary>
    Avx512 = 3,
}

/// <summary>A failure reported by the native library, carrying its message.</summary>
/// <remarks>Thread-safety: immutable, so safe. Lifetime: nothing to free.</remarks>
public sealed class NativeException(NativeStatus status, string operation, string message)
    : Exception($"{operation} failed ({status}): {message}")
{
    /// <summary>The status the native call returned.</summary>
    public NativeStatus Status { get; } = status;
}

/// <summary>Managed entry points of the native CPU library (librecurrent_native).</summary>
/// <remarks>Thread-safety: safe; the native library is loaded once per process and its entry points serve concurrent calls. Lifetime: the library stays loaded for the process.</remarks>
public static partial class NativeLibrary
{
    internal const string Name = "recurrent_native";

    /// <summary>The native library's ABI version.</summary>
    public static int Version => Interop.rc_version();

    /// <summary>Features of this CPU that the native kernels detect.</summary>
    public static CpuFeatures CpuFeatures => (CpuFeatures)Interop.rc_cpu_features();

    /// <summary>
    /// The instruction-set level in use. Setting a level above what the CPU supports runs the widest
    /// supported one; tests set narrower levels to exercise the AVX2 and portable paths.
    /// </summary>
    public static NativeIsa Isa
    {
        get => (NativeIsa)Interop.rc_active_isa();
        set => Check(Interop.rc_set_isa((int)value), nameof(Isa));
    }

    /// <summary>
    /// Threads the native kernels use, the calling thread included (a persistent pool; default: the CPUs this process
    /// may run on). Setting 0 or less restores the default.
    /// </summary>
    /// <exception cref="NativeException">The count is above 1024.</exception>
    public static int ThreadCount
    {
        get => Interop.rc_get_num_threads();
        set => Check(Interop.rc_set_num_threads(value), nameof(ThreadCount));
    }

    /// <summary>
    /// Loads librecurrent_native as the runtime would (from the application's folder, or from
    /// <c>runtimes/linux-x64/native/</c> of the Recurrent.Kernels package, which the application's deps.json lists),
    /// and when that fails, says why in terms of this library: the package carries the library for linux-x64 only,
    /// and the layers' other backends need no native code. The loader's own message is the inner exception.
    /// </summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "The resolver must be in place before the first call into the native library, whichever class makes it.")]
    internal static void InstallResolver() =>
        System.Runtime.InteropServices.NativeLibrary.SetDllImportResolver(typeof(NativeLibrary).Assembly, Resolve);

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Name) return 0;
        try
        {
            return System.Runtime.InteropServices.NativeLibrary.Load(name, assembly, searchPath);
        }
        catch (DllNotFoundException e)
        {
            string platform = RuntimeInformation.RuntimeIdentifier;
            string why = OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64
                ? $"it should be in the application's folder or its runtimes/linux-x64/native/, and it needs glibc 2.35 or newer ({e.Message})"
                : $"it is built for linux-x64 only, and this process runs on {platform}";
            throw new DllNotFoundException(
                $"Recurrent's native CPU library (lib{Name}.so, used by NativeCpuBackend, the layers' default backend) could not be loaded: {why}. " +
                "Give the layer another backend: new IlgpuBackend(IlgpuDevice.Auto) (CUDA, else ILGPU's CPU accelerator) or ReferenceBackend.Instance (managed, double precision).", e);
        }
    }

    /// <summary>Throws <see cref="NativeException"/> with the thread's native message when a call failed.</summary>
    internal static void Check(int status, string operation)
    {
        if (status != 0)
            throw new NativeException((NativeStatus)status, operation, Marshal.PtrToStringUTF8(Interop.rc_last_error()) ?? "(no message)");
    }

    internal static partial class Interop
    {
        [LibraryImport(Name)] internal static partial int rc_version();
        [LibraryImport(Name)] internal static partial uint rc_cpu_features();
        [LibraryImport(Name)] internal static partial nint rc_last_error();
        [LibraryImport(Name)] internal static partial int rc_set_isa(int isa);
        [LibraryImport(Name)] internal static partial int rc_active_isa();
        [LibraryImport(Name)] internal static partial int rc_set_num_threads(int count);
        [LibraryImport(Name)] internal static partial int rc_get_num_threads();
    }
}
