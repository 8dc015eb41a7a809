using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Recurrent;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header, then the
/// raw little-endian data), float32 tensors only, as PyTorch's <c>safetensors.torch</c> writes them.
/// Thread-safe: it holds no state; concurrent writes of one target each write their own temporary file, and the last
/// rename wins whole.
/// </summary>
public static class SafeTensors
{
    // A header larger than this is not a parameter file; refusing it keeps a corrupt length from allocating gigabytes.
    private const long MaxHeaderBytes = 100_000_000;   // the reference implementation's limit

    internal const string MetadataKey = "__metadata__";

    /// <summary>Reads every tensor of a file, in the order of their data.</summary>
    /// <remarks>
    /// The checks are the reference implementation's (huggingface/safetensors, whose header is read by serde_json):
    /// the header is UTF-8 JSON of at most 10⁸ bytes, an object that whitespace alone may precede or follow, with
    /// strings that are valid UTF-16 (no lone surrogate escapes); every entry has each of dtype (a string, here F32
    /// only), shape (non-negative integers) and data_offsets (two non-negative integers, begin ≤ end, the byte size of
    /// the shape apart) exactly once; <c>__metadata__</c> is null or an object of strings; the tensors tile the body
    /// exactly, without overlaps, holes or trailing bytes. Stricter than the reference, which lets the later copy
    /// win or ignores the extra: a name or metadata key given twice, and a field other than those three in an entry,
    /// are refused, since no writer produces them and a file that has them is ambiguous or damaged.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidDataException">The file is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="DirectoryNotFoundException">A folder of the path does not exist.</exception>
    /// <exception cref="IOException">The path is a folder, or the file cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    public static IReadOnlyDictionary<string, Tensor> Read(string path) => Read(path, out _);

