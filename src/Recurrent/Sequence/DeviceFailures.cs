using Recurrent.Kernels.Ilgpu;

namespace Recurrent.Sequence;

/// <summary>
/// How the sequence models report a failure of ILGPU or the driver during their device work: as an
/// <see cref="IlgpuOperationException"/> that names the operation and the sizes. Arguments are validated before any
/// device work, so an argument or disposal exception passes through unchanged, as does one already wrapped.
/// </summary>
internal static class DeviceFailures
{
    /// <summary>Runs <paramref name="work"/>; on a device, wraps what it throws with <paramref name="describe"/>'s text.</summary>
    public static T Wrap<T>(bool onDevice, Func<T> work, Func<string> describe)
    {
        try
        {
            return work();
        }
        catch (Exception e) when (onDevice && e is not (ArgumentException or ObjectDisposedException or IlgpuOperationException))
        {
            throw new IlgpuOperationException($"{describe()} failed: {e.GetBaseException().Message}", e);
        }
    }

    /// <summary><see cref="Wrap{T}"/> for work without a result.</summary>
    public static void Wrap(bool onDevice, Action work, Func<string> describe) =>
        Wrap(onDevice, () => { work(); return true; }, describe);
}
