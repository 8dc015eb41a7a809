using ILGPU;
using ILGPU.Runtime.Cuda;
using Recurrent.Kernels.Cpu;

namespace Recurrent.Bench.Report;

/// <summary>
/// One way Recurrent can compute, with its fused and (where it has one) unfused variant.
/// </summary>
/// <param name="Name">What --backend names it.</param>
/// <param name="Description">One line for help and the report.</param>
/// <param name="Create">Makes the backend, fused when the argument is true; null when this build lacks it.</param>
/// <param name="HasUnfusedVariant">Whether <paramref name="Create"/>(false) is a different, unfused backend.</param>
/// <param name="SlowOnlyTinyShapes">The backend is too slow for the standard shapes (a reference or a simulator).</param>
/// <param name="Probe">Returns why the backend cannot run on this machine, or null when it can.</param>
internal sealed record BackendFamily(
    string Name, string Description, Func<bool, IRnnBackend>? Create, bool HasUnfusedVariant, bool SlowOnlyTinyShapes, Func<string?> Probe)
{
    private readonly Lazy<string?> _unavailableReason = new(() =>
        Create is null ? "not part of this build (its factory in Report/BackendCatalog.cs is not wired in yet)" : Probe());

    /// <summary>Why this backend cannot run here, or null when it can.</summary>
    public string? UnavailableReason => _unavailableReason.Value;

    /// <summary>Whether this backend can run here.</summary>
    public bool IsAvailable => UnavailableReason is null;

    /// <summary>The variants the report measures: fused first (the headline), then unfused (the baseline).</summary>
    public IReadOnlyList<BackendVariant> Variants =>
        HasUnfusedVariant
            ? [new(this, VariantRole.Fused, () => Create!(true)), new(this, VariantRole.Unfused, () => Create!(false))]
            : [new(this, VariantRole.Only, () => Create!(true))];
}

/// <summary>Where a measured implementation stands in the fused-vs-unfused comparison.</summary>
internal enum VariantRole
{
    /// <summary>The fused variant of a backend: the headline numbers.</summary>
    Fused,
    /// <summary>The same backend without fusion: the baseline of the speedup.</summary>
    Unfused,
    /// <summary>A backend with a single variant (the reference).</summary>
    Only,
    /// <summary>Another library, measured through <see cref="Peers.IPeer"/>.</summary>
    Peer,
}

/// <summary>One measurable variant of a backend family.</summary>
internal sealed record BackendVariant(BackendFamily Family, VariantRole Role, Func<IRnnBackend> Create);

/// <summary>
/// Every backend the report knows, in order of preference.
/// </summary>
internal static class BackendCatalog
{
    /// <summary>All backends, the preferred first.</summary>
    public static IReadOnlyList<BackendFamily> All { get; } =
    [
        new("ilgpu-cuda", "ILGPU kernels on an NVIDIA GPU (fused and unfused)",
            Create: fused => new IlgpuBackend(IlgpuDevice.Cuda, fused),
            HasUnfusedVariant: true, SlowOnlyTinyShapes: false, Probe: ProbeCuda),
        new("native-cpu", "the native C++ CPU library (fused and unfused)",
            Create: fused => new NativeCpuBackend(fused),
            HasUnfusedVariant: true, SlowOnlyTinyShapes: false, Probe: ProbeNative),
        new("ilgpu-cpu", "ILGPU kernels on ILGPU's CPU accelerator, a simulator: tiny shapes only",
            Create: fused => new IlgpuBackend(IlgpuDevice.Cpu, fused),
            HasUnfusedVariant: true, SlowOnlyTinyShapes: true, Probe: () => null),
        new("reference", "the double-precision reference, the ground truth: tiny shapes only",
            Create: _ => ReferenceBackend.Instance,
            HasUnfusedVariant: false, SlowOnlyTinyShapes: true, Probe: () => null),
    ];

    /// <summary>Names --backend accepts.</summary>
    public static string Accepted => "auto, " + string.Join(", ", All.Select(b => b.Name));

    /// <summary>
    /// The best backend present: ILGPU on CUDA when a GPU is there, else the native CPU library; the reference only when
    /// neither is in this build (it then runs at tiny shapes unless --shapes says otherwise).
    /// </summary>
    public static BackendFamily Best() =>
        All.Where(b => !b.SlowOnlyTinyShapes).FirstOrDefault(b => b.IsAvailable) ?? Find("reference")!;

    /// <summary>The backend named <paramref name="name"/>, or null.</summary>
    public static BackendFamily? Find(string name) =>
        All.FirstOrDefault(b => b.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Null when the native library loads, else why not.</summary>
    internal static string? ProbeNative()
    {
        try
        {
            _ = NativeLibrary.Version;
            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return $"the native library does not load: {e.Message}";
        }
    }

    /// <summary>Null when ILGPU finds a CUDA device, else why not; never throws.</summary>
    internal static string? ProbeCuda()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            return context.GetCudaDevices().Count > 0 ? null : "no CUDA device found";
        }
        catch (Exception e)
        {
            return $"CUDA is not usable: {e.Message}";
        }
    }
}