    /// <summary>As <see cref="Read(string)"/>, also returning the <c>__metadata__</c> strings (empty when absent).</summary>
    internal static IReadOnlyDictionary<string, Tensor> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        var strings = new Dictionary<string, string>(StringComparer.Ordinal);
        metadata = strings;
        using var stream = OpenForReading(path);
        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad(path, null, $"the file has {fileLength} bytes, fewer than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw Bad(path, null, $"the header length {headerLength} runs past the end of the {fileLength}-byte file");
        if (headerLength > MaxHeaderBytes)
            throw Bad(path, null, $"the header length {headerLength} exceeds the format's limit of {MaxHeaderBytes} bytes");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataLength = fileLength - 8 - (long)headerLength;

        // Checked whole first: outside strings the reader would call a bad byte invalid JSON, but inside them it
        // decodes lazily and throws InvalidOperationException.
        if (!Utf8.IsValid(headerBytes)) throw Bad(path, null, "the header is not valid UTF-8");
        var entries = ParseHeader(path, headerBytes, dataLength, strings);

        // As the reference implementation requires: the tensors tile the body from its first byte to its last,
        // without overlaps or holes, so no byte of the file is unaccounted for.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expectedBegin = 0;
        string? previous = null;
        foreach (var (name, _, begin, end) in entries)
        {
            if (begin < expectedBegin)
                throw Bad(path, name, $"its data [{begin}, {end}) overlaps tensor '{Shorten(previous!)}', which ends at {expectedBegin}");
            if (begin > expectedBegin)
                throw Bad(path, name, $"its data starts at {begin}, leaving the bytes [{expectedBegin}, {begin}) of the body unused");
            (expectedBegin, previous) = (end, name);
        }
        if (expectedBegin != dataLength)
            throw Bad(path, previous, $"the body has {dataLength} bytes but the tensors end at {expectedBegin} (trailing bytes)");

        long dataStart = 8 + (long)headerLength;
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, shape, begin, end) in entries)
        {
            var tensor = new Tensor(shape);
            stream.Position = dataStart + begin;
            var values = tensor.Span;
            try { stream.ReadExactly(MemoryMarshal.AsBytes(values)); }
            catch (EndOfStreamException) { throw Bad(path, name, "the file ends inside its data"); }
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < values.Length; i++)
                    values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(values[i])));
            result.Add(name, tensor);
        }
        return result;
    }

    private static FileStream OpenForReading(string path)
    {
        // Opening a named pipe for reading blocks until some writer opens it: a pipe (or device) reports no length, so
        // it is refused here, before the open, as any file too short to hold the header length is.
        var info = new FileInfo(path);
        if (info.Exists && info.Length < 8)
            throw Bad(path, null, $"the file has {info.Length} bytes, fewer than the 8-byte header length (or it is a pipe or a device, not a regular file)");
        try { return File.OpenRead(path); }
        // Opening a folder fails as a permission problem would; it is not one, and callers are promised an IOException.
        catch (UnauthorizedAccessException e) when (Directory.Exists(path))
        {
            throw new IOException($"{path}: is a folder, not a safetensors file.", e);
        }
    }

    private readonly record struct Entry(string Name, int[] Shape, long Begin, long End);

    // One forward pass over the tokens: every token is checked as it comes, so a wrong type is refused where it
    // stands (and the message can name its tensor) and nothing of unknown shape is ever skipped.
    private static List<Entry> ParseHeader(string path, byte[] header, long dataLength, Dictionary<string, string> metadata)
    {
        var entries = new List<Entry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(header);
        string? current = null;   // the tensor a JSON syntax error is reported against
        try
        {
            Next(path, null, ref reader);
            if (reader.TokenType != JsonTokenType.StartObject) throw Bad(path, null, "the header is not a JSON object");
            while (Next(path, null, ref reader) != JsonTokenType.EndObject)
            {
                current = Text(path, null, ref reader, "its name");
                if (!names.Add(current)) throw Bad(path, current, "it appears twice in the header");
                Next(path, current, ref reader);
                if (current == MetadataKey) ReadMetadata(path, ref reader, metadata);
                else entries.Add(ParseEntry(path, current, ref reader, dataLength));
                current = null;
            }
            // The reader throws on anything but whitespace after the object, serde_json's rule, which the reference
            // implementation relies on to let writers pad the header.
            if (reader.Read()) throw Bad(path, null, "the header has more after its JSON object");
        }
        catch (JsonException e) { throw Bad(path, current, $"the header is not valid JSON ({e.Message})"); }
        return entries;
    }

    private static JsonTokenType Next(string path, string? tensor, ref Utf8JsonReader reader)
    {
        if (!reader.Read()) throw Bad(path, tensor, "the header ends inside its JSON");
        return reader.TokenType;
    }

    // System.Text.Json decodes escapes on demand and reports a lone surrogate (\ud800 without its pair) as an
    // InvalidOperationException; serde_json, and so the reference implementation, call such a string invalid JSON.
    private static string Text(string path, string? tensor, ref Utf8JsonReader reader, string what)
    {
        try { return reader.GetString()!; }
        catch (InvalidOperationException)
        {
            string raw = Encoding.UTF8.GetString(reader.ValueSpan);
            throw tensor is null
                ? Bad(path, raw, $"{what} holds a lone surrogate escape, which is not valid UTF-16")
                : Bad(path, tensor, $"{what} \"{Shorten(raw)}\" holds a lone surrogate escape, which is not valid UTF-16");
        }
    }

    /// <summary>The current token as it stands in the file, for messages.</summary>
    private static string Raw(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => $"\"{Shorten(Encoding.UTF8.GetString(reader.ValueSpan))}\"",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => Shorten(Encoding.UTF8.GetString(reader.ValueSpan)),
    };

    private static void ReadMetadata(string path, ref Utf8JsonReader reader, Dictionary<string, string> strings)
    {
        if (reader.TokenType == JsonTokenType.Null) return;   // the reference implementation reads null as no metadata
        if (reader.TokenType != JsonTokenType.StartObject) throw Bad(path, MetadataKey, "it is not an object of strings");
        while (Next(path, MetadataKey, ref reader) != JsonTokenType.EndObject)
        {
            string key = Text(path, MetadataKey, ref reader, "a key");
            if (Next(path, MetadataKey, ref reader) != JsonTokenType.String)
                throw Bad(path, MetadataKey, $"its value '{Shorten(key)}' is {Raw(ref reader)}, not a string");
            if (!strings.TryAdd(key, Text(path, MetadataKey, ref reader, $"the value of '{Shorten(key)}'")))
                throw Bad(path, MetadataKey, $"its key '{Shorten(key)}' appears twice");
        }
    }

    private static Entry ParseEntry(string path, string name, ref Utf8JsonReader reader, long dataLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw Bad(path, name, $"its header entry is {Raw(ref reader)}, not an object");
        string? dtype = null;
        int[]? shape = null;
        long count = 1;
        (long Begin, long End)? offsets = null;
        while (Next(path, name, ref reader) != JsonTokenType.EndObject)
        {
            string field = Text(path, name, ref reader, "a field name");
            bool repeated = field switch { "dtype" => dtype is not null, "shape" => shape is not null, "data_offsets" => offsets is not null, _ => false };
            if (repeated) throw Bad(path, name, $"its field '{field}' appears twice");
            Next(path, name, ref reader);
            switch (field)
            {
                case "dtype":
                    if (reader.TokenType != JsonTokenType.String) throw Bad(path, name, $"its dtype is {Raw(ref reader)}, not a string");
                    dtype = Text(path, name, ref reader, "its dtype");
                    break;
                case "shape":
                    (shape, count) = ReadShape(path, name, ref reader);
                    break;
                case "data_offsets":
                    offsets = ReadOffsets(path, name, ref reader);
                    break;
                default:
                    throw Bad(path, name, $"its header entry has the field '{Shorten(field)}'; expected only dtype, shape and data_offsets");
            }
        }
        if (dtype is null) throw Bad(path, name, "its header entry has no dtype");
        if (shape is null) throw Bad(path, name, "its header entry has no shape");
        if (offsets is not var (begin, end)) throw Bad(path, name, "its header entry has no data_offsets [begin, end]");
        if (dtype != "F32") throw Bad(path, name, $"its dtype is {Shorten(dtype)}; expected F32");
        if (end < begin) throw Bad(path, name, $"its data_offsets [{begin}, {end}] are not an increasing pair");
        if (end > dataLength) throw Bad(path, name, $"its data [{begin}, {end}) runs past the end of the {dataLength}-byte body (truncated file?)");
        if (end - begin != count * sizeof(float))
            throw Bad(path, name, $"its data has {end - begin} bytes; shape {Tensor.FormatShape(shape)} of F32 needs {count * sizeof(float)}");
        return new Entry(name, shape, begin, end);
    }

    private static (int[] Shape, long Count) ReadShape(string path, string name, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw Bad(path, name, $"its shape is {Raw(ref reader)}, not an array");
        var shape = new List<int>();
        long count = 1;
        while (Next(path, name, ref reader) != JsonTokenType.EndArray)
        {
            // TryGetInt64 refuses fractions and exponents (2.0, 1e3), as serde_json does for an integer.
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long dim) || dim < 0)
                throw Bad(path, name, $"its shape holds {Raw(ref reader)}; expected non-negative integers");
            if (dim > int.MaxValue) throw Bad(path, name, $"its shape has the dimension {dim}, larger than a tensor here can be");
            shape.Add((int)dim);
            count *= dim;   // both factors are at most 2³¹: no overflow
            if (count > Array.MaxLength) throw Bad(path, name, "its shape has too many elements");
        }
        return ([.. shape], count);
    }

    private static (long, long) ReadOffsets(string path, string name, ref Utf8JsonReader reader)
    {
        const string Expected = "expected [begin, end], two non-negative integers";
        if (reader.TokenType != JsonTokenType.StartArray) throw Bad(path, name, $"its data_offsets are {Raw(ref reader)}; {Expected}");
        Span<long> pair = stackalloc long[2];
        for (int i = 0; i < 2; i++)
        {
            if (Next(path, name, ref reader) == JsonTokenType.EndArray) throw Bad(path, name, $"its data_offsets end after {i} number{(i == 1 ? "" : "s")}; {Expected}");
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out pair[i]) || pair[i] < 0)
                throw Bad(path, name, $"its data_offsets hold {Raw(ref reader)}; {Expected}");
        }
        if (Next(path, name, ref reader) != JsonTokenType.EndArray) throw Bad(path, name, $"its data_offsets have more than two numbers; {Expected}");
        return (pair[0], pair[1]);
    }

    /// <summary>
    /// Writes tensors as a safetensors file. The file is written beside the target under a temporary name and
    /// renamed over it, so an interrupted save never leaves a half-written file, and a failed one leaves the old
    /// file as it was and no temporary file behind.
    /// </summary>
    /// <remarks>
    /// A symbolic link is followed to its final target, which is replaced and the link kept (a dangling link gets
    /// the file it names). A save killed before its rename leaves its temporary file,
    /// <c>.&lt;target name&gt;.&lt;12 hex digits&gt;.tmp</c>, as large as the file; each save removes those of its own
    /// target last written over five minutes ago and not held open by a live save.
    /// </remarks>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="tensors">Name and tensor, written in this order; names must be distinct and not <c>__metadata__</c>.</param>
    /// <param name="metadata">Free-form strings stored under <c>__metadata__</c>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/>, <paramref name="tensors"/> or a tensor is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, or a name is null, reserved or repeated.</exception>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file cannot be written: the target is a folder or a loop of symbolic links, the disk is full.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));
            if (name is null || name == MetadataKey || !seen.Add(name))
                throw new ArgumentException($"tensors: the name '{name}' is null, reserved or given twice.", nameof(tensors));
        }
        var headerJson = new StringBuilder();
        using (var buffer = new MemoryStream())
        {
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                if (metadata is { Count: > 0 })
                {
                    writer.WriteStartObject("__metadata__");
                    foreach (var (key, value) in metadata) writer.WriteString(key, value);
                    writer.WriteEndObject();
                }
                long offset = 0;
                foreach (var (name, tensor) in list)
                {
                    writer.WriteStartObject(name);
                    writer.WriteString("dtype", "F32");
                    writer.WriteStartArray("shape");
                    foreach (int dim in tensor.Shape) writer.WriteNumberValue(dim);
                    writer.WriteEndArray();
                    writer.WriteStartArray("data_offsets");
                    writer.WriteNumberValue(offset);
                    offset += (long)tensor.Length * sizeof(float);
                    writer.WriteNumberValue(offset);
                    writer.WriteEndArray();
                    writer.WriteEndObject();
                }
                writer.WriteEndObject();
            }
            headerJson.Append(Encoding.UTF8.GetString(buffer.ToArray()));
        }
        // The format pads the header with spaces so the data starts 8-byte aligned.
        while ((Encoding.UTF8.GetByteCount(headerJson.ToString()) % 8) != 0) headerJson.Append(' ');
        byte[] header = Encoding.UTF8.GetBytes(headerJson.ToString());

        AtomicFile.Write(path, "a safetensors file", stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var (_, tensor) in list)
            {
                if (BitConverter.IsLittleEndian) stream.Write(MemoryMarshal.AsBytes(tensor.Span));
                else foreach (float v in tensor.Span) { BinaryPrimitives.WriteSingleLittleEndian(length[..4], v); stream.Write(length[..4]); }
            }
        });
    }

    private static InvalidDataException Bad(string path, string? tensor, string problem) =>
        new(tensor is null ? $"{path}: {problem}." : $"{path}: tensor '{Shorten(tensor)}': {problem}.");

    // A damaged header can hold a name of megabytes; a message quotes its beginning.
    private static string Shorten(string text)
    {
        const int Keep = 100;
        if (text.Length <= Keep + 20) return text;
        int cut = char.IsHighSurrogate(text[Keep - 1]) ? Keep - 1 : Keep;
        return $"{text[..cut]}… ({text.Length} characters)";
    }
}
