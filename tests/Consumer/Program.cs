// The consumer check: what a project that references the Recurrent package sees. It loads a two-layer bidirectional
// LSTM that PyTorch wrote (nn.LSTM(17, 9, num_layers=2, bidirectional=True) in float32, from
// scripts/make_reference_data.py), runs forward and backward through the package on the native CPU library at every
// instruction-set level this CPU has, and on ILGPU's CPU accelerator, and compares the outputs, the final states,
// the input and state gradients and every parameter gradient with PyTorch's. Then it exports the LSTM to ONNX and
// imports it back (the package's Google.Protobuf dependency at work) and checks that every parameter came back equal.
//
// Usage: consumer-check DATA_DIR   (DATA_DIR holds lstm_l2_bi_f32.params.safetensors and lstm_l2_bi_f32.data.safetensors)
// Exit code 0 when everything agrees, 1 when anything differs or fails.

using System.Reflection;
using Recurrent;
using Recurrent.Kernels.Cpu;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: consumer-check DATA_DIR");
    return 2;
}
string paramsPath = Path.Combine(args[0], "lstm_l2_bi_f32.params.safetensors");
var data = SafeTensors.Read(Path.Combine(args[0], "lstm_l2_bi_f32.data.safetensors"));

// The bound the test suite holds the native backend to against PyTorch's float32 values (Tolerances.Float32).
const double Absolute = 1e-4, Relative = 1e-3;

Console.WriteLine($"Recurrent {Version(typeof(Lstm).Assembly)}, Recurrent.Kernels {Version(typeof(NativeLibrary).Assembly)}, " +
                  $"native ABI {NativeLibrary.Version}, CPU features {NativeLibrary.CpuFeatures}");
Console.WriteLine($"native library: {LoadedFrom("librecurrent_native.so")}");

var runs = new List<(string Name, Func<IRnnBackend> Backend, NativeIsa Isa)> { ("native-cpu (auto ISA)", () => new NativeCpuBackend(), NativeIsa.Auto) };
if (NativeLibrary.CpuFeatures.HasFlag(CpuFeatures.Avx512F)) runs.Add(("native-cpu avx512", () => new NativeCpuBackend(), NativeIsa.Avx512));
if (NativeLibrary.CpuFeatures.HasFlag(CpuFeatures.Avx2Fma)) runs.Add(("native-cpu avx2", () => new NativeCpuBackend(), NativeIsa.Avx2));
runs.Add(("native-cpu portable", () => new NativeCpuBackend(), NativeIsa.Portable));
runs.Add(("ilgpu-cpu", () => new IlgpuBackend(IlgpuDevice.Cpu), NativeIsa.Auto));

int failures = 0, compared = 0;
foreach (var (name, createBackend, isa) in runs)
{
    try
    {
        NativeLibrary.Isa = isa;
        var backend = createBackend();
        try
        {
            var actual = Run(backend);
            double worst = 0;
            string worstName = "";
            foreach (var (tensor, values) in actual)
            {
                var expected = data[tensor].Span;
                if (values.Length != expected.Length) throw new InvalidOperationException($"{tensor}: {values.Length} values, PyTorch has {expected.Length}");
                for (int i = 0; i < values.Length; i++)
                {
                    double error = Math.Abs(values[i] - expected[i]), bound = Absolute + Relative * Math.Abs(expected[i]);
                    if (!(error <= bound))
                    {
                        Console.WriteLine($"  {name}: {tensor}[{i}] = {values[i]}, PyTorch {expected[i]} (|diff| {error:G3} > {bound:G3})");
                        failures++;
                        break;
                    }
                    if (error / bound > worst) (worst, worstName) = (error / bound, tensor);
                }
                compared++;
            }
            Console.WriteLine($"{name,-22} active ISA {(name.StartsWith("native") ? NativeLibrary.Isa : "-"),-8} {actual.Count} tensors, " +
                              $"largest |diff| {worst:F3} of the bound ({worstName})");
        }
        finally
        {
            (backend as IDisposable)?.Dispose();
        }
    }
    catch (Exception e)
    {
        Console.WriteLine($"{name}: FAILED: {e}");
        failures++;
    }
}
NativeLibrary.Isa = NativeIsa.Auto;

try
{
    var original = new Lstm(inputSize: 17, hiddenSize: 9, numLayers: 2, bidirectional: true);
    original.Load(paramsPath);
    using var onnx = new MemoryStream();
    Recurrent.Onnx.OnnxExport.Save(original, onnx);
    onnx.Position = 0;
    var imported = Recurrent.Onnx.OnnxImport.Load(onnx);
    var differing = original.Parameters.All.Where(p => !p.Value.Span.SequenceEqual(imported.Parameters[p.Name].Value.Span)).Select(p => p.Name).ToList();
    if (differing.Count > 0) throw new InvalidOperationException($"parameters differ after the round trip: {string.Join(", ", differing)}");
    Console.WriteLine($"ONNX export and import: {onnx.Length} bytes, all {original.Parameters.All.Count} parameters back bit for bit");
}
catch (Exception e)
{
    Console.WriteLine($"ONNX round trip: FAILED: {e}");
    failures++;
}

Console.WriteLine(failures == 0
    ? $"consumer check passed: {compared} tensors (y, hN, cN, dx, dh0, dc0 and 16 parameter gradients per backend) agree with PyTorch"
    : $"consumer check FAILED: {failures} disagreement(s) or failure(s)");
return failures == 0 ? 0 : 1;

// Forward and backward through the public API, as the README shows it; the results by the data file's names.
Dictionary<string, float[]> Run(IRnnBackend backend)
{
    var lstm = new Lstm(inputSize: 17, hiddenSize: 9, numLayers: 2, bidirectional: true, backend: backend);
    lstm.Load(paramsPath);
    lstm.ZeroGrad();
    using var forward = lstm.Forward(data["x"], data["h0"], data["c0"], keepForBackward: true);
    var grads = lstm.Backward(forward, data["dy"], data["dhN"], data["dcN"]);
    var result = new Dictionary<string, float[]>
    {
        ["y"] = forward.Output.ToArray(),
        ["hN"] = forward.HiddenState.ToArray(),
        ["cN"] = forward.CellState!.ToArray(),
        ["dx"] = grads.Input.ToArray(),
        ["dh0"] = grads.InitialHidden.ToArray(),
        ["dc0"] = grads.InitialCell!.ToArray(),
    };
    foreach (var p in lstm.Parameters.All) result["grad." + p.Name] = p.Grad.ToArray();
    return result;
}

static string Version(Assembly assembly) =>
    assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?";

// Where the process loaded a shared library from (Linux: its mapping in /proc/self/maps).
static string LoadedFrom(string file)
{
    try
    {
        return File.ReadLines("/proc/self/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6 && fields[5].EndsWith("/" + file, StringComparison.Ordinal))
            .Select(fields => fields[5]).FirstOrDefault() ?? "(not mapped)";
    }
    catch (IOException)
    {
        return "(unknown)";
    }
}
