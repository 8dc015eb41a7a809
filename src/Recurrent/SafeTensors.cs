using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Recurrent;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header, then the
/// raw little-endian data), float32 tensors only, as PyTorch's <c>safetensors.torch</c> writes them.
/// </summary>
public static class SafeTensors
{
    // A header larger than this is not a parameter file; refusing it keeps a corrupt length from allocating gigabytes.
    private const long MaxHeaderBytes = 100_000_000;   // the reference implementation's limit

    private const string MetadataKey = "__metadata__";

    /// <summary>Reads every tensor of a file, in the order of their data.</summary>
    /// <remarks>
    /// The checks are the reference implementation's (huggingface/safetensors): the header is UTF-8 JSON, an object
    /// of at most 10⁸ bytes without repeated names; every tensor is F32 with data_offsets matching its shape; the
    /// tensors tile the body exactly, without overlaps, holes or trailing bytes.
    /// </remarks>
    /// <exception cref="InvalidDataException">The file is malformed; the message names the file and the tensor.</exception>
    public static IReadOnlyDictionary<string, Tensor> Read(string path) => Read(path, out _);

    /// <summary>As <see cref="Read(string)"/>, also returning the <c>__metadata__</c> strings (empty when absent).</summary>
    internal static IReadOnlyDictionary<string, Tensor> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        var strings = new Dictionary<string, string>(StringComparer.Ordinal);
        metadata = strings;
        using var stream = File.OpenRead(path);
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

        // System.Text.Json decodes names lazily and would throw InvalidOperationException on invalid UTF-8 there.
        if (!Utf8.IsValid(headerBytes)) throw Bad(path, null, "the header is not valid UTF-8");
        JsonDocument header;
        try { header = JsonDocument.Parse(headerBytes); }
        catch (JsonException e) { throw Bad(path, null, $"the header is not valid JSON ({e.Message})"); }

        var entries = new List<(string Name, int[] Shape, long Begin, long End)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        using (header)
        {
            if (header.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, null, "the header is not a JSON object");
            foreach (var property in header.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name)) throw Bad(path, property.Name, "it appears twice in the header");
                if (property.Name == MetadataKey) ReadMetadata(path, property.Value, strings);
                else entries.Add(ParseEntry(path, property.Name, property.Value, dataLength));
            }
        }

        // As the reference implementation requires: the tensors tile the body from its first byte to its last,
        // without overlaps or holes, so no byte of the file is unaccounted for.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expectedBegin = 0;
        string? previous = null;
        foreach (var (name, _, begin, end) in entries)
        {
            if (begin < expectedBegin)
                throw Bad(path, name, $"its data [{begin}, {end}) overlaps tensor '{previous}', which ends at {expectedBegin}");
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
            var bytes = MemoryMarshal.AsBytes(tensor.Data.AsSpan());
            try { stream.ReadExactly(bytes); }
            catch (EndOfStreamException) { throw Bad(path, name, "the file ends inside its data"); }
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < tensor.Data.Length; i++)
                    tensor.Data[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(tensor.Data[i])));
            result.Add(name, tensor);
        }
        return result;
    }

    private static void ReadMetadata(string path, JsonElement metadata, Dictionary<string, string> strings)
    {
        if (metadata.ValueKind == JsonValueKind.Null) return;   // the reference implementation reads null as no metadata
        if (metadata.ValueKind != JsonValueKind.Object) throw Bad(path, MetadataKey, "it is not an object of strings");
        foreach (var item in metadata.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String) throw Bad(path, MetadataKey, $"its value '{item.Name}' is not a string");
            if (!strings.TryAdd(item.Name, item.Value.GetString()!)) throw Bad(path, MetadataKey, $"its key '{item.Name}' appears twice");
        }
    }

    private static (string, int[], long, long) ParseEntry(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object) throw Bad(path, name, "its header entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String)
            throw Bad(path, name, "its header entry has no dtype");
        if (dtype.GetString() != "F32") throw Bad(path, name, $"its dtype is {dtype.GetString()}; expected F32");
        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad(path, name, "its header entry has no shape");
        var shape = new int[shapeElement.GetArrayLength()];
        long count = 1;
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out shape[d]) || shape[d] < 0)
                throw Bad(path, name, $"its shape has an invalid dimension {dim}");
            count *= shape[d++];
            if (count > Array.MaxLength) throw Bad(path, name, "its shape has too many elements");
        }
        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw Bad(path, name, "its header entry has no data_offsets [begin, end]");
        if (begin < 0 || end < begin) throw Bad(path, name, $"its data_offsets [{begin}, {end}] are not an increasing pair");
        if (end > dataLength) throw Bad(path, name, $"its data [{begin}, {end}) runs past the end of the {dataLength}-byte body (truncated file?)");
        if (end - begin != count * sizeof(float))
            throw Bad(path, name, $"its data has {end - begin} bytes; shape {Tensor.FormatShape(shape)} of F32 needs {count * sizeof(float)}");
        return (name, shape, begin, end);
    }

    /// <summary>
    /// Writes tensors as a safetensors file. The file is written beside the target under a temporary name and
    /// renamed over it, so an interrupted save never leaves a half-written file, and a failed one leaves the old
    /// file as it was and no temporary file behind.
    /// </summary>
    /// <param name="path">The target; replaced if it exists.</param>
    /// <param name="tensors">Name and tensor, written in this order; names must be distinct and not <c>__metadata__</c>.</param>
    /// <param name="metadata">Free-form strings stored under <c>__metadata__</c>.</param>
    /// <exception cref="ArgumentException">A name is null, reserved or repeated.</exception>
    /// <exception cref="IOException">The file cannot be written (the folder is missing, the target is a folder, the disk is full).</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
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

        string fullPath = Path.GetFullPath(path);
        // Same folder, so the rename is atomic; the name is cut so that a long target name still leaves a valid one.
        string fileName = Path.GetFileName(fullPath);
        string temporary = Path.Combine(Path.GetDirectoryName(fullPath)!,
            $".{fileName[..Math.Min(fileName.Length, 100)]}.{Guid.NewGuid().ToString("N")[..12]}.tmp");
        // Created before the try: if this fails there is nothing of ours to remove (and a file that happened to
        // have the name is not ours to delete).
        var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write);
        try
        {
            using (stream)
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var (_, tensor) in list)
                {
                    if (BitConverter.IsLittleEndian) stream.Write(MemoryMarshal.AsBytes(tensor.Data.AsSpan()));
                    else foreach (float v in tensor.Data) { BinaryPrimitives.WriteSingleLittleEndian(length[..4], v); stream.Write(length[..4]); }
                }
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch
        {
            // A failure to clean up must not hide the failure being reported.
            try { File.Delete(temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static InvalidDataException Bad(string path, string? tensor, string problem) =>
        new(tensor is null ? $"{path}: {problem}." : $"{path}: tensor '{tensor}': {problem}.");
}
