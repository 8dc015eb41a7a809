using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;

namespace Recurrent.Tests;

/// <summary>
/// Seeded fuzzing of Load (issue 10, kind 5): thousands of files mutated from one a layer saved, each of which
/// must either load, with exactly the values the file holds, or fail with an <see cref="InvalidDataException"/>
/// naming the file, leaving every parameter bit for bit as it was.
/// </summary>
[TestFixture]
public class SafeTensorsFuzzTests
{
    private const int Seed = 20_240_611;
    private const int Files = 4000;

    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("recurrent-safetensors-fuzz-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    private static RecurrentLayer Create(int seed) => new Lstm(2, 3, bidirectional: true, seed: seed);

    private enum Mutation { BitFlips, InsertByte, DeleteByte, Truncate, LyingHeaderLength, ReplaceToken, InsertField, SpecialValue }

    [Test]
    public void Load_OfMutatedFiles_LoadsTheFilesValuesOrThrowsInvalidDataAndChangesNothing()
    {
        string original = Path.Combine(_folder, "original.safetensors");
        Create(seed: 1).Save(original);
        byte[] valid = File.ReadAllBytes(original);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        // Where each parameter lies in the body, from the file as written (so independent of the reader under test).
        var names = SafeTensors.Read(original).Keys.ToList();
        var layout = new List<(string Name, long Begin, int Count)>();
        long at = 0;
        var layer = Create(seed: 2);
        foreach (var p in layer.Parameters.All)
        {
            layout.Add((p.Name, at, p.Value.Length));
            at += p.Value.Length * sizeof(float);
        }
        Assert.That(names, Is.EqualTo(layout.Select(l => l.Name)), "Save writes the parameters in order");

        var random = new Random(Seed);
        string path = Path.Combine(_folder, "mutated.safetensors");
        var outcomes = Enum.GetValues<Mutation>().ToDictionary(m => m, _ => (Loaded: 0, Refused: 0));
        var before = layer.Parameters.All.Select(p => Bits(p.Value.ToArray())).ToArray();
        for (int i = 0; i < Files; i++)
        {
            var mutation = (Mutation)random.Next(Enum.GetValues<Mutation>().Length);
            byte[] bytes = Mutate(valid, headerLength, mutation, random);
            File.WriteAllBytes(path, bytes);
            string context = $"file {i} ({mutation}), seed {Seed}";
            try
            {
                layer.Load(path);
            }
            // Plain comparisons in the loop: NUnit's constraints would take most of the time.
            catch (Exception e)
            {
                if (e is not InvalidDataException || !e.Message.Contains(path)) Assert.Fail($"{context}: {e}");
                for (int k = 0; k < before.Length; k++)
                    if (!Bits(layer.Parameters.All[k].Value.ToArray()).AsSpan().SequenceEqual(before[k]))
                        Assert.Fail($"{context}: the failed Load changed {layer.Parameters.All[k].Name}");
                outcomes[mutation] = (outcomes[mutation].Loaded, outcomes[mutation].Refused + 1);
                continue;
            }
            // Loaded: every value is the file's, read where the (possibly re-sized) header says the body starts.
            long bodyStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            foreach (var ((name, begin, count), k) in layout.Select((l, k) => (l, k)))
            {
                var expected = MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)(bodyStart + begin), count * sizeof(float))).ToArray();
                if (!Bits(layer.Parameters.All[k].Value.ToArray()).AsSpan().SequenceEqual(Bits(expected)))
                    Assert.Fail($"{context}: {name} is not what the file holds");
                if (!expected.All(float.IsFinite)) Assert.Fail($"{context}: {name} loaded a non-finite value");
            }
            before = layer.Parameters.All.Select(p => Bits(p.Value.ToArray())).ToArray();
            outcomes[mutation] = (outcomes[mutation].Loaded + 1, outcomes[mutation].Refused);
        }
        TestContext.Out.WriteLine(string.Join(", ", outcomes.Select(o => $"{o.Key}: {o.Value.Loaded} loaded, {o.Value.Refused} refused")));
        // The fuzzer reaches both outcomes, and every kind of damage to the header is refused at least sometimes.
        Assert.That(outcomes.Values.Sum(o => o.Loaded), Is.GreaterThan(Files / 20));
        Assert.That(outcomes.Values.All(o => o.Refused > 0), Is.True);
    }

    private static byte[] Mutate(byte[] valid, int headerLength, Mutation mutation, Random random)
    {
        var bytes = new List<byte>(valid);
        int headerEnd = 8 + headerLength;
        switch (mutation)
        {
            case Mutation.BitFlips:
                for (int flips = 1 + random.Next(3); flips > 0; flips--)
                    bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8));
                break;
            case Mutation.InsertByte:
                bytes.Insert(random.Next(bytes.Count + 1), (byte)random.Next(256));
                break;
            case Mutation.DeleteByte:
                bytes.RemoveAt(random.Next(bytes.Count));
                break;
            case Mutation.Truncate:
                // Within the length, the header or the body, evenly: the regions are of very different sizes.
                int cut = random.Next(3) switch
                {
                    0 => random.Next(8),
                    1 => 8 + random.Next(headerLength),
                    _ => headerEnd + random.Next(valid.Length - headerEnd),
                };
                bytes.RemoveRange(cut, bytes.Count - cut);
                break;
            case Mutation.LyingHeaderLength:
            {
                ulong[] lies = [0, 1, 2, (ulong)headerLength - 1, (ulong)headerLength + 1, (ulong)headerLength + 8,
                    (ulong)valid.Length - 8, (ulong)valid.Length - 7, 100_000_001, 1ul << 32, 1ul << 63, ulong.MaxValue,
                    (ulong)random.NextInt64()];
                var length = new byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, lies[random.Next(lies.Length)]);
                for (int k = 0; k < 8; k++) bytes[k] = length[k];
                break;
            }
            case Mutation.ReplaceToken:
            case Mutation.InsertField:
            {
                string header = Encoding.UTF8.GetString(valid, 8, headerLength);
                string changed = mutation == Mutation.ReplaceToken ? ReplaceToken(header, random) : InsertField(header, random);
                byte[] newHeader = Encoding.UTF8.GetBytes(changed);
                bytes = [.. valid[..8], .. newHeader, .. valid[headerEnd..]];
                // Mostly with the length made to match, so the change reaches the JSON parser.
                if (random.Next(5) != 0)
                {
                    var length = new byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)newHeader.Length);
                    for (int k = 0; k < 8; k++) bytes[k] = length[k];
                }
                break;
            }
            case Mutation.SpecialValue:
            {
                float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, float.Epsilon, float.MaxValue,
                    BitConverter.Int32BitsToSingle(random.Next())];
                int element = random.Next((valid.Length - headerEnd) / sizeof(float));
                var value = new byte[4];
                BinaryPrimitives.WriteSingleLittleEndian(value, specials[random.Next(specials.Length)]);
                for (int k = 0; k < 4; k++) bytes[headerEnd + 4 * element + k] = value[k];
                break;
            }
        }
        return [.. bytes];
    }

    private static readonly string[] Tokens =
    [
        "\"F32\"", "\"F16\"", "\"BF16\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"weight_ih_l0\"",
        "\"a\\ud800\"", "\"\\udc00\"", "\"\\u0000\"", "\"0\"", "\"4\"", "0", "4", "-1", "-0", "1.5", "1e3", "96",
        "2147483648", "18446744073709551616", "null", "true", "[]", "{}", "[0]", "[0,4,8]", "[\"0\",\"4\"]", ",", ":", "[",
        "]", "{", "}", "", " ", "\t", "\u00e9", "NaN",
    ];

    /// <summary>The header with one of its JSON tokens (string, number, literal, punctuation) replaced.</summary>
    private static string ReplaceToken(string header, Random random)
    {
        var tokens = new List<(int Start, int Length)>();
        for (int i = 0; i < header.Length;)
        {
            char c = header[i];
            int start = i;
            if (c == ' ') { i++; continue; }
            if (c == '"')
            {
                for (i++; header[i] != '"'; i++) if (header[i] == '\\') i++;
                i++;
            }
            else if (char.IsAsciiDigit(c) || c == '-') { while (i < header.Length && (char.IsAsciiDigit(header[i]) || header[i] is '-' or '.' or 'e')) i++; }
            else i++;
            tokens.Add((start, i - start));
        }
        var (at, length) = tokens[random.Next(tokens.Count)];
        return header[..at] + Tokens[random.Next(Tokens.Length)] + header[(at + length)..];
    }

    private static readonly string[] Fields =
    [
        "\"dtype\":\"F32\",", "\"dtype\":\"F16\",", "\"shape\":[4],", "\"data_offsets\":[0,4],", "\"extra\":1,", "\"x\\ud800\":1,",
        "\"__metadata__\":{},", "\"__metadata__\":null,", "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},",
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", "\"format\":\"pt\",",
    ];

    /// <summary>The header with a field (repeated, unknown or a whole entry) inserted after one of its braces.</summary>
    private static string InsertField(string header, Random random)
    {
        var braces = Enumerable.Range(0, header.Length).Where(i => header[i] == '{').ToList();
        int at = braces[random.Next(braces.Count)] + 1;
        return header[..at] + Fields[random.Next(Fields.Length)] + header[at..];
    }

    private static int[] Bits(float[] values) => Array.ConvertAll(values, BitConverter.SingleToInt32Bits);
}
