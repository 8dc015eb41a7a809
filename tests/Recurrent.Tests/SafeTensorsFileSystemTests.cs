using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>
/// Where Save and Load meet the file system (issue 10, kind 6): folders, missing files, leftovers of killed saves,
/// symbolic links.
/// </summary>
[TestFixture]
public class SafeTensorsFileSystemTests
{
    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-safetensors-fs-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    private static Lstm Layer(int seed) => new(2, 3, seed: seed);

    private static float[] Values(RecurrentLayer layer) => [.. layer.Parameters.All.SelectMany(p => p.Value.ToArray())];

    /// <summary>What Load finds at <paramref name="path"/>, read into a fresh layer.</summary>
    private static float[] Loaded(string path)
    {
        var layer = Layer(seed: 99);
        layer.Load(path);
        return Values(layer);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Reading what is not a file
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void Load_OfAFolder_ThrowsIOExceptionNamingIt_AndChangesNothing()
    {
        var layer = Layer(seed: 1);
        var before = Values(layer);
        var error = Assert.Throws<IOException>(() => layer.Load(_folder))!;
        Assert.That(error.Message, Does.Contain(_folder));
        Assert.That(() => SafeTensors.Read(_folder), Throws.TypeOf<IOException>());
        Assert.That(Values(layer), Is.EqualTo(before));
    }

    [Test]
    public void Load_OfAMissingFile_ThrowsFileNotFoundNamingIt()
    {
        string path = Path.Combine(_folder, "missing.safetensors");
        var error = Assert.Throws<FileNotFoundException>(() => Layer(seed: 1).Load(path))!;
        Assert.That(error.FileName, Is.EqualTo(path));
        Assert.That(() => Layer(seed: 1).Load(Path.Combine(_folder, "no", "m.safetensors")), Throws.InstanceOf<DirectoryNotFoundException>());
    }

    [Test]
    public void Save_OntoAFolder_ThrowsIOExceptionNamingIt()
    {
        var error = Assert.Throws<IOException>(() => Layer(seed: 1).Save(_folder))!;
        Assert.That(error.Message, Does.Contain(_folder));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void Save_OfAnEmptyPath_ThrowsArgumentException() =>
        Assert.That(() => Layer(seed: 1).Save(""), Throws.ArgumentException);

    // ---------------------------------------------------------------------------------------------------------
    // Leftovers of killed saves
    // ---------------------------------------------------------------------------------------------------------

    private static readonly DateTime LongAgo = DateTime.UtcNow.AddHours(-1);

    /// <summary>A file as a save killed before its rename leaves it, last written <paramref name="when"/>.</summary>
    private string Leftover(string name, DateTime when)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, new byte[1000]);
        File.SetLastWriteTimeUtc(path, when);
        return path;
    }

