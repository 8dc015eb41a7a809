using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Recurrent;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header, then the
/// raw little-endian data), float32 tensors only, as PyTorch's <c>safetensors.torch</c> writes them.
/// </summary>
public static class SafeTensors
{
    // A header larger than this is not a parameter file; refusing it keeps a corrupt length from allocating gigabytes.
    private const long MaxHeaderBytes = 100 * 1024 * 1024;

    /// <summary>Reads every tensor of a file, in the order of their data.</summary>
    /// <exception cref="InvalidDataException">The file is malformed; the message names the file and the tensor.</exception>
    public static IReadOnlyDictionary<string, Tensor> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad(path, null, $"the file has {fileLength} bytes, fewer than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)Math.Min(MaxHeaderBytes, fileLength - 8))
            throw Bad(path, null, $"the header length {headerLength} runs past the end of the {fileLength}-byte file");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataLength = fileLength - 8 - (long)headerLength;

        JsonDocument header;
        try { header = JsonDocument.Parse(headerBytes); }
        catch (JsonException e) { throw Bad(path, null, $"the header is not valid JSON ({e.Message})"); }

        var entries = new List<(string Name, int[] Shape, long Begin, long End)>();
        using (header)
        {
            if (header.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, null, "the header is not a JSON object");
            foreach (var property in header.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__") continue;
                entries.Add(ParseEntry(path, property.Name, property.Value, dataLength));
            }
        }

        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        for (int i = 1; i < entries.Count; i++)
            if (entries[i].Begin < entries[i - 1].End)
                throw Bad(path, entries[i].Name, $"its data [{entries[i].Begin}, {entries[i].End}) overlaps tensor '{entries[i - 1].Name}' [{entries[i - 1].Begin}, {entries[i - 1].End})");

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
    /// renamed over it, so an interrupted save never leaves a half-written file.
    /// </summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
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
        string temporary = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
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
            File.Delete(temporary);
            throw;
        }
    }

    private static InvalidDataException Bad(string path, string? tensor, string problem) =>
        new(tensor is null ? $"{path}: {problem}." : $"{path}: tensor '{tensor}': {problem}.");
}
