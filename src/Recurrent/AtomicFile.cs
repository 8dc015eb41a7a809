using System.Text;

namespace Recurrent;

/// <summary>
/// Writes a file whole or not at all, for every file format Recurrent saves (safetensors, ONNX): the bytes go to a
/// temporary file beside the target, which is flushed to disk and renamed over the target, so an interrupted save never
/// leaves a half-written file, and a failed one leaves the old file as it was and no temporary file behind.
/// Thread-safety: safe; concurrent writes of one target each write their own temporary file, and the last rename wins whole.
/// </summary>
/// <remarks>
/// A symbolic link is followed to its final target, which is replaced and the link kept (a dangling link gets the file
/// it names). A save killed before its rename leaves its temporary file, <c>.&lt;target name&gt;.&lt;12 hex digits&gt;.tmp</c>,
/// as large as the file; each save removes those of its own target last written over five minutes ago and not held open
/// by a live save.
/// </remarks>
internal static class AtomicFile
{
    /// <summary>Writes the target through <paramref name="write"/>, atomically.</summary>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="what">What the file is, for messages (<c>a safetensors file</c>).</param>
    /// <param name="write">Writes the whole content into the stream it is given (and does not dispose it).</param>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file cannot be written: the target is a folder or a loop of symbolic links, the disk is full.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    public static void Write(string path, string what, Action<Stream> write)
    {
        string target = FinalTarget(path);
        if (Directory.Exists(target)) throw new IOException($"{path}: is a folder; {what} cannot replace it.");
        // In the target's own folder, so that the rename is atomic.
        string folder = Path.GetDirectoryName(target)!;
        // Checked here so the message names the target, not the temporary file the save would have created.
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{path}: the folder {folder} does not exist; {what} cannot be written there.");
        string stem = TemporaryStem(Path.GetFileName(target));
        RemoveStaleTemporaries(folder, stem);
        string temporary = Path.Combine(folder, $".{stem}.{Guid.NewGuid().ToString("N")[..TemporaryIdLength]}.tmp");
        // Created before the try: if this fails there is nothing of ours to remove (and a file that happened to
        // have the name is not ours to delete). FileShare.None takes the lock (flock on Unix) by which a concurrent
        // save's RemoveStaleTemporaries knows this file is alive.
        var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        try
        {
            using (stream)
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        catch
        {
            // A failure to clean up must not hide the failure being reported.
            try { File.Delete(temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>The full path a save must replace: where a symbolic link finally leads, else the path itself.</summary>
    private static string FinalTarget(string path)
    {
        string fullPath = Path.GetFullPath(path);
        // Renaming over a link would replace the link by a regular file and leave the file it pointed to stale.
        var info = new FileInfo(fullPath);
        if (info.LinkTarget is null) return fullPath;
        try { return info.ResolveLinkTarget(returnFinalTarget: true)!.FullName; }
        catch (IOException e) { throw new IOException($"{path}: the symbolic link cannot be followed ({e.Message})", e); }
    }

    private const int TemporaryIdLength = 12;

    // Temporaries older than this may be removed. A live save writes its temporary without pause, so it is never
    // this old unless stalled; the lock test (below) spares a stalled one where locks work, and the age spares a
    // save between creating its file and locking it, and saves on file systems without locks.
    private static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The part of a temporary's name that identifies its target: the target's name, or, where that is too long to
    /// leave room in the 255-byte limit of a file name, its beginning and a hash of the whole, so that targets whose
    /// long names share a beginning still have stems of their own.
    /// </summary>
    internal static string TemporaryStem(string fileName)
    {
        const int MaxBytes = 200;   // + ".", ".", 12 digits, ".tmp": 218 bytes
        if (Encoding.UTF8.GetByteCount(fileName) <= MaxBytes) return fileName;
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(fileName)))[..8];
        int chars = 0, bytes = 0;
        foreach (var rune in fileName.EnumerateRunes())
        {
            if (bytes + rune.Utf8SequenceLength > MaxBytes - 1 - hash.Length) break;
            bytes += rune.Utf8SequenceLength;
            chars += rune.Utf16SequenceLength;
        }
        return $"{fileName[..chars]}~{hash}";
    }

    /// <summary>
    /// Deletes the temporaries that killed saves of the same target left (see <see cref="Write"/>): regular files
    /// named exactly as this target's temporaries are, last written over <see cref="StaleAfter"/> ago, that can be
    /// opened exclusively (a live save holds its own with FileShare.None; a killed one's lock died with it).
    /// Best effort: a leftover that cannot be removed is no reason to fail the save.
    /// </summary>
    private static void RemoveStaleTemporaries(string folder, string stem)
    {
        string prefix = "." + stem + ".";
        var options = new EnumerationOptions
        {
            // Temporaries start with a dot, which is Hidden on Unix; a link named as one is not ours.
            AttributesToSkip = FileAttributes.ReparsePoint | FileAttributes.Directory,
            IgnoreInaccessible = true,
            RecurseSubdirectories = false,
        };
        try
        {
            foreach (var file in new DirectoryInfo(folder).EnumerateFiles("*", options))
            {
                if (!IsTemporaryOf(file.Name, prefix) || DateTime.UtcNow - file.LastWriteTimeUtc < StaleAfter) continue;
                // Opening and deleting are one step, so a save cannot take the file between them; a failed open
                // (the lock is held) deletes nothing.
                try
                {
                    using var _ = new FileStream(file.FullName, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
                }
                catch (IOException) { }   // held by a live save, or already gone
                catch (UnauthorizedAccessException) { }
            }
        }
        catch (IOException) { }   // the folder is missing or unreadable: creating the temporary reports it
        catch (UnauthorizedAccessException) { }
    }

    private static bool IsTemporaryOf(string name, string prefix)
    {
        if (name.Length != prefix.Length + TemporaryIdLength + ".tmp".Length
            || !name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(".tmp", StringComparison.Ordinal)) return false;
        foreach (char c in name.AsSpan(prefix.Length, TemporaryIdLength))
            if (!char.IsAsciiHexDigitLower(c)) return false;
        return true;
    }
}
