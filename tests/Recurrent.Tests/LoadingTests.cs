using System.Buffers.Binary;
using System.Text;
using NUnit.Framework;
using Recurrent.Sequence;

namespace Recurrent.Tests;

/// <summary>
/// Loading as PyTorch's <c>load_state_dict</c> (issue 16, item 3): strict and non-strict, prefixes, F16/BF16/F64 on
/// load and save, streams and in-memory maps. The fixtures of Data/pytorch/loading are written by
/// scripts/make_loading_fixtures.py with PyTorch's own conversions.
/// </summary>
[TestFixture]
public class LoadingTests
{
    private string _folder = null!;

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-loading-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    private static string Fixture(string name) => PyTorchData.PathOf(Path.Combine("loading", name));

    /// <summary>The nn.LSTM(3, 4) of the fixtures.</summary>
    private static Lstm CreateLstm(int seed = 5) => new(3, 4, seed: seed);

    private static int[] Bits(FloatTensor t) => t.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    private static void AssertValuesAre(RecurrentLayer layer, IReadOnlyDictionary<string, FloatTensor> expected)
    {
        Assert.That(layer.Parameters.All.Select(p => p.Name), Is.EquivalentTo(expected.Keys));
        foreach (var p in layer.Parameters.All)
            Assert.That(Bits(p.Value), Is.EqualTo(Bits(expected[p.Name])), p.Name);
    }

    private static int[][] Snapshot(RecurrentLayer layer) => layer.Parameters.All.Select(p => Bits(p.Value)).ToArray();

    // ------------------------------------------------------------------------------------------------------------
    // Dtypes on load
    // ------------------------------------------------------------------------------------------------------------

    [TestCase("f16")]
    [TestCase("bf16")]
    [TestCase("f64")]
    public void Load_PyTorchFileInOtherDType_GivesPyTorchsFloat32Conversion(string tag)
    {
        var layer = CreateLstm();
        var result = layer.Load(Fixture($"lstm.{tag}.safetensors"));
        Assert.That(result.IsExact, Is.True);
        AssertValuesAre(layer, SafeTensors.Read(Fixture($"lstm.{tag}.expected.safetensors")));
    }

    [Test]
    public void Load_F16Fixture_HoldsTheEdgeValuesAsPyTorchConvertsThem()
    {
        var layer = CreateLstm();
        layer.Load(Fixture("lstm.f16.safetensors"));
        var bias = layer.Parameters["bias_ih_l0"].Value.ToArray();
        // 65504 and 2⁻²⁴ are F16's largest value and smallest subnormal; 1 + 2⁻¹¹ is a tie, rounded to even (1).
        Assert.That(bias[..4], Is.EqualTo(new[] { 65504f, -65504f, MathF.Pow(2, -24), 1f }));
        Assert.That(bias[5], Is.EqualTo((float)(Half)(1f / 3)));
        Assert.That(float.IsNegative(bias[6]) && bias[6] == 0, Is.True, "−0 stays negative");
        Assert.That(bias[7], Is.EqualTo(0f), "1e-8 is below F16's smallest subnormal");
    }

    [Test]
    public void Load_F64Fixture_RoundsToNearestFloat32_AndKeepsTheRangeEdges()
    {
        var layer = CreateLstm();
        layer.Load(Fixture("lstm.f64.safetensors"));
        var bias = layer.Parameters["bias_hh_l0"].Value.ToArray();
        Assert.That(bias[0], Is.EqualTo(float.MaxValue), "the largest double that rounds to float32's largest value");
        Assert.That(bias[1], Is.EqualTo(0f), "1e-50 underflows to zero");
        Assert.That(bias[2], Is.EqualTo((float)1e-40).And.Not.EqualTo(0f), "1e-40 becomes a float32 subnormal");
    }

