using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Recurrent;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header, then the
/// raw little-endian data), as PyTorch's <c>safetensors.torch</c> writes them. Tensors are float32 in memory; files may
/// hold F32, F16, BF16 or F64 (<see cref="SafeTensorsDType"/>), converted on reading and on writing.
/// Thread-safety: safe; it holds no state; concurrent writes of one target each write their own temporary file, and the last
/// rename wins whole.
/// </summary>
/// <remarks>Lifetime: holds nothing; streams passed in stay the caller's to close.</remarks>
public static class SafeTensors
{
    // A header larger than this is not a parameter file; refusing it keeps a corrupt length from allocating gigabytes.
    private const long MaxHeaderBytes = 100_000_000;   // the reference implementation's limit

    internal const string MetadataKey = "__metadata__";

    /// <summary>Reads every tensor of a file, in the order of their data.</summary>
    /// <remarks>
    /// The checks are the reference implementation's (huggingface/safetensors, whose header is read by serde_json):
    /// the header is UTF-8 JSON of at most 10⁸ bytes, an object that whitespace alone may precede or follow, with
    /// strings that are valid UTF-16 (no lone surrogate escapes); every entry has each of dtype (a string, here F32, F16,
    /// BF16 or F64, converted to float32: F16 and BF16 exactly, F64 to the nearest float32), shape (non-negative integers) and data_offsets (two non-negative integers, begin ≤ end, the byte size of
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
    public static IReadOnlyDictionary<string, FloatTensor> Read(string path) => Read(path, out _);

    /// <summary>
    /// Reads every tensor from <paramref name="stream"/>, from its current position to its end, with the checks of
    /// <see cref="Read(string)"/>. A stream that cannot seek is read whole into memory first. The stream is not disposed.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="InvalidDataException">The data is malformed; the message names the tensor.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static IReadOnlyDictionary<string, FloatTensor> Read(Stream stream) => Read(stream, StreamSource, out _);

    internal const string StreamSource = "stream";