    [Test]
    public void Save_RemovesTheStaleTemporariesOfItsTarget_AndNothingElse()
    {
        string target = Path.Combine(_folder, "m.safetensors");
        var stale = new[]
        {
            Leftover(".m.safetensors.0123456789ab.tmp", LongAgo),
            Leftover(".m.safetensors.ffffffffffff.tmp", LongAgo),
        };
        var kept = new[]
        {
            Leftover(".m.safetensors.0123456789ac.tmp", DateTime.UtcNow),                // a save in progress
            Leftover(".other.safetensors.0123456789ab.tmp", LongAgo),                     // another target's
            Leftover(".m.safetensors.0123456789AB.tmp", LongAgo),                         // not a name Save makes
            Leftover(".m.safetensors.0123456789a.tmp", LongAgo),
            Leftover(".m.safetensors.0123456789ab.tmp.keep", LongAgo),
            Leftover("m.safetensors.0123456789ab.tmp", LongAgo),
            Leftover(".m.safetensorsx0123456789ab.tmp", LongAgo),
            Leftover(".x.m.safetensors.0123456789ab.tmp", LongAgo),
        };
        var saved = Layer(seed: 1);
        saved.Save(target);
        Assert.That(stale.Where(File.Exists), Is.Empty);
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.EquivalentTo(kept.Append(target)));
        Assert.That(Loaded(target), Is.EqualTo(Values(saved)));
    }

    /// <summary>
    /// A concurrent save of the same target holds its temporary open; however old the file looks (a stalled
    /// writer), it is not removed from under it.
    /// </summary>
    [Test]
    public void Save_LeavesAnOldTemporaryThatALiveSaveHoldsOpen()
    {
        string target = Path.Combine(_folder, "m.safetensors");
        string held = Leftover(".m.safetensors.0123456789ab.tmp", LongAgo);
        using (new FileStream(held, FileMode.Open, FileAccess.Write, FileShare.None))
        {
            Layer(seed: 1).Save(target);
            Assert.That(File.Exists(held), Is.True);
        }
        Layer(seed: 2).Save(target);
        Assert.That(File.Exists(held), Is.False, "once released, the stale file goes");
    }

    [Test]
    public void Save_LeavesALinkNamedAsATemporary()
    {
        string target = Path.Combine(_folder, "m.safetensors");
        string elsewhere = Leftover("elsewhere.bin", LongAgo);
        string link = Path.Combine(_folder, ".m.safetensors.0123456789ab.tmp");
        File.CreateSymbolicLink(link, elsewhere);
        Layer(seed: 1).Save(target);
        Assert.That(new FileInfo(link).LinkTarget, Is.Not.Null);
        Assert.That(File.Exists(elsewhere), Is.True);
    }

    /// <summary>
    /// A long target name is cut in its temporaries' names; two targets whose long names share their beginning
    /// still own their temporaries apart, and a name of multi-byte characters stays within 255 bytes.
    /// </summary>
    [Test]
    public void Save_WithLongNamesSharingABeginning_RemovesOnlyItsOwnTemporaries()
    {
        string first = new string('m', 230) + ".a.safetensors", second = new string('m', 230) + ".b.safetensors";
        string firstLeftover = Leftover($".{AtomicFile.TemporaryStem(first)}.0123456789ab.tmp", LongAgo);
        string secondLeftover = Leftover($".{AtomicFile.TemporaryStem(second)}.0123456789ab.tmp", LongAgo);
        Assert.That(AtomicFile.TemporaryStem(first), Is.Not.EqualTo(AtomicFile.TemporaryStem(second)));
        Layer(seed: 1).Save(Path.Combine(_folder, first));
        Assert.That(File.Exists(firstLeftover), Is.False);
        Assert.That(File.Exists(secondLeftover), Is.True);

        // 80 three-byte characters: 240 bytes, a valid name whose temporary would not be without the cut.
        string wide = new string('ж', 40) + new string('語', 40);
        Layer(seed: 2).Save(Path.Combine(_folder, wide));
        Assert.That(Loaded(Path.Combine(_folder, wide)), Is.EqualTo(Values(Layer(seed: 2))));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Symbolic links
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void Save_ThroughASymbolicLink_WritesItsTargetAndKeepsTheLink()
    {
        Directory.CreateDirectory(Path.Combine(_folder, "real"));
        string file = Path.Combine(_folder, "real", "m.safetensors");
        Layer(seed: 1).Save(file);
        string link = Path.Combine(_folder, "link.safetensors");
        File.CreateSymbolicLink(link, Path.Combine("real", "m.safetensors"));   // relative, as links often are

        var saved = Layer(seed: 2);
        saved.Save(link);
        Assert.That(new FileInfo(link).LinkTarget, Is.EqualTo(Path.Combine("real", "m.safetensors")));
        Assert.That(Loaded(file), Is.EqualTo(Values(saved)));
        Assert.That(Loaded(link), Is.EqualTo(Values(saved)));
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(_folder, "real")), Is.EqualTo(new[] { file }));
    }

    [Test]
    public void Save_ThroughAChainOfLinks_WritesTheFinalTarget()
    {
        string file = Path.Combine(_folder, "m.safetensors");
        Layer(seed: 1).Save(file);
        string middle = Path.Combine(_folder, "middle"), outer = Path.Combine(_folder, "outer");
        File.CreateSymbolicLink(middle, file);
        File.CreateSymbolicLink(outer, middle);
        var saved = Layer(seed: 2);
        saved.Save(outer);
        Assert.That(new FileInfo(outer).LinkTarget, Is.EqualTo(middle));
        Assert.That(new FileInfo(middle).LinkTarget, Is.EqualTo(file));
        Assert.That(Loaded(file), Is.EqualTo(Values(saved)));
    }

    [Test]
    public void Save_ThroughADanglingLink_CreatesTheFileItNames()
    {
        string file = Path.Combine(_folder, "later.safetensors");
        string link = Path.Combine(_folder, "link.safetensors");
        File.CreateSymbolicLink(link, file);
        var saved = Layer(seed: 3);
        saved.Save(link);
        Assert.That(new FileInfo(link).LinkTarget, Is.EqualTo(file));
        Assert.That(Loaded(file), Is.EqualTo(Values(saved)));
    }

    [Test]
    public void Save_ThroughALinkToAFolderOrALoop_ThrowsIOException()
    {
        string toFolder = Path.Combine(_folder, "to-folder");
        Directory.CreateDirectory(Path.Combine(_folder, "sub"));
        File.CreateSymbolicLink(toFolder, Path.Combine(_folder, "sub"));
        Assert.That(() => Layer(seed: 1).Save(toFolder), Throws.InstanceOf<IOException>().With.Message.Contains(toFolder));

        string loop = Path.Combine(_folder, "loop");
        File.CreateSymbolicLink(loop, loop);
        Assert.That(() => Layer(seed: 1).Save(loop), Throws.InstanceOf<IOException>().With.Message.Contains(loop));
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(_folder, "sub")), Is.Empty);
    }

    [Test]
    public void Load_OfANamedPipe_ThrowsInvalidData_InsteadOfWaitingForAWriter()
    {
        var fifo = Path.Combine(_folder, "pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) mkfifo.WaitForExit();
        Assume.That(File.Exists(fifo), "mkfifo made no pipe");
        var lstm = new Lstm(1, 1);
        var load = Task.Run(() => lstm.Load(fifo));
        Assert.That(Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(20))).Result, Is.SameAs(load), "Load of a named pipe returned");
        Assert.That(load.Exception?.InnerException, Is.TypeOf<InvalidDataException>().With.Message.Contains(fifo));
    }
}