    [Test]
    public void Load_F64ValueBeyondFloat32_ThrowsInvalidDataNamingTheTensor_AndChangesNothing()
    {
        var source = SafeTensors.Read(Fixture("lstm.f64.safetensors"));
        // Written as F64 by hand: one value beyond float32's range (3.4028235677973366e38 is the last that rounds down).
        string path = WriteF64(source, "weight_hh_l0", 7, 3.5e38);
        var layer = CreateLstm();
        var before = Snapshot(layer);
        var error = Assert.Throws<InvalidDataException>(() => layer.Load(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("'weight_hh_l0'").And.Contain("element 7").And.Contain("float32's range"));
        Assert.That(Snapshot(layer), Is.EqualTo(before));

        // −1e300, and the exact tie between float32's largest value and 2¹²⁸, which rounds (to even) to infinity.
        foreach (double beyond in new[] { -1e300, 3.4028235677973366e38 })
        {
            error = Assert.Throws<InvalidDataException>(() => layer.Load(WriteF64(source, "bias_ih_l0", 0, beyond)))!;
            Assert.That(error.Message, Does.Contain("'bias_ih_l0'").And.Contain("element 0"));
        }
        Assert.That(Snapshot(layer), Is.EqualTo(before));
    }

    [Test]
    public void Load_F64NaNOrInfinity_IsRefusedAsNotFinite_AsForF32()
    {
        var source = SafeTensors.Read(Fixture("lstm.f64.safetensors"));
        var layer = CreateLstm();
        foreach (double bad in new[] { double.NaN, double.PositiveInfinity })
        {
            var error = Assert.Throws<InvalidDataException>(() => layer.Load(WriteF64(source, "bias_hh_l0", 2, bad)))!;
            Assert.That(error.Message, Does.Contain("'bias_hh_l0' element 2").And.Contain("finite"));
        }
    }

    /// <summary>The tensors as an F64 file (they hold float32 values, widened exactly), with one element replaced.</summary>
    private string WriteF64(IReadOnlyDictionary<string, FloatTensor> tensors, string name, int index, double value)
    {
        var header = new StringBuilder("{");
        var body = new List<byte>();
        foreach (var (key, tensor) in tensors)
        {
            if (header.Length > 1) header.Append(',');
            header.Append($"\"{key}\":{{\"dtype\":\"F64\",\"shape\":[{string.Join(",", tensor.Shape)}],\"data_offsets\":[{body.Count},{body.Count + 8 * tensor.Length}]}}");
            var values = tensor.ToArray();
            for (int i = 0; i < values.Length; i++)
            {
                var bytes = new byte[8];
                BinaryPrimitives.WriteDoubleLittleEndian(bytes, key == name && i == index ? value : values[i]);
                body.AddRange(bytes);
            }
        }
        header.Append('}');
        string path = Path.Combine(_folder, $"f64-{Guid.NewGuid():N}.safetensors");
        var headerBytes = Encoding.UTF8.GetBytes(header.ToString());
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerBytes.Length);
        File.WriteAllBytes(path, [.. length, .. headerBytes, .. body]);
        return path;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Prefixes and strictness
    // ------------------------------------------------------------------------------------------------------------

    [TestCase("whole_model.safetensors", "rnn.")]
    [TestCase("whole_model.module.safetensors", "module.rnn.")]
    public void Load_WholeModelFileWithPrefix_LoadsTheSubModule_IgnoringTheRest(string file, string prefix)
    {
        var layer = CreateLstm();
        var result = layer.Load(Fixture(file), new LoadOptions { Prefix = prefix });
        Assert.That(result.Missing, Is.Empty);
        Assert.That(result.Unexpected, Is.Empty, "embedding and fc lie outside the prefix");
        AssertValuesAre(layer, SafeTensors.Read(Fixture("lstm.f32.safetensors")));
    }

    [TestCase("whole_model.safetensors", null, "rnn.weight_ih_l0", "Prefix = \"rnn.\"")]
    [TestCase("whole_model.module.safetensors", null, "module.rnn.weight_ih_l0", "Prefix = \"module.rnn.\"")]
    [TestCase("whole_model.module.safetensors", "rnn.", null, null)]
    [TestCase("lstm.f32.safetensors", "rnn.", null, null)]
    public void Load_StrictMiss_NamesTheNearMiss_OrAPrefixMatchingNothingListsThePrefixes(string file, string? prefix, string? nearMiss, string? hint)
    {
        var layer = CreateLstm();
        var before = Snapshot(layer);
        var error = Assert.Throws<InvalidDataException>(() => layer.Load(Fixture(file), new LoadOptions { Prefix = prefix }))!;
        Assert.That(error.Message, Does.Contain(Fixture(file)));
        if (nearMiss is not null)
            Assert.That(error.Message, Does.Contain("tensor 'weight_ih_l0' is missing").And.Contain($"'{nearMiss}'").And.Contain(hint!)
                .And.Contain("tensor 'bias_hh_l0' is missing"));
        else if (file.StartsWith("whole", StringComparison.Ordinal))
            Assert.That(error.Message, Does.Contain("no tensor name starts with the prefix 'rnn.'")
                .And.Contain("'module.'").And.Contain("'module.rnn.'").And.Contain("'module.fc.'").And.Contain("'module.embedding.'"));
        else
            Assert.That(error.Message, Does.Contain("prefix 'rnn.'").And.Contain("the names have no prefix"));
        Assert.That(Snapshot(layer), Is.EqualTo(before));
    }

    [Test]
    public void Load_StrictMiss_WithPrefixWhereTheFileHasNone_SuggestsNoPrefix()
    {
        string path = Path.Combine(_folder, "mixed.safetensors");
        var tensors = SafeTensors.Read(Fixture("lstm.f32.safetensors")).ToDictionary(p => p.Key, p => p.Value);
        tensors["rnn.bias_ih_l0"] = tensors["bias_ih_l0"];
        SafeTensors.Write(path, tensors);
        var error = Assert.Throws<InvalidDataException>(() => CreateLstm().Load(path, new LoadOptions { Prefix = "rnn." }))!;
        Assert.That(error.Message, Does.Contain("tensor 'rnn.weight_ih_l0' is missing (the file has 'weight_ih_l0': pass no Prefix)"));
    }

    [Test]
    public void Load_StrictMiss_NamesAnEditDistanceNeighbour()
    {
        string path = Path.Combine(_folder, "typo.safetensors");
        var tensors = SafeTensors.Read(Fixture("lstm.f32.safetensors")).ToDictionary(p => p.Key, p => p.Value);
        tensors["weight_ih_10"] = tensors["weight_ih_l0"];
        tensors.Remove("weight_ih_l0");
        SafeTensors.Write(path, tensors);
        var error = Assert.Throws<InvalidDataException>(() => CreateLstm().Load(path))!;
        Assert.That(error.Message, Does.Contain("tensor 'weight_ih_l0' is missing (the file has 'weight_ih_10', which differs by 1 character)"));
    }

    [Test]
    public void Load_NonStrict_LoadsWhatMatches_ReportsMissingAndUnexpected_LeavesTheMissingAlone()
    {
        string path = Path.Combine(_folder, "partial.safetensors");
        var source = SafeTensors.Read(Fixture("lstm.f32.safetensors"));
        var tensors = source.Where(p => p.Key != "bias_hh_l0").ToDictionary(p => p.Key, p => p.Value);
        tensors["extra"] = new FloatTensor(2);
        tensors["weight_ih_l1"] = new FloatTensor(16, 4);
        SafeTensors.Write(path, tensors);
        var layer = CreateLstm();
        var biasBefore = Bits(layer.Parameters["bias_hh_l0"].Value);

        var result = layer.Load(path, new LoadOptions { Strict = false });
        Assert.That(result.Missing, Is.EqualTo(new[] { "bias_hh_l0" }));
        Assert.That(result.Unexpected, Is.EquivalentTo(new[] { "extra", "weight_ih_l1" }));
        Assert.That(result.IsExact, Is.False);
        Assert.That(Bits(layer.Parameters["bias_hh_l0"].Value), Is.EqualTo(biasBefore));
        foreach (var name in new[] { "weight_ih_l0", "weight_hh_l0", "bias_ih_l0" })
            Assert.That(Bits(layer.Parameters[name].Value), Is.EqualTo(Bits(source[name])), name);

        var strict = Assert.Throws<InvalidDataException>(() => layer.Load(path))!;
        Assert.That(strict.Message, Does.Contain("'bias_hh_l0' is missing"));
    }

    [Test]
    public void Load_NonStrictWithPrefix_ReportsUnexpectedUnderThePrefixOnly()
    {
        var layer = CreateLstm();
        var map = SafeTensors.Read(Fixture("whole_model.safetensors")).ToDictionary(p => p.Key, p => p.Value);
        map["rnn.weight_ih_l0_reverse"] = new FloatTensor(16, 3);
        var result = layer.Parameters.Load(map, new LoadOptions { Prefix = "rnn.", Strict = false });
        Assert.That(result.Missing, Is.Empty);
        Assert.That(result.Unexpected, Is.EqualTo(new[] { "rnn.weight_ih_l0_reverse" }));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Load_MisshapedOrNonFinite_IsAnErrorInEitherMode_AndChangesNothing(bool strict)
    {
        var source = SafeTensors.Read(Fixture("lstm.f32.safetensors"));
        var misshaped = source.ToDictionary(p => p.Key, p => p.Value);
        misshaped["weight_hh_l0"] = new FloatTensor(4, 16);
        var layer = CreateLstm();
        var before = Snapshot(layer);
        var options = new LoadOptions { Strict = strict };
        var error = Assert.Throws<ArgumentException>(() => layer.Parameters.Load(misshaped, options))!;
        Assert.That(error.Message, Does.Contain("'weight_hh_l0' has shape [4, 16]; expected [16, 4]"));
        Assert.That(error.ParamName, Is.EqualTo("tensors"));

        var nan = source.ToDictionary(p => p.Key, p => p.Value.Clone());
        nan["bias_hh_l0"][3] = float.NaN;
        error = Assert.Throws<ArgumentException>(() => layer.Parameters.Load(nan, options))!;
        Assert.That(error.Message, Does.Contain("'bias_hh_l0' element 3 is NaN"));
        Assert.That(Snapshot(layer), Is.EqualTo(before));
    }

    // ------------------------------------------------------------------------------------------------------------
    // Streams and maps
    // ------------------------------------------------------------------------------------------------------------

    [Test]
    public void Load_FromStream_SeekableFromItsPosition_AndNonSeekable_GiveTheFilesValues()
    {
        byte[] file = File.ReadAllBytes(Fixture("whole_model.module.safetensors"));
        var expected = SafeTensors.Read(Fixture("lstm.f32.safetensors"));
        var options = new LoadOptions { Prefix = "module.rnn." };

        var layer = CreateLstm();
        using (var stream = new MemoryStream([.. new byte[5], .. file]))
        {
            stream.Position = 5;
            Assert.That(layer.Parameters.Load(stream, options).IsExact, Is.True);
        }
        AssertValuesAre(layer, expected);

        layer = CreateLstm();
        using (var stream = new ForwardOnlyStream(file)) layer.Parameters.Load(stream, options);
        AssertValuesAre(layer, expected);
    }

    [Test]
    public void Load_FromStream_HasTheFilesChecks_NamingTheStream()
    {
        var layer = CreateLstm();
        var before = Snapshot(layer);
        byte[] file = File.ReadAllBytes(Fixture("lstm.f16.safetensors"));
        using (var truncated = new MemoryStream(file[..^3]))
        {
            var error = Assert.Throws<InvalidDataException>(() => layer.Parameters.Load(truncated))!;
            Assert.That(error.Message, Does.StartWith("stream: "));
        }
        using (var whole = new MemoryStream(File.ReadAllBytes(Fixture("whole_model.safetensors"))))
        {
            var error = Assert.Throws<InvalidDataException>(() => layer.Parameters.Load(whole))!;
            Assert.That(error.Message, Does.StartWith("stream: tensor 'weight_ih_l0' is missing (the file has 'rnn.weight_ih_l0': pass Prefix = \"rnn.\")"));
        }
        Assert.That(Snapshot(layer), Is.EqualTo(before));
    }

    [Test]
    public void Load_FromMap_StrictMissAndPrefixMatchingNothing_AreArgumentExceptions()
    {
        var layer = CreateLstm();
        var map = SafeTensors.Read(Fixture("whole_model.safetensors"));
        var miss = Assert.Throws<ArgumentException>(() => layer.Parameters.Load(map))!;
        Assert.That(miss.Message, Does.Contain("'weight_ih_l0' is missing (the file has 'rnn.weight_ih_l0': pass Prefix = \"rnn.\")"));
        var none = Assert.Throws<ArgumentException>(() => layer.Parameters.Load(map, new LoadOptions { Prefix = "encoder." }))!;
        Assert.That(none.Message, Does.Contain("'rnn.'").And.Contain("'fc.'").And.Contain("'embedding.'"));
        Assert.Throws<ArgumentException>(() => layer.Parameters.Load(new Dictionary<string, FloatTensor> { ["weight_ih_l0"] = null! }));
        Assert.That(layer.Parameters.Load(map, new LoadOptions { Prefix = "rnn." }).IsExact, Is.True);
        AssertValuesAre(layer, SafeTensors.Read(Fixture("lstm.f32.safetensors")));
    }

    [Test]
    public void StateDict_IsACopyUnderThePrefix_ThatLoadTakesBack()
    {
        var source = CreateLstm(seed: 1);
        var state = source.Parameters.StateDict("rnn.");
        Assert.That(state.Keys, Is.EqualTo(source.Parameters.All.Select(p => "rnn." + p.Name)));
        float first = source.Parameters.Values[0];
        source.Parameters.Values[0] = first + 1;   // a copy: the model moving on leaves it as it was
        Assert.That(state["rnn.weight_ih_l0"].Span[0], Is.EqualTo(first));

        var target = CreateLstm(seed: 2);
        target.Parameters.Load(state, new LoadOptions { Prefix = "rnn." });
        foreach (var p in target.Parameters.All) Assert.That(Bits(p.Value), Is.EqualTo(Bits(state["rnn." + p.Name])));
    }

    // ------------------------------------------------------------------------------------------------------------
    // Saving in other dtypes, to streams, with a prefix
    // ------------------------------------------------------------------------------------------------------------

    [TestCase(SafeTensorsDType.F16, "f16")]
    [TestCase(SafeTensorsDType.BF16, "bf16")]
    public void Save_InHalfPrecision_RoundsAsPyTorch(SafeTensorsDType dtype, string tag)
    {
        var layer = CreateLstm();
        layer.Load(Fixture("lstm.f32.safetensors"));
        string path = Path.Combine(_folder, $"saved.{tag}.safetensors");
        layer.Save(path, new SaveOptions { DType = dtype });
        Assert.That(HeaderOf(path), Does.Contain($"\"dtype\":\"{dtype}\"").And.Not.Contain("\"F32\""));
        Assert.That(new FileInfo(path).Length, Is.LessThan(new FileInfo(Fixture("lstm.f32.safetensors")).Length));

        var reloaded = CreateLstm(seed: 9);
        reloaded.Load(path);
        AssertValuesAre(reloaded, SafeTensors.Read(Fixture($"lstm.{tag}.expected.safetensors")));
    }

    [Test]
    public void Save_InF64_IsExact_AndOutOfRangeForF16_IsRefusedNamingTheParameter()
    {
        var layer = CreateLstm(seed: 3);
        string path = Path.Combine(_folder, "saved.f64.safetensors");
        layer.Save(path, new SaveOptions { DType = SafeTensorsDType.F64 });
        Assert.That(HeaderOf(path), Does.Contain("\"dtype\":\"F64\""));
        var reloaded = CreateLstm(seed: 4);
        reloaded.Load(path);
        AssertValuesAre(reloaded, layer.Parameters.StateDict());

        layer.Parameters["bias_hh_l0"].Value[2] = 70000f;
        string f16 = Path.Combine(_folder, "saved.f16.safetensors");
        var error = Assert.Throws<InvalidOperationException>(() => layer.Save(f16, new SaveOptions { DType = SafeTensorsDType.F16 }))!;
        Assert.That(error.Message, Does.Contain("'bias_hh_l0' element 2").And.Contain("F16"));
        Assert.That(File.Exists(f16), Is.False);
        layer.Save(f16, new SaveOptions { DType = SafeTensorsDType.BF16 });   // BF16 has float32's range
    }

    [Test]
    public void Save_ToStreamWithPrefix_LoadsBackThroughThePrefix()
    {
        var layer = CreateLstm(seed: 6);
        using var stream = new MemoryStream();
        stream.WriteByte(42);   // written from the current position
        layer.Parameters.Save(stream, new SaveOptions { Prefix = "module.rnn.", DType = SafeTensorsDType.F64 });
        Assert.That(stream.CanRead, Is.True, "the stream stays open");
        stream.Position = 1;
        var names = SafeTensors.Read(stream).Keys;
        Assert.That(names, Is.EquivalentTo(layer.Parameters.All.Select(p => "module.rnn." + p.Name)));

        stream.Position = 1;
        var target = CreateLstm(seed: 7);
        Assert.That(target.Parameters.Load(stream, new LoadOptions { Prefix = "module.rnn." }).IsExact, Is.True);
        AssertValuesAre(target, layer.Parameters.StateDict());
    }

    [Test]
    public void SequenceModel_SavesAndLoadsWithTheSameOptions()
    {
        using var source = new RecurrentSequenceModel(new Lstm(3, 4, seed: 1), 5, SequenceLoss.SoftmaxCrossEntropy, seed: 2);
        string path = Path.Combine(_folder, "model.bf16.safetensors");
        source.Save(path, new SaveOptions { DType = SafeTensorsDType.BF16, Prefix = "model." });

        // The stack alone, out of the whole model's file: its prefix is the model's plus RecurrentPrefix.
        var layer = CreateLstm();
        Assert.That(layer.Load(path, new LoadOptions { Prefix = "model." + RecurrentSequenceModel.RecurrentPrefix }).IsExact, Is.True);
        foreach (var p in layer.Parameters.All)
            Assert.That(p.Value.ToArray(), Is.EqualTo(source.Parameters[RecurrentSequenceModel.RecurrentPrefix + p.Name].Value.ToArray()).Within(0.4).Percent, "BF16 keeps 8 significant bits");

        using var target = new RecurrentSequenceModel(new Lstm(3, 4, seed: 3), 5, SequenceLoss.SoftmaxCrossEntropy, seed: 4);
        Assert.That(target.Load(path, new LoadOptions { Prefix = "model." }).IsExact, Is.True);
        var error = Assert.Throws<InvalidDataException>(() => target.Load(path))!;
        Assert.That(error.Message, Does.Contain("pass Prefix = \"model.\""));
    }

    private static string HeaderOf(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return Encoding.UTF8.GetString(bytes, 8, length);
    }

    /// <summary>A stream that can only be read forwards, as a network stream.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