    /// <summary>As <see cref="Read(string)"/>, also returning the <c>__metadata__</c> strings (empty when absent).</summary>
    internal static IReadOnlyDictionary<string, FloatTensor> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = OpenForReading(path);
        return Read(stream, path, out metadata);
    }

    /// <summary>
    /// The reader behind every form: <paramref name="source"/> names the file (or "stream") in messages. F16 and BF16
    /// become float32 exactly; F64 is rounded to the nearest float32, and a finite value beyond float32's range is
    /// refused rather than turned into infinity.
    /// </summary>
    internal static IReadOnlyDictionary<string, FloatTensor> Read(Stream stream, string source, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("stream: cannot be read.", nameof(stream));
        string path = source;
        var strings = new Dictionary<string, string>(StringComparer.Ordinal);
        metadata = strings;
        MemoryStream? copy = null;
        if (!stream.CanSeek)
        {
            // Offsets need random access; a network or pipe stream is held whole, as PyTorch's load(bytes) does.
            copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            stream = copy;
        }
        using var _ = copy;
        long start = stream.Position;
        long fileLength = Math.Max(0, stream.Length - start);
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
        foreach (var entry in entries)
        {
            var (name, begin, end) = (entry.Name, entry.Begin, entry.End);
            if (begin < expectedBegin)
                throw Bad(path, name, $"its data [{begin}, {end}) overlaps tensor '{Shorten(previous!)}', which ends at {expectedBegin}");
            if (begin > expectedBegin)
                throw Bad(path, name, $"its data starts at {begin}, leaving the bytes [{expectedBegin}, {begin}) of the body unused");
            (expectedBegin, previous) = (end, name);
        }
        if (expectedBegin != dataLength)
            throw Bad(path, previous, $"the body has {dataLength} bytes but the tensors end at {expectedBegin} (trailing bytes)");

        long dataStart = start + 8 + (long)headerLength;
        var result = new Dictionary<string, FloatTensor>();
        foreach (var (name, dtype, shape, begin, end) in entries)
        {
            var tensor = new FloatTensor(shape);
            stream.Position = dataStart + begin;
            var values = tensor.Span;
            try
            {
                if (dtype == SafeTensorsDType.F32)
                {
                    stream.ReadExactly(MemoryMarshal.AsBytes(values));
                    if (!BitConverter.IsLittleEndian)
                        for (int i = 0; i < values.Length; i++)
                            values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(values[i])));
                }
                else
                {
                    var raw = new byte[end - begin];
                    stream.ReadExactly(raw);
                    Decode(path, name, dtype, raw, values);
                }
            }
            catch (EndOfStreamException) { throw Bad(path, name, "the file ends inside its data"); }
            result.Add(name, tensor);
        }
        return result;
    }

    /// <summary>The bytes of a tensor in <paramref name="dtype"/> as float32.</summary>
    private static void Decode(string path, string name, SafeTensorsDType dtype, ReadOnlySpan<byte> raw, Span<float> values)
    {
        switch (dtype)
        {
            case SafeTensorsDType.F16:
                for (int i = 0; i < values.Length; i++)
                    values[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(raw[(2 * i)..]));
                break;
            case SafeTensorsDType.BF16:
                // bfloat16 is the upper half of a float32: widening is exact.
                for (int i = 0; i < values.Length; i++)
                    values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw[(2 * i)..]) << 16);
                break;
            case SafeTensorsDType.F64:
                for (int i = 0; i < values.Length; i++)
                {
                    double d = BinaryPrimitives.ReadDoubleLittleEndian(raw[(8 * i)..]);
                    float f = (float)d;
                    // Infinity made from a finite number would pass for a value the file never held; NaN and infinity
                    // written as such stay as they are, for the loader's finiteness check to name.
                    if (float.IsInfinity(f) && double.IsFinite(d))
                        throw Bad(path, name, $"element {i} is {d:R}, beyond float32's range (±{float.MaxValue:R}); it cannot be converted from F64");
                    values[i] = f;
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>The bytes per element of <paramref name="dtype"/>.</summary>
    internal static int SizeOf(SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.F32 => 4,
        SafeTensorsDType.F16 or SafeTensorsDType.BF16 => 2,
        SafeTensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "expected F32, F16, BF16 or F64."),
    };

    private static bool TryParseDType(string text, out SafeTensorsDType dtype)
    {
        // Exactly the format's spelling: Enum.TryParse would take "f32" and "0".
        switch (text)
        {
            case "F32": dtype = SafeTensorsDType.F32; return true;
            case "F16": dtype = SafeTensorsDType.F16; return true;
            case "BF16": dtype = SafeTensorsDType.BF16; return true;
            case "F64": dtype = SafeTensorsDType.F64; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>
    /// The index of the first value of <paramref name="values"/> that <paramref name="dtype"/> cannot hold (a finite
    /// float32 that would round to infinity), or −1. F32 and F64 hold every finite float32.
    /// </summary>
    internal static int IndexOfUnrepresentable(ReadOnlySpan<float> values, SafeTensorsDType dtype)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v)) continue;
            if (dtype == SafeTensorsDType.F16 && Half.IsInfinity((Half)v)) return i;
            if (dtype == SafeTensorsDType.BF16 && float.IsInfinity(BitConverter.Int32BitsToSingle(ToBFloat16(v) << 16))) return i;
        }
        return -1;
    }

    /// <summary>float32 to bfloat16, rounding to nearest, ties to even (as PyTorch's <c>.bfloat16()</c>); finite input only.</summary>
    private static int ToBFloat16(float value)
    {
        uint bits = (uint)BitConverter.SingleToInt32Bits(value);
        bits += 0x7FFFu + ((bits >> 16) & 1);
        return (int)(bits >> 16);
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

    private readonly record struct Entry(string Name, SafeTensorsDType DType, int[] Shape, long Begin, long End);

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
        if (!TryParseDType(dtype, out var type)) throw Bad(path, name, $"its dtype is {Shorten(dtype)}; expected F32, F16, BF16 or F64");
        if (end < begin) throw Bad(path, name, $"its data_offsets [{begin}, {end}] are not an increasing pair");
        if (end > dataLength) throw Bad(path, name, $"its data [{begin}, {end}) runs past the end of the {dataLength}-byte body (truncated file?)");
        if (end - begin != count * SizeOf(type))
            throw Bad(path, name, $"its data has {end - begin} bytes; shape {FloatTensor.FormatShape(shape)} of {dtype} needs {count * SizeOf(type)}");
        return new Entry(name, type, shape, begin, end);
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
    /// <param name="dtype">The element type in the file: F16 and BF16 round to nearest (ties to even), F64 is exact.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/>, <paramref name="tensors"/> or a tensor is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, a name is null, reserved or repeated, or a
    /// finite value is beyond the range of <paramref name="dtype"/> (the message names the tensor).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file cannot be written: the target is a folder or a loop of symbolic links, the disk is full.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, FloatTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        SafeTensorsDType dtype = SafeTensorsDType.F32)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (list, header) = Prepare(tensors, metadata, dtype);

        AtomicFile.Write(path, "a safetensors file", stream => WriteBody(stream, header, list, dtype));
    }

    /// <summary>
    /// Writes tensors in the safetensors format to <paramref name="stream"/> at its current position, as
    /// <see cref="Write(string, IEnumerable{KeyValuePair{string, FloatTensor}}, IReadOnlyDictionary{string, string}?, SafeTensorsDType)"/>
    /// writes a file; every argument is checked before the first byte is written, but a stream that fails part way keeps
    /// what was written (there is no rename to make it atomic). The stream is flushed, not disposed.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/>, <paramref name="tensors"/> or a tensor is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be written, a name is null, reserved or repeated, or a
    /// finite value is beyond the range of <paramref name="dtype"/> (the message names the tensor).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, FloatTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        SafeTensorsDType dtype = SafeTensorsDType.F32)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("stream: cannot be written.", nameof(stream));
        var (list, header) = Prepare(tensors, metadata, dtype);
        WriteBody(stream, header, list, dtype);
        stream.Flush();
    }

    /// <summary>Checks the tensors and builds the header, before anything is written.</summary>
    private static (List<KeyValuePair<string, FloatTensor>> List, byte[] Header) Prepare(IEnumerable<KeyValuePair<string, FloatTensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata, SafeTensorsDType dtype)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        int size = SizeOf(dtype);
        var list = tensors.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));
            if (name is null || name == MetadataKey || !seen.Add(name))
                throw new ArgumentException($"tensors: the name '{name}' is null, reserved or given twice.", nameof(tensors));
            int bad = IndexOfUnrepresentable(tensor.Span, dtype);
            if (bad >= 0)
                throw new ArgumentException($"tensors: tensor '{name}' element {bad} is {tensor.Span[bad]:R}, beyond the range of {dtype}.", nameof(tensors));
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
                    writer.WriteString("dtype", dtype.ToString());
                    writer.WriteStartArray("shape");
                    foreach (int dim in tensor.Shape) writer.WriteNumberValue(dim);
                    writer.WriteEndArray();
                    writer.WriteStartArray("data_offsets");
                    writer.WriteNumberValue(offset);
                    offset += (long)tensor.Length * size;
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
        return (list, Encoding.UTF8.GetBytes(headerJson.ToString()));
    }

    private static void WriteBody(Stream stream, byte[] header, List<KeyValuePair<string, FloatTensor>> list, SafeTensorsDType dtype)
    {
        Span<byte> scratch = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(scratch, (ulong)header.Length);
        stream.Write(scratch);
        stream.Write(header);
        foreach (var (_, tensor) in list)
        {
            var values = tensor.Span;
            if (dtype == SafeTensorsDType.F32 && BitConverter.IsLittleEndian) { stream.Write(MemoryMarshal.AsBytes(values)); continue; }
            int size = SizeOf(dtype);
            var raw = new byte[(long)values.Length * size];
            for (int i = 0; i < values.Length; i++)
            {
                var at = raw.AsSpan(i * size, size);
                switch (dtype)
                {
                    case SafeTensorsDType.F32: BinaryPrimitives.WriteSingleLittleEndian(at, values[i]); break;
                    case SafeTensorsDType.F16: BinaryPrimitives.WriteHalfLittleEndian(at, (Half)values[i]); break;
                    case SafeTensorsDType.BF16:
                        // NaN would round into infinity's neighbourhood; Save refuses non-finite values, Write keeps them NaN.
                        ushort bf = float.IsNaN(values[i]) ? (ushort)0x7FC0 : (ushort)ToBFloat16(values[i]);
                        BinaryPrimitives.WriteUInt16LittleEndian(at, bf);
                        break;
                    case SafeTensorsDType.F64: BinaryPrimitives.WriteDoubleLittleEndian(at, values[i]); break;
                }
            }
            stream.Write(raw);
        }
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

/// <summary>The element type of a tensor in a safetensors file; tensors in memory are float32.</summary>
public enum SafeTensorsDType
{
    /// <summary>IEEE float32, the default: exact.</summary>
    F32,
    /// <summary>IEEE float16 (half): 11 significant bits, finite values up to 65504.</summary>
    F16,
    /// <summary>bfloat16: float32's range with 8 significant bits.</summary>
    BF16,
    /// <summary>IEEE float64: exact on saving; rounded to the nearest float32 on loading.</summary>
    F64,
}
