namespace Recurrent.Bench.Report;

/// <summary>
/// Replaces a folder as a whole: the contents are written into a temporary sibling folder, which is renamed over
/// the target only once complete. An interrupted or failed run leaves the previous folder as it was (plus, after a
/// hard kill, a stale ".tmp-" sibling that the next run removes).
/// </summary>
internal static class AtomicDirectory
{
    /// <summary>
    /// Calls <paramref name="write"/> with an empty temporary folder beside <paramref name="target"/>, then puts that
    /// folder in place of <paramref name="target"/>. If <paramref name="write"/> throws, the target is untouched and
    /// the temporary folder is deleted.
    /// </summary>
    public static void Replace(string target, Action<string> write)
    {
        target = Path.GetFullPath(target.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        string parent = Path.GetDirectoryName(target) ?? throw new ArgumentException($"target: '{target}' has no parent folder.", nameof(target));
        string name = Path.GetFileName(target);
        Directory.CreateDirectory(parent);
        RemoveStale(parent, name);
        string staging = Path.Combine(parent, $".{name}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            write(staging);
        }
        catch
        {
            Directory.Delete(staging, recursive: true);
            throw;
        }

        if (!Directory.Exists(target))
        {
            Directory.Move(staging, target);
            return;
        }
        // POSIX rename cannot replace a non-empty folder, so the old one steps aside first; if the second rename
        // fails it steps back, so the target is missing only for the instant between two renames.
        string retired = Path.Combine(parent, $".{name}.old-{Guid.NewGuid():N}");
        Directory.Move(target, retired);
        try
        {
            Directory.Move(staging, target);
        }
        catch
        {
            Directory.Move(retired, target);
            Directory.Delete(staging, recursive: true);
            throw;
        }
        Directory.Delete(retired, recursive: true);
    }

    private static void RemoveStale(string parent, string name)
    {
        string target = Path.Combine(parent, name);
        var retired = Directory.EnumerateDirectories(parent, $".{name}.old-*").OrderByDescending(Directory.GetLastWriteTimeUtc).ToList();
        // A run killed between its two renames left the good report aside: put it back before anything else.
        if (!Directory.Exists(target) && retired.Count > 0)
        {
            Directory.Move(retired[0], target);
            retired.RemoveAt(0);
        }
        foreach (var stale in Directory.EnumerateDirectories(parent, $".{name}.tmp-*").Concat(retired))
        {
            try { Directory.Delete(stale, recursive: true); }
            catch (IOException) { } // another run may own it; it is only litter
            catch (UnauthorizedAccessException) { }
        }
    }
}
