using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>
/// The safetensors reader and writer: files from PyTorch load, files written here load in PyTorch
/// (scripts/make_reference_data.py --check-file), round trips are exact, and every malformed file is an
/// <see cref="InvalidDataException"/> naming the file and the tensor.
/// </summary>
[TestFixture]
public class SafeTensorsTests
{
    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-safetensors-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>A file of an 8-byte header length (the true one unless given), the header bytes and the body.</summary>
    internal static string WriteRaw(string folder, byte[] header, byte[] body, ulong? headerLength = null, string name = "raw.safetensors")
    {
        string path = Path.Combine(folder, name);
        var bytes = new byte[8 + header.Length + body.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        body.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    internal static string WriteRaw(string folder, string header, int bodyBytes, ulong? headerLength = null) =>
        WriteRaw(folder, Encoding.UTF8.GetBytes(header), new byte[bodyBytes], headerLength);

    private static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    // ---------------------------------------------------------------------------------------------------------
    // Interoperability with PyTorch
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void Read_LoadsAStateDictWrittenFromPyTorch()
    {
        var config = new RnnConfig(CellKind.Lstm, 5, 3, 2, bidirectional: true);
        var tensors = SafeTensors.Read(PyTorchData.PathOf("lstm_l2_bi_f64.params.safetensors"));
        Assert.That(tensors.Keys, Is.EquivalentTo(config.Parameters().Select(p => p.Name)));
        foreach (var p in config.Parameters())
            Assert.That(tensors[p.Name].Shape, Is.EqualTo(p.Shape), p.Name);
        // PyTorch initialises uniformly in ±1/√H: the values read are of that range and not all equal.
        var all = tensors.Values.SelectMany(t => t.ToArray()).ToArray();
        Assert.That(all.Max(Math.Abs), Is.LessThanOrEqualTo(1 / MathF.Sqrt(3)));
        Assert.That(all.Distinct().Count(), Is.GreaterThan(all.Length / 2));
    }

    /// <summary>
    /// The files in Data/recurrent are what Save writes today, and scripts/make_reference_data.py --check-file
    /// loads them into nn.LSTM / nn.GRU with load_state_dict(strict=True) and finds them equal to PyTorch's originals.
    /// Set RECURRENT_UPDATE_FIXTURES=1 to rewrite them after a deliberate change of the writer, then run the script's
    /// check again.
    /// </summary>
    [TestCase("lstm_l2_bi_f64")]
    [TestCase("lstm_l1_t1_f64")]
    [TestCase("gru_l2_bi_f64")]
    [TestCase("gru_reset_before_l1_n1_f64")]
    [TestCase("rnn_relu_l2_bi_f64")]
    [TestCase("rnn_tanh_l1_t1_f64")]
    public void Save_WritesTheCommittedFileThatPyTorchLoads(string caseName)
    {
        var testCase = PyTorchData.Cases.Single(c => c.Name == caseName);
        var layer = testCase.LoadLayer();
        string written = Path.Combine(_folder, "saved.safetensors");
        layer.Save(written);
        string committedName = $"{caseName}.saved.safetensors";
        if (Environment.GetEnvironmentVariable("RECURRENT_UPDATE_FIXTURES") == "1")
            File.Copy(written, Path.Combine(SourceDataFolder(), "recurrent", committedName), overwrite: true);
        string committed = Path.Combine(TestContext.CurrentContext.TestDirectory, "Data", "recurrent", committedName);
        Assert.That(File.ReadAllBytes(written), Is.EqualTo(File.ReadAllBytes(committed)),
            $"Save no longer writes {committed}, the file checked with PyTorch; see this test's summary.");
    }

    private static string SourceDataFolder([CallerFilePath] string thisFile = "") => Path.Combine(Path.GetDirectoryName(thisFile)!, "Data");

    // ---------------------------------------------------------------------------------------------------------
    // Round trips
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void SaveThenLoad_RoundTripsEveryParameterBitForBit()
    {
        var saved = new Gru(3, 5, variant: GruVariant.ResetBefore, numLayers: 2, bidirectional: true, seed: 11);
        // Values whose bits a sloppy writer would lose: −0, the smallest subnormal, the largest float.
        var first = saved.Parameters.All[0].Value.Span;
        (first[0], first[1], first[2], first[3]) = (-0f, float.Epsilon, float.MaxValue, -float.MaxValue);
        string path = Path.Combine(_folder, "gru.safetensors");
        saved.Save(path);

        var loaded = new Gru(3, 5, variant: GruVariant.ResetBefore, numLayers: 2, bidirectional: true, seed: 12);
        loaded.Load(path);
        for (int i = 0; i < saved.Parameters.All.Count; i++)
            Assert.That(Bits(loaded.Parameters.All[i].Value.ToArray()), Is.EqualTo(Bits(saved.Parameters.All[i].Value.ToArray())), saved.Parameters.All[i].Name);
        Assert.That(Directory.GetFiles(_folder), Is.EqualTo(new[] { path }), "only the target remains");
    }

    [Test]
    public void WriteThenRead_RoundTripsScalarEmptyAndThreeDimensionalTensors()
    {
        var random = new Random(5);
        var tensors = new Dictionary<string, FloatTensor>
        {
            ["scalar"] = new(new[] { 3.5f }),
            ["empty"] = new(0, 3),
            ["cube"] = new(TestData.UniformSingle(random, 24), 2, 3, 4),
            ["ünïcode name"] = new(new[] { 1f, 2f }, 2),
        };
        string path = Path.Combine(_folder, "t.safetensors");
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["note"] = "\"quoted\" \\ text" });
        var read = SafeTensors.Read(path);
        Assert.That(read.Keys, Is.EquivalentTo(tensors.Keys));
        foreach (var (name, tensor) in tensors)
        {
            Assert.That(read[name].Shape, Is.EqualTo(tensor.Shape), name);
            Assert.That(Bits(read[name].ToArray()), Is.EqualTo(Bits(tensor.ToArray())), name);
        }
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path)) % 8, Is.Zero, "the header is padded to a multiple of 8 bytes");
    }

    /// <summary>
    /// Byte for byte what the reference implementation (huggingface/safetensors) serialises for the same input:
    /// compact JSON, <c>__metadata__</c> first, the header padded with spaces to a multiple of 8 bytes.
    /// (scripts/make_reference_data.py's writer gives the same bytes for these inputs.)
    /// </summary>
    [TestCase("attn.0", new[] { 1, 2, 3 }, false, "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}")]
    [TestCase("attn0", new[] { 1, 1, 2, 3 }, false, "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ")]
    [TestCase(null, null, false, "{}      ")]
    [TestCase(null, null, true, "{\"__metadata__\":{\"framework\":\"pt\"}}     ")]
    public void Write_ProducesTheReferenceImplementationsBytes(string? name, int[]? shape, bool withMetadata, string expectedHeader)
    {
        var tensors = name is null ? [] : new[] { KeyValuePair.Create(name, new FloatTensor([0f, 1, 2, 3, 4, 5], shape!)) };
        string path = Path.Combine(_folder, "t.safetensors");
        SafeTensors.Write(path, tensors, withMetadata ? new Dictionary<string, string> { ["framework"] = "pt" } : null);

        var header = Encoding.UTF8.GetBytes(expectedHeader);
        var expected = new byte[8 + header.Length + (name is null ? 0 : 24)];
        BinaryPrimitives.WriteUInt64LittleEndian(expected, (ulong)header.Length);
        header.CopyTo(expected, 8);
        if (name is not null)
            for (int i = 0; i < 6; i++) BinaryPrimitives.WriteSingleLittleEndian(expected.AsSpan(8 + header.Length + 4 * i), i);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(expected));
    }

    [Test]
    public void Read_NullMetadata_IsNoMetadata()
    {
        string path = WriteRaw(_folder, "{\"__metadata__\":null," + ValidA + "}", 8);
        Assert.That(SafeTensors.Read(path).Keys, Is.EqualTo(new[] { "a" }));
    }

    [Test]
    public void Write_RefusesRepeatedOrReservedNames()
    {
        string path = Path.Combine(_folder, "t.safetensors");
        var pairs = new[] { KeyValuePair.Create("a", new FloatTensor(1)), KeyValuePair.Create("a", new FloatTensor(2)) };
        Assert.That(() => SafeTensors.Write(path, pairs), Throws.ArgumentException.With.Message.Contains("'a'"));
        Assert.That(() => SafeTensors.Write(path, [KeyValuePair.Create("__metadata__", new FloatTensor(1))]), Throws.ArgumentException);
        Assert.That(Directory.GetFiles(_folder), Is.Empty);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Malformed files
    // ---------------------------------------------------------------------------------------------------------

    private static readonly string ValidA = Entry("a", "F32", "[2]", 0, 8);

    /// <summary>(what, header, body bytes, name the message must carry or null).</summary>
    private static IEnumerable<TestCaseData> MalformedHeaders()
    {
        TestCaseData Case(string what, string header, int body, string? tensor) =>
            new TestCaseData(header, body, tensor).SetArgDisplayNames(what);
        yield return Case("invalid JSON", "{\"a\":", 0, null);
        yield return Case("JSON array", "[1,2]", 0, null);
        yield return Case("JSON string", "\"text\"", 0, null);
        yield return Case("JSON number", "42", 0, null);
        yield return Case("JSON null", "null", 0, null);
        yield return Case("nested too deep", "{\"a\":" + new string('[', 5000) + new string(']', 5000) + "}", 0, null);
        yield return Case("dtype I32", "{" + Entry("w", "I32", "[2]", 0, 8) + "}", 8, "w");
        yield return Case("dtype F8_E4M3", "{" + Entry("w", "F8_E4M3", "[2]", 0, 2) + "}", 2, "w");
        yield return Case("dtype F16 of F32's size", "{" + Entry("w", "F16", "[2]", 0, 8) + "}", 8, "w");
        yield return Case("dtype F64 of F32's size", "{" + Entry("w", "F64", "[2]", 0, 8) + "}", 8, "w");
        yield return Case("entry not an object", "{\"w\":3}", 0, "w");
        yield return Case("no dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "w");
        yield return Case("no shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "w");
        yield return Case("no offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "w");
        yield return Case("three offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 16, "w");
        yield return Case("negative dimension", "{" + Entry("w", "F32", "[-2]", 0, 8) + "}", 8, "w");
        yield return Case("fractional dimension", "{" + Entry("w", "F32", "[1.5]", 0, 8) + "}", 8, "w");
        yield return Case("dimension as text", "{" + Entry("w", "F32", "[\"2\"]", 0, 8) + "}", 8, "w");
        yield return Case("too many elements", "{" + Entry("w", "F32", "[100000,100000,100000]", 0, 8) + "}", 8, "w");
        yield return Case("size differs from shape", "{" + Entry("w", "F32", "[3]", 0, 8) + "}", 8, "w");
        yield return Case("offsets reversed", "{" + Entry("w", "F32", "[2]", 8, 0) + "}", 8, "w");
        yield return Case("offsets negative", "{" + Entry("w", "F32", "[2]", -8, 0) + "}", 8, "w");
        yield return Case("offsets overlap", "{" + ValidA + "," + Entry("b", "F32", "[2]", 4, 12) + "}", 12, "b");
        yield return Case("offsets past the end", "{" + ValidA + "," + Entry("b", "F32", "[2]", 8, 16) + "}", 12, "b");
        yield return Case("hole in the body", "{" + ValidA + "," + Entry("b", "F32", "[2]", 12, 20) + "}", 20, "b");
        yield return Case("trailing bytes", "{" + ValidA + "}", 12, null);
        yield return Case("repeated name", "{" + ValidA + "," + Entry("a", "F32", "[2]", 8, 16) + "}", 16, "a");
        yield return Case("metadata not strings", "{\"__metadata__\":{\"k\":1}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata key repeated", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata not an object", "{\"__metadata__\":[]," + ValidA + "}", 8, "__metadata__");

        // Issue 10, kind 5: each escaped as InvalidOperationException or loaded with the last copy winning.
        yield return Case("offsets as text", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4, "w");
        yield return Case("name with a lone surrogate", "{" + Entry("a\\ud800", "F32", "[2]", 0, 8) + "}", 8, "a\\ud800");
        yield return Case("dtype repeated", "{\"w\":{\"dtype\":\"F16\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "w");

        // Wrong types, repeated and unknown fields.
        string W(string fields) => "{\"w\":{" + fields + "}}";
        const string D = "\"dtype\":\"F32\"", S = "\"shape\":[2]", O = "\"data_offsets\":[0,8]";
        yield return Case("shape repeated", W($"{D},{S},{S},{O}"), 8, "w");
        yield return Case("data_offsets repeated", W($"{D},{S},{O},{O}"), 8, "w");
        yield return Case("unknown field", W($"{D},{S},{O},\"extra\":1"), 8, "w");
        yield return Case("field name differing in case", W($"\"Dtype\":\"F32\",{S},{O}"), 8, "w");
        yield return Case("dtype a number", W($"\"dtype\":32,{S},{O}"), 8, "w");
        yield return Case("dtype null", W($"\"dtype\":null,{S},{O}"), 8, "w");
        yield return Case("dtype an array", W($"\"dtype\":[\"F32\"],{S},{O}"), 8, "w");
        yield return Case("dtype lowercase", W($"\"dtype\":\"f32\",{S},{O}"), 8, "w");
        yield return Case("shape a number", W($"{D},\"shape\":2,{O}"), 8, "w");
        yield return Case("shape an object", W($"{D},\"shape\":{{\"0\":2}},{O}"), 8, "w");
        yield return Case("shape nested", W($"{D},\"shape\":[[2]],{O}"), 8, "w");
        yield return Case("dimension with exponent", W($"{D},\"shape\":[2e0],{O}"), 8, "w");
        yield return Case("dimension 2.0", W($"{D},\"shape\":[2.0],{O}"), 8, "w");
        yield return Case("dimension past 2^31 beside a zero", W($"{D},\"shape\":[0,3000000000],\"data_offsets\":[0,0]"), 0, "w");
        yield return Case("dimension past 2^64", W($"{D},\"shape\":[18446744073709551616],{O}"), 8, "w");
        yield return Case("offsets an object", W($"{D},{S},\"data_offsets\":{{\"begin\":0,\"end\":8}}"), 8, "w");
        yield return Case("offsets null", W($"{D},{S},\"data_offsets\":null"), 8, "w");
        yield return Case("offsets empty", W($"{D},{S},\"data_offsets\":[]"), 8, "w");
        yield return Case("one offset", W($"{D},{S},\"data_offsets\":[8]"), 8, "w");
        yield return Case("offsets fractional", W($"{D},{S},\"data_offsets\":[0,8.0]"), 8, "w");
        yield return Case("offsets nested", W($"{D},{S},\"data_offsets\":[[0],[8]]"), 8, "w");
        yield return Case("offsets past 2^63", W($"{D},{S},\"data_offsets\":[9223372036854775808,9223372036854775816]"), 8, "w");
        yield return Case("entry null", "{\"w\":null}", 0, "w");
        yield return Case("entry an array", "{\"w\":[\"F32\",[2],[0,8]]}", 8, "w");

        // Strings that are not valid UTF-16.
        yield return Case("name a lone low surrogate", "{" + Entry("\\udc00b", "F32", "[2]", 0, 8) + "}", 8, "\\udc00b");
        yield return Case("surrogates reversed", "{" + Entry("\\udc00\\ud800", "F32", "[2]", 0, 8) + "}", 8, "\\udc00\\ud800");
        yield return Case("field name with a lone surrogate", W($"{D},{S},{O},\"x\\ud800\":1"), 8, "w");
        yield return Case("dtype with a lone surrogate", W($"\"dtype\":\"F32\\ud800\",{S},{O}"), 8, "w");
        yield return Case("metadata key with a lone surrogate", "{\"__metadata__\":{\"k\\ud800\":\"v\"}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata value with a lone surrogate", "{\"__metadata__\":{\"k\":\"v\\udfff\"}," + ValidA + "}", 8, "__metadata__");

        // Repeated names, spelt alike or only after unescaping.
        yield return Case("name repeated through an escape", "{" + ValidA + "," + Entry("\\u0061", "F32", "[2]", 8, 16) + "}", 16, "a");
        yield return Case("metadata repeated", "{\"__metadata__\":{},\"__metadata__\":{}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata value a number", "{\"__metadata__\":{\"k\":1.5}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata value null", "{\"__metadata__\":{\"k\":null}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata value an object", "{\"__metadata__\":{\"k\":{}}," + ValidA + "}", 8, "__metadata__");
        yield return Case("metadata a string", "{\"__metadata__\":\"pt\"," + ValidA + "}", 8, "__metadata__");

        // What may surround the object: whitespace only.
        yield return Case("empty header", "", 0, null);
        yield return Case("only spaces", "        ", 0, null);
        yield return Case("text after the object", "{" + ValidA + "}x", 8, null);
        yield return Case("second object", "{" + ValidA + "}{}", 8, null);
        yield return Case("NUL padding", "{" + ValidA + "}\0\0\0", 8, null);
        yield return Case("byte order mark", "\uFEFF{" + ValidA + "}", 8, null);
        yield return Case("comment", "{/* c */" + ValidA + "}", 8, null);
        yield return Case("trailing comma", "{" + ValidA + ",}", 8, null);
        yield return Case("cut inside an entry", "{\"w\":{\"dtype\":\"F32\",\"sha", 0, "w");
        yield return Case("unquoted name", "{w:{}}", 0, null);
        yield return Case("single quotes", "{'w':{}}", 0, null);
    }

    /// <summary>Variants the reference implementation reads and this reader must too.</summary>
    [TestCase("\t\n {\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", TestName = "Read_AcceptsLeadingWhitespace")]
    [TestCase("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} \r\n\t  ", TestName = "Read_AcceptsTrailingWhitespace")]
    [TestCase("{\"a\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\"}}", TestName = "Read_AcceptsFieldsInAnyOrder")]
    [TestCase("{\"\\u0061\":{\"dt\\u0079pe\":\"F\\u0033\\u0032\",\"shape\" : [ 2 ] ,\"data_offsets\":[0, 8]}}", TestName = "Read_AcceptsEscapesAndSpacesInsideTheObject")]
    [TestCase("{\"__metadata__\":{\"k\":\"\\ud83d\\ude00\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", TestName = "Read_AcceptsASurrogatePair")]
    public void Read_WellFormedVariant_Loads(string header)
    {
        string path = WriteRaw(_folder, header, 8);
        var read = SafeTensors.Read(path);
        Assert.That(read.Keys, Is.EqualTo(new[] { "a" }));
        Assert.That(read["a"].Shape, Is.EqualTo(new[] { 2 }));
    }

    [TestCaseSource(nameof(MalformedHeaders))]
    public void Read_MalformedHeader_ThrowsInvalidDataNamingFileAndTensor(string header, int bodyBytes, string? tensor)
    {
        string path = WriteRaw(_folder, header, bodyBytes);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path))!;
        Assert.That(error.Message, Does.Contain(path));
        if (tensor is not null) Assert.That(error.Message, Does.Contain($"'{tensor}'"));
    }

    [Test]
    public void Read_HeaderThatIsNotUtf8_ThrowsInvalidData()
    {
        byte[] header = [.. "{\"a"u8, 0xFF, .. "\":{}}"u8];
        string path = WriteRaw(_folder, header, []);
        Assert.That(() => SafeTensors.Read(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("UTF-8"));
    }

    [TestCase(0)]
    [TestCase(5)]
    public void Read_FileShorterThanTheHeaderLength_ThrowsInvalidData(int length)
    {
        string path = Path.Combine(_folder, "short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        Assert.That(() => SafeTensors.Read(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains(path));
    }

    [TestCase(1000ul)]
    [TestCase(ulong.MaxValue)]
    [TestCase(1ul << 63)]
    public void Read_HeaderLengthLargerThanTheFile_ThrowsInvalidData(ulong headerLength)
    {
        string path = WriteRaw(_folder, "{" + ValidA + "}", 8, headerLength);
        Assert.That(() => SafeTensors.Read(path), Throws.TypeOf<InvalidDataException>().With.Message.Contains("header length"));
    }

    [TestCase(1)]
    [TestCase(4)]
    [TestCase(13)]
    public void Read_TruncatedBody_ThrowsInvalidDataNamingTheCutTensor(int bytesCut)
    {
        string path = Path.Combine(_folder, "t.safetensors");
        SafeTensors.Write(path, [KeyValuePair.Create("first", new FloatTensor(3)), KeyValuePair.Create("second", new FloatTensor(4))]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^bytesCut]);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("'second'").And.Contain("past the end"));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Saving is atomic
    // ---------------------------------------------------------------------------------------------------------

    [Test]
    public void Save_OverAnExistingFile_ReplacesItAndLeavesNoTemporaryFile()
    {
        string path = Path.Combine(_folder, "m.safetensors");
        new Lstm(2, 3, seed: 1).Save(path);
        var second = new Lstm(2, 3, seed: 2);
        second.Save(path);
        var loaded = new Lstm(2, 3, seed: 3);
        loaded.Load(path);
        Assert.That(loaded.Parameters.All[0].Value.ToArray(), Is.EqualTo(second.Parameters.All[0].Value.ToArray()));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void Save_WhenTheTargetIsAFolder_FailsAndLeavesTheFolderAndNoTemporaryFile()
    {
        string target = Directory.CreateDirectory(Path.Combine(_folder, "target")).FullName;
        string inside = Path.Combine(target, "keep.txt");
        File.WriteAllText(inside, "old");
        Assert.That(() => new Lstm(2, 3).Save(target), Throws.InstanceOf<IOException>());
        Assert.That(File.ReadAllText(inside), Is.EqualTo("old"));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.EqualTo(new[] { target }), "no temporary file is left behind");
    }

    [Test]
    public void Save_IntoAMissingFolder_ThrowsDirectoryNotFoundAndCreatesNothing()
    {
        string target = Path.Combine(_folder, "missing", "m.safetensors");
        Assert.That(() => new Lstm(2, 3).Save(target), Throws.InstanceOf<DirectoryNotFoundException>().With.Message.StartsWith(target + ":"));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void Write_FailingOverAnExistingFile_LeavesItIntact()
    {
        string path = Path.Combine(_folder, "m.safetensors");
        new Lstm(2, 3, seed: 1).Save(path);
        var before = File.ReadAllBytes(path);
        var repeated = new[] { KeyValuePair.Create("x", new FloatTensor(1)), KeyValuePair.Create("x", new FloatTensor(1)) };
        Assert.That(() => SafeTensors.Write(path, repeated), Throws.ArgumentException);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void Save_ToAFileNameNearTheSystemLimit_Succeeds()
    {
        // The temporary name is derived from the target's; it must stay within the 255-byte limit of file names.
        string path = Path.Combine(_folder, new string('m', 240) + ".safetensors");
        var saved = new ElmanRnn(2, 3, seed: 4);
        saved.Save(path);
        var loaded = new ElmanRnn(2, 3, seed: 5);
        loaded.Load(path);
        Assert.That(loaded.Parameters.All[1].Value.ToArray(), Is.EqualTo(saved.Parameters.All[1].Value.ToArray()));
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.EqualTo(new[] { path }));
    }

    private static int[] Bits(float[] values) => Array.ConvertAll(values, BitConverter.SingleToInt32Bits);
}
