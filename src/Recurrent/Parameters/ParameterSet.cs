using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Recurrent;

/// <summary>
/// A named parameter of a <see cref="ParameterSet"/>: its value and the gradient that backward passes accumulate into,
/// both views of the set's flat storage (<see cref="ParameterSet.Values"/>, <see cref="ParameterSet.Gradients"/>) at
/// <see cref="Offset"/>. See <see cref="ParameterSet"/> for what may run concurrently.
/// </summary>
/// <remarks>Thread-safety: its name and shape never change; its value and gradient are views of its set's storage, governed by <see cref="ParameterSet"/>'s rules. Lifetime: belongs to its set; nothing to free.</remarks>
public sealed class Parameter
{
    internal Parameter(string name, int offset, FloatTensor value, FloatTensor grad) => (Name, Offset, Value, Grad) = (name, offset, value, grad);

    /// <summary>The name, as PyTorch's <c>named_parameters()</c> gives it, such as <c>weight_ih_l0_reverse</c> or <c>recurrent.weight_hh_l0</c>.</summary>
    public string Name { get; }
    /// <summary>The dimensions of <see cref="Value"/> and <see cref="Grad"/>.</summary>
    public IReadOnlyList<int> Shape => Value.Shape;
    /// <summary>The number of elements.</summary>
    public int Length => Value.Length;
    /// <summary>Where its elements start in its set's <see cref="ParameterSet.Values"/> and <see cref="ParameterSet.Gradients"/>.</summary>
    public int Offset { get; }
    /// <summary>The value; its shape never changes.</summary>
    public FloatTensor Value { get; }
    /// <summary>The accumulated gradient, same shape as <see cref="Value"/>; cleared by <see cref="ParameterSet.ZeroGrad"/>.</summary>
    public FloatTensor Grad { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {FloatTensor.FormatShape(Shape)}";
}

/// <summary>
/// The parameters of a model: named tensors in a fixed order, whose values are one contiguous float array and whose
/// gradients are another, so that what works on all of them at once (an optimizer step, clearing the gradients, a
/// gradient all-reduce, an upload to a device) is one pass over one span (<see cref="Values"/>, <see cref="Gradients"/>).
/// Each <see cref="Parameter"/>'s value and gradient are views of those spans, in the order of <see cref="All"/>.
/// Every model exposes its parameters as one: <see cref="RecurrentLayer.Parameters"/> (an <see cref="RnnParameters"/>),
/// <see cref="Sequence.RecurrentSequenceModel.Parameters"/> (its own and its stack's) and
/// <see cref="Sequence.OutputRecurrentNetwork.Parameters"/>; <see cref="Save(string, SaveOptions?)"/> and <see cref="Load(string, LoadOptions?)"/> are the safetensors
/// checkpoint of every one of them.
/// </summary>
/// <remarks>
/// Thread-safety: passes that read the parameters (a layer's forward and backward passes, a sequence model's calls) may
/// run on several threads at once; gradients are added under a lock, one pass at a time, so concurrent backward passes
/// add up to the sum of their gradients. What replaces the values (<see cref="Load(string, LoadOptions?)"/>, <see cref="SgdStep"/>,
/// <see cref="RnnParameters.Reset"/>) refuses to run while a pass is in flight, and a pass refuses to start while they run
/// (<see cref="InvalidOperationException"/> both ways); a layer's backward pass refuses a forward pass whose values were
/// replaced since. <see cref="ZeroGrad"/> waits for a backward pass in flight. Writing into the spans or tensors directly is
/// outside this protection: do it only while no pass is in flight, and not between a forward pass and its backward pass.
/// <para>Lifetime: managed memory only (not IDisposable). A set shared into a sequence model refuses work once the model is disposed (<see cref="ObjectDisposedException"/>); the stack's own set is then usable again.</para>
/// </remarks>
public class ParameterSet
{
    private readonly Parameter[] _parameters;
    private readonly Dictionary<string, Parameter> _byName;
    private readonly Dictionary<string, string> _metadata;
    private readonly string _description;
    // Sets whose storage lives inside this one's (a sequence model's recurrent stack): passes, writes and the gradient
    // lock of this set cover theirs too, since their own passes (the layer API) run on them directly.
    private readonly ParameterSet[] _adopted;
    private readonly int[] _adoptedOffsets;
    // The parameters whose tensors are this set's own (not an adopted set's).
    private readonly Parameter[] _own;
    // The set this one's storage lives in while adopted; null when it is its own.
    private ParameterSet? _owner;
    private volatile bool _released;
    // ≥ 0: passes in flight; −1: the values are being replaced. One word, so entering and leaving are single atomics.
    private int _state;
    private int _version;

    /// <summary>Zero-valued parameters with the given names and shapes, in this order.</summary>
    /// <param name="parameters">Name and shape of each parameter. Names must be distinct, not empty and not <c>__metadata__</c> (safetensors reserves it).</param>
    /// <param name="metadata">Strings <see cref="Save(string, SaveOptions?)"/> records in the file's <c>__metadata__</c> and <see cref="Load(string, LoadOptions?)"/> checks: a file that
    /// records another value under one of these keys is refused (one that lacks the key, as PyTorch's files do, is not).
    /// Use it for what the names and shapes cannot tell apart (which cell, which activation).</param>
    /// <exception cref="ArgumentNullException"><paramref name="parameters"/>, a name or a shape is null.</exception>
    /// <exception cref="ArgumentException">A name is empty, reserved or repeated, or a dimension is negative (ParamName "parameters").</exception>
    /// <exception cref="ArgumentOutOfRangeException">All parameters together have more elements than one array holds (<see cref="Array.MaxLength"/>).</exception>
    public ParameterSet(IEnumerable<(string Name, int[] Shape)> parameters, IReadOnlyDictionary<string, string>? metadata = null)
        : this(Own(parameters), metadata, "this parameter set")
    {
    }

    private static IEnumerable<Entry> Own(IEnumerable<(string Name, int[] Shape)> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Select(p => Entry.Own(p.Name, p.Shape));
    }

    /// <summary>One part of a set: a parameter of its own, or a whole set adopted under a name prefix.</summary>
    internal readonly record struct Entry(string Name, int[]? Shape, ParameterSet? Adopted)
    {
        public static Entry Own(string name, int[] shape) => new(name, shape, null);
        /// <summary>Every parameter of <paramref name="set"/>, named <paramref name="prefix"/> + its name; its storage moves into the new set's.</summary>
        public static Entry Adopt(string prefix, ParameterSet set) => new(prefix, null, set);
    }

    /// <summary>
    /// A set of <paramref name="entries"/> in order. Adopted sets move into the new set's storage (their values and
    /// gradients copied, their tensors rebound, so what their users hold stays live) and stay there until
    /// <see cref="Release"/>; their parameters appear here under the prefix, sharing their tensors.
    /// </summary>
    /// <exception cref="InvalidOperationException">An adopted set belongs to another set already, or one of its passes is in flight.</exception>
    internal ParameterSet(IEnumerable<Entry> entries, IReadOnlyDictionary<string, string>? metadata, string description)
    {
        var list = entries.ToList();
        _description = description;
        _metadata = metadata is null ? [] : new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        // Layout first: every check before anything is allocated or moved.
        var offsets = new int[list.Count];
        long total = 0;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int e = 0; e < list.Count; e++)
        {
            var entry = list[e];
            offsets[e] = (int)total;
            if (entry.Adopted is { } set)
            {
                if (set._owner is not null || set._released)
                    throw new InvalidOperationException($"{entry.Name}: these parameters belong to another model already; dispose it first.");
                foreach (var p in set._parameters) RequireName(entry.Name + p.Name, names);
                total += set.Values.Length;
            }
            else
            {
                RequireName(entry.Name, names);
                ArgumentNullException.ThrowIfNull(entry.Shape, "parameters");
                if (entry.Shape.Any(d => d < 0))
                    throw new ArgumentException($"parameters: '{entry.Name}' has the shape {FloatTensor.FormatShape(entry.Shape)}; expected non-negative dimensions.", "parameters");
                long count = entry.Shape.Contains(0) ? 0 : 1;
                foreach (int d in entry.Shape)
                {
                    // Both factors are below 2³¹ until the product passes the limit: no overflow.
                    count *= d;
                    if (count > Array.MaxLength)
                        throw new ArgumentOutOfRangeException("parameters", $"parameters: '{entry.Name}' {FloatTensor.FormatShape(entry.Shape)} has more elements than one array holds ({Array.MaxLength}; one flat span).");
                }
                total += count;
            }
            if (total > Array.MaxLength)
                throw new ArgumentOutOfRangeException("parameters", $"parameters: {total} elements up to '{entry.Name}'; at most {Array.MaxLength} fit one array (one flat span).");
        }
        var values = new float[total];
        var gradients = new float[total];
        var parameters = new List<Parameter>();
        var own = new List<Parameter>();
        var adopted = new List<ParameterSet>();
        var adoptedOffsets = new List<int>();
        try
        {
            for (int e = 0; e < list.Count; e++)
            {
                var entry = list[e];
                if (entry.Adopted is { } set)
                {
                    // Exclusive, so no pass reads the old storage while it moves; the values stay what they were, so the
                    // version does not change (a pending backward pass or a stepper stays valid).
                    using (set.BeginExclusive("adopting the parameters into a model", bumpVersion: false))
                    {
                        // Checked again here, where no other adoption can run: two models made at once around one stack.
                        if (set._owner is not null)
                            throw new InvalidOperationException($"{entry.Name}: these parameters belong to another model already; dispose it first.");
                        set.Values.Span.CopyTo(values.AsSpan(offsets[e]));
                        set.Gradients.Span.CopyTo(gradients.AsSpan(offsets[e]));
                        set.Rebind(values, gradients, offsets[e]);
                        set._owner = this;
                    }
                    adopted.Add(set);
                    adoptedOffsets.Add(offsets[e]);
                    foreach (var p in set._parameters)
                        parameters.Add(new Parameter(entry.Name + p.Name, offsets[e] + p.Offset, p.Value, p.Grad));
                }
                else
                {
                    var parameter = new Parameter(entry.Name, offsets[e], FloatTensor.View(values, offsets[e], entry.Shape!), FloatTensor.View(gradients, offsets[e], entry.Shape!));
                    parameters.Add(parameter);
                    own.Add(parameter);
                }
            }
        }
        catch
        {
            foreach (var set in adopted) set._owner = null;
            throw;
        }
        _parameters = [.. parameters];
        _byName = _parameters.ToDictionary(p => p.Name, StringComparer.Ordinal);
        _own = [.. own];
        _adopted = [.. adopted];
        _adoptedOffsets = [.. adoptedOffsets];
        Values = new FloatTensor(values, values.Length);
        Gradients = new FloatTensor(gradients, gradients.Length);
    }

    private static void RequireName(string name, HashSet<string> names)
    {
        ArgumentNullException.ThrowIfNull(name, "parameters");
        if (name.Length == 0 || name == SafeTensors.MetadataKey || !names.Add(name))
            throw new ArgumentException($"parameters: the name '{name}' is empty, reserved or given twice.", "parameters");
    }

    /// <summary>Every parameter, in order: the order of <see cref="Values"/> and of a saved file.</summary>
    public IReadOnlyList<Parameter> All => _parameters;

    /// <summary>Every value [P] (P the total number of elements), parameter after parameter in the order of <see cref="All"/>: the storage the parameters' <see cref="Parameter.Value"/>s view.</summary>
    public FloatTensor Values { get; }

    /// <summary>Every gradient [P], in the order of <see cref="Values"/>: the storage the parameters' <see cref="Parameter.Grad"/>s view.</summary>
    public FloatTensor Gradients { get; }

    /// <summary>What <see cref="Save(string, SaveOptions?)"/> records in the file's metadata and <see cref="Load(string, LoadOptions?)"/> checks (see the constructor).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>The parameter named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name; the message lists the names.</exception>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"no parameter named '{name}'; expected one of {string.Join(", ", _byName.Keys)}.");

    /// <summary>The parameter named <paramref name="name"/>, if there is one.</summary>
    public bool TryGet(string name, [MaybeNullWhen(false)] out Parameter parameter) => _byName.TryGetValue(name, out parameter);

    /// <summary>Sets every gradient to zero (after any backward pass in flight on another thread has added its gradient).</summary>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public void ZeroGrad()
    {
        ThrowIfReleased();
        LockGradients();
        try { Gradients.Span.Clear(); }
        finally { UnlockGradients(); }
    }

    /// <summary>Plain gradient descent on every parameter: value −= learningRate · gradient, one pass over the flat spans.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The learning rate is NaN or infinite.</exception>
    /// <exception cref="InvalidOperationException">A pass that reads these parameters is running on another thread, or another thread is replacing them.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public void SgdStep(float learningRate)
    {
        if (!float.IsFinite(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "learningRate: expected a finite number.");
        using var write = BeginWrite(nameof(SgdStep));
        Axpy(-learningRate, Gradients.Span, Values.Span);
    }

    /// <summary>y += a · x, vectorised; the same rounding as the scalar loop (a product, then a sum).</summary>
    private static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var xs = MemoryMarshal.Cast<float, Vector<float>>(x);
            var ys = MemoryMarshal.Cast<float, Vector<float>>(y);
            var scale = new Vector<float>(a);
            for (int v = 0; v < ys.Length; v++) ys[v] += scale * xs[v];
            i = ys.Length * Vector<float>.Count;
        }
        for (; i < y.Length; i++) y[i] += a * x[i];
    }

    /// <summary>
    /// Saves every value as a safetensors file under the parameters' names (after <see cref="SaveOptions.Prefix"/>), in the
    /// order of <see cref="All"/>, with <see cref="Metadata"/> and <c>format: pt</c> in the file's metadata, as
    /// <see cref="SaveOptions.DType"/> (float32 unless chosen), atomically: a temporary file, then a rename.
    /// PyTorch loads it with <c>load_state_dict(load_file(path))</c> into a module whose parameters have these names.
    /// </summary>
    /// <remarks>Through a symbolic link the link's final target is replaced and the link kept; see <see cref="SafeTensors.Write(string, IEnumerable{KeyValuePair{string, FloatTensor}}, IReadOnlyDictionary{string, string}?, SafeTensorsDType)"/>.</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' dtype is not a defined value.</exception>
    /// <exception cref="IOException">The file cannot be written (its folder is missing, the target is a folder, the disk is full);
    /// an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    /// <exception cref="InvalidOperationException">A value is NaN or infinite (<see cref="Load(string, LoadOptions?)"/> refuses such files, so
    /// they are not written) or beyond the range of the chosen dtype (F16: ±65504), naming the parameter; or another thread is replacing the values.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public void Save(string path, SaveOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SaveCore(options, (tensors, metadata, dtype) => SafeTensors.Write(path, tensors, metadata, dtype));
    }

    /// <summary>
    /// Writes what <see cref="Save(string, SaveOptions?)"/> writes to <paramref name="stream"/>, at its current position; the
    /// stream is flushed, not disposed. Every check runs before the first byte is written; a stream that fails part way keeps
    /// what was written.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be written.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' dtype is not a defined value.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    /// <exception cref="InvalidOperationException">A value is NaN or infinite, or beyond the range of the chosen dtype, naming the
    /// parameter; or another thread is replacing the values.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public void Save(Stream stream, SaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("stream: cannot be written.", nameof(stream));
        SaveCore(options, (tensors, metadata, dtype) => SafeTensors.Write(stream, tensors, metadata, dtype));
    }

    /// <summary>
    /// A copy of every value under its name (after <paramref name="prefix"/>), in the order of <see cref="All"/>: the
    /// in-memory form of <see cref="Save(string, SaveOptions?)"/>, as PyTorch's <c>state_dict()</c>. The tensors are
    /// copies, so later training does not change them; <see cref="Load(IReadOnlyDictionary{string, FloatTensor}, LoadOptions?)"/> takes them back.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another thread is replacing the values.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public IReadOnlyDictionary<string, FloatTensor> StateDict(string? prefix = null)
    {
        using var pass = EnterPass();
        var result = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        foreach (var p in _parameters) result.Add((prefix ?? "") + p.Name, p.Value.Clone());
        return result;
    }

    private void SaveCore(SaveOptions? options, Action<IEnumerable<KeyValuePair<string, FloatTensor>>, IReadOnlyDictionary<string, string>, SafeTensorsDType> write)
    {
        options ??= SaveOptions.Default;
        SafeTensors.SizeOf(options.DType);   // an undefined dtype is refused before any work
        // Inside a pass, so no SGD step or Load changes the values between the check and the write.
        using var pass = EnterPass();
        foreach (var p in _parameters)
        {
            var values = p.Value.Span;
            int bad = FloatTensor.IndexOfNonFinite(values);
            if (bad >= 0)
                throw new InvalidOperationException($"parameter '{p.Name}' element {bad} is {values[bad]}; a checkpoint with non-finite values cannot be loaded again, so it is not saved.");
            bad = SafeTensors.IndexOfUnrepresentable(values, options.DType);
            if (bad >= 0)
                throw new InvalidOperationException($"parameter '{p.Name}' element {bad} is {values[bad]:R}, beyond the range of {options.DType}; save it as F32, BF16 or F64.");
        }
        // format first, as PyTorch's save_file writes it (and as the committed files that PyTorch checked have it).
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        foreach (var (key, value) in _metadata) metadata[key] = value;
        string prefix = options.Prefix ?? "";
        write(_parameters.Select(p => KeyValuePair.Create(prefix + p.Name, p.Value)), metadata, options.DType);
    }

    /// <summary>
    /// Loads values from a safetensors file, such as one written by <see cref="Save(string, SaveOptions?)"/> or by PyTorch's
    /// <c>save_file(module.state_dict(), path)</c>, as PyTorch's <c>load_state_dict</c> does. F16 and BF16 tensors become
    /// float32 exactly, F64 tensors the nearest float32. With <see cref="LoadOptions.Prefix"/> only the file's names that start
    /// with it are considered, without it (a sub-module of a whole-model file: <c>rnn.</c>, <c>module.rnn.</c>); the rest of the
    /// file is ignored. Strict (the default): those names must be exactly these parameters; non-strict: what matches is loaded
    /// and the rest reported. Either way every matched tensor must have its parameter's shape and finite values, and the file
    /// must record no other value under a key of <see cref="Metadata"/>. Nothing is changed unless every check passes.
    /// Gradients are left as they are.
    /// </summary>
    /// <returns>The parameters the file lacks and the file's (prefixed) names that are no parameter: both empty after a strict load.</returns>
    /// <exception cref="InvalidDataException">Strict: a tensor is missing (the message names, for each, a near miss the file has,
    /// such as the name under another prefix) or extra. Either mode: a tensor is misshaped or not finite, an F64 value is beyond
    /// float32's range, the metadata disagrees (a file saved from another cell of the same shapes), no name starts with the prefix
    /// (the message lists the prefixes present), or the file is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be read: it is missing (<see cref="FileNotFoundException"/>), or a folder.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    /// <exception cref="InvalidOperationException">A pass that reads these parameters is running on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    /// <remarks>A layer's forward pass run before Load cannot be back-propagated after it (<see cref="RecurrentLayer.Backward"/> throws).</remarks>
    public LoadResult Load(string path, LoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ThrowIfReleased();
        var tensors = SafeTensors.Read(path, out var metadata);
        return LoadCore(path, tensors, metadata, options, message => new InvalidDataException(message));
    }

    /// <summary>
    /// As <see cref="Load(string, LoadOptions?)"/>, reading from <paramref name="stream"/> (from its current position to its end;
    /// a stream that cannot seek is read whole first). Messages name the source "stream". The stream is not disposed.
    /// </summary>
    /// <returns>The parameters the data lacks and its (prefixed) names that are no parameter.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="InvalidDataException">As for a file.</exception>
    /// <exception cref="IOException">The stream fails.</exception>
    /// <exception cref="InvalidOperationException">A pass that reads these parameters is running on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public LoadResult Load(Stream stream, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ThrowIfReleased();
        var tensors = SafeTensors.Read(stream, SafeTensors.StreamSource, out var metadata);
        return LoadCore(SafeTensors.StreamSource, tensors, metadata, options, message => new InvalidDataException(message));
    }

    /// <summary>
    /// As <see cref="Load(string, LoadOptions?)"/>, from an in-memory name → tensor map (such as <see cref="StateDict"/>
    /// gives, or one built by hand): the same names, prefix, shape and finiteness checks, reported as
    /// <see cref="ArgumentException"/>s; the values are copied.
    /// </summary>
    /// <returns>The parameters the map lacks and its (prefixed) names that are no parameter.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="tensors"/> is null.</exception>
    /// <exception cref="ArgumentException">A tensor is null, misshaped or not finite; strict: one is missing (with its near miss)
    /// or extra; no name starts with the prefix (ParamName "tensors").</exception>
    /// <exception cref="InvalidOperationException">A pass that reads these parameters is running on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public LoadResult Load(IReadOnlyDictionary<string, FloatTensor> tensors, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ThrowIfReleased();
        foreach (var (name, tensor) in tensors)
            if (tensor is null) throw new ArgumentException($"tensors: tensor '{name}' is null.", nameof(tensors));
        return LoadCore("tensors", tensors, new Dictionary<string, string>(), options, message => new ArgumentException(message, nameof(tensors)));
    }

    /// <summary>The one loader behind every source: all checks first, then one write.</summary>
    private LoadResult LoadCore(string source, IReadOnlyDictionary<string, FloatTensor> tensors, IReadOnlyDictionary<string, string> metadata,
        LoadOptions? options, Func<string, Exception> fail)
    {
        options ??= LoadOptions.Default;
        string prefix = options.Prefix ?? "";
        foreach (var (key, value) in _metadata)
            if (metadata.TryGetValue(key, out var saved) && saved != value)
                throw fail($"{source}: metadata '{key}' is {saved}, but {_description} has {value}: the names and shapes fit, the computation would not.");
        // The sub-module: names under the prefix, without it; the rest belongs to other modules and is ignored.
        var selected = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
            if (name.StartsWith(prefix, StringComparison.Ordinal)) selected.Add(name[prefix.Length..], tensor);
        if (prefix.Length > 0 && selected.Count == 0)
            throw fail($"{source}: no tensor name starts with the prefix '{prefix}'; {DescribePrefixes(tensors.Keys)}.");
        string Expected() => string.Join(", ", _parameters.Select(q => q.Name));
        var missing = new List<string>();
        foreach (var p in _parameters)
        {
            if (!selected.TryGetValue(p.Name, out var t)) { missing.Add(p.Name); continue; }
            if (!t.HasShape([.. p.Shape]))
                throw fail($"{source}: tensor '{prefix + p.Name}' has shape {FloatTensor.FormatShape(t.Shape)}; expected {FloatTensor.FormatShape(p.Shape)}.");
            var values = t.Span;
            int bad = FloatTensor.IndexOfNonFinite(values);
            if (bad >= 0) throw fail($"{source}: tensor '{prefix + p.Name}' element {bad} is {values[bad]}; expected finite values.");
        }
        var unexpected = selected.Keys.Where(name => !_byName.ContainsKey(name)).Select(name => prefix + name).ToList();
        if (options.Strict)
        {
            if (missing.Count > 0)
            {
                const int Listed = 8;
                var parts = missing.Take(Listed).Select(name => $"tensor '{prefix + name}' is missing{NearMiss(name, prefix, tensors.Keys, unexpected)}");
                string more = missing.Count > Listed ? $"; and {missing.Count - Listed} more" : "";
                throw fail($"{source}: {string.Join("; ", parts)}{more}; {_description} needs {Expected()}" +
                           $"{(prefix.Length > 0 ? $" under the prefix '{prefix}'" : "")} (LoadOptions.Strict = false loads what matches).");
            }
            if (unexpected.Count > 0)
                throw fail($"{source}: tensor '{unexpected[0]}' is not a parameter of {_description}; expected only {Expected()}" +
                           $"{(prefix.Length > 0 ? $" under the prefix '{prefix}'" : "")}.");
        }
        using var write = BeginWrite(nameof(Load));
        foreach (var p in _parameters)
            if (selected.TryGetValue(p.Name, out var t)) t.Span.CopyTo(p.Value.Span);
        return new LoadResult(missing, unexpected);
    }

    /// <summary>
    /// A hint for a missing name: the file's name that ends with it under another prefix (the usual cause: a whole-model
    /// file), else a name under the prefix within a small edit distance (a typo or another convention).
    /// </summary>
    private static string NearMiss(string name, string prefix, IEnumerable<string> names, IReadOnlyList<string> unexpected)
    {
        string? best = null;
        foreach (var candidate in names)
        {
            if (candidate.Length < name.Length || !candidate.EndsWith(name, StringComparison.Ordinal)) continue;
            string other = candidate[..^name.Length];
            if (other == prefix || (other.Length > 0 && other[^1] != '.')) continue;
            if (best is null || candidate.Length < best.Length) best = candidate;
        }
        if (best is not null)
        {
            string other = best[..^name.Length];
            return $" (the file has '{best}': pass {(other.Length == 0 ? "no Prefix" : $"Prefix = \"{other}\"")})";
        }
        int limit = Math.Max(1, name.Length / 4);
        string? closest = null;
        int closestDistance = int.MaxValue;
        foreach (var candidate in unexpected)
        {
            string stripped = candidate[prefix.Length..];
            if (Math.Abs(stripped.Length - name.Length) > limit) continue;
            int distance = EditDistance(stripped, name);
            if (distance <= limit && distance < closestDistance) (closest, closestDistance) = (candidate, distance);
        }
        return closest is null ? "" : $" (the file has '{closest}', which differs by {closestDistance} character{(closestDistance == 1 ? "" : "s")})";
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>The dotted prefixes of <paramref name="names"/> (for <c>module.rnn.weight</c>: <c>module.</c> and <c>module.rnn.</c>), for a message.</summary>
    private static string DescribePrefixes(IEnumerable<string> names)
    {
        var prefixes = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
            for (int dot = name.IndexOf('.'); dot >= 0 && prefixes.Count < 1000; dot = name.IndexOf('.', dot + 1))
                prefixes.Add(name[..(dot + 1)]);
        if (prefixes.Count == 0) return "the names have no prefix (load without one)";
        const int Listed = 20;
        string list = string.Join(", ", prefixes.Take(Listed).Select(p => $"'{p}'"));
        return $"the prefixes present are {list}{(prefixes.Count > Listed ? $" and {prefixes.Count - Listed} more" : "")}";
    }

    /// <summary>
    /// Gives the adopted sets back (a disposed model's stack): they keep their storage where it is, may be adopted again,
    /// and this set refuses further work, since it would no longer see a stack that moves on.
    /// </summary>
    internal void Release()
    {
        _released = true;
        foreach (var set in _adopted) set._owner = null;
    }

    /// <summary>Whether another set holds this one's storage (see the internal constructor).</summary>
    internal bool IsAdopted => _owner is not null;

    private void ThrowIfReleased()
    {
        if (_released)
            throw new ObjectDisposedException(nameof(ParameterSet), "these parameters belong to a model that was disposed and gave its recurrent stack back; use the stack's own parameters, or a new model.");
    }

    /// <summary>Moves every tensor of this set (and of the sets it adopted) onto new storage from <paramref name="offset"/>.</summary>
    private void Rebind(float[] values, float[] gradients, int offset)
    {
        Values.Rebind(values, offset);
        Gradients.Rebind(gradients, offset);
        foreach (var p in _own)
        {
            p.Value.Rebind(values, offset + p.Offset);
            p.Grad.Rebind(gradients, offset + p.Offset);
        }
        // An adopted set's parameters share that set's tensors: they move with it.
        for (int i = 0; i < _adopted.Length; i++) _adopted[i].Rebind(values, gradients, offset + _adoptedOffsets[i]);
    }

    /// <summary>Held while gradients are added into <see cref="Parameter.Grad"/> or cleared.</summary>
    internal object GradientLock { get; } = new();

    private void LockGradients()
    {
        Monitor.Enter(GradientLock);
        int locked = 0;
        try
        {
            for (; locked < _adopted.Length; locked++) _adopted[locked].LockGradients();
        }
        catch
        {
            for (int i = 0; i < locked; i++) _adopted[i].UnlockGradients();
            Monitor.Exit(GradientLock);
            throw;
        }
    }

    private void UnlockGradients()
    {
        foreach (var set in _adopted) set.UnlockGradients();
        Monitor.Exit(GradientLock);
    }

    /// <summary>Counts replacements of the values (<see cref="BeginWrite"/>): a tape records it, and backward compares.</summary>
    internal int Version => Volatile.Read(ref _version);

    /// <summary>Marks a pass in flight (here and in the adopted sets) until the returned scope is disposed.</summary>
    /// <exception cref="InvalidOperationException">The values are being replaced on another thread.</exception>
    internal PassScope EnterPass()
    {
        ThrowIfReleased();
        EnterPassCore();
        return new PassScope(this);
    }

    private void EnterPassCore()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state < 0)
                throw new InvalidOperationException("parameters: another thread is replacing the values (Load, Reset or an SGD step); a pass cannot run meanwhile.");
            if (Interlocked.CompareExchange(ref _state, state + 1, state) == state) break;
        }
        int entered = 0;
        try
        {
            for (; entered < _adopted.Length; entered++) _adopted[entered].EnterPassCore();
        }
        catch
        {
            for (int i = 0; i < entered; i++) _adopted[i].LeavePass();
            Interlocked.Decrement(ref _state);
            throw;
        }
    }

    private void LeavePass()
    {
        foreach (var set in _adopted) set.LeavePass();
        Interlocked.Decrement(ref _state);
    }

    /// <summary>Marks the values as being replaced (here and in the adopted sets) until the returned scope is disposed; bumps <see cref="Version"/>.</summary>
    /// <param name="operation">What replaces them, for the message.</param>
    /// <exception cref="InvalidOperationException">A pass or another replacement is in flight.</exception>
    internal WriteScope BeginWrite(string operation)
    {
        ThrowIfReleased();
        return BeginExclusive(operation, bumpVersion: true);
    }

    private WriteScope BeginExclusive(string operation, bool bumpVersion)
    {
        int state = Interlocked.CompareExchange(ref _state, -1, 0);
        if (state != 0)
            throw new InvalidOperationException(state > 0
                ? $"{operation}: {state} pass(es) that read these parameters (a layer's forward or backward pass, a model's call) are running on other threads; replace the values once they have returned."
                : $"{operation}: another thread is replacing the values already.");
        int begun = 0;
        try
        {
            for (; begun < _adopted.Length; begun++) _adopted[begun].BeginExclusive(operation, bumpVersion);
        }
        catch
        {
            for (int i = 0; i < begun; i++) _adopted[i].EndWrite();
            Volatile.Write(ref _state, 0);
            throw;
        }
        if (bumpVersion) Interlocked.Increment(ref _version);
        return new WriteScope(this);
    }

    private void EndWrite()
    {
        foreach (var set in _adopted) set.EndWrite();
        Volatile.Write(ref _state, 0);
    }

    internal readonly struct PassScope(ParameterSet owner) : IDisposable
    {
        public void Dispose() => owner.LeavePass();
    }

    internal readonly struct WriteScope(ParameterSet owner) : IDisposable
    {
        public void Dispose() => owner.EndWrite();
    }
}

/// <summary>How <see cref="ParameterSet.Load(string, LoadOptions?)"/> matches a file's tensors to the parameters, as PyTorch's <c>load_state_dict</c>.</summary>
/// <remarks>Thread-safety: immutable (init-only), so safe to share once made. Lifetime: nothing to free.</remarks>
public sealed record LoadOptions
{
    /// <summary>The options of a plain load: strict, no prefix.</summary>
    public static LoadOptions Default { get; } = new();

    /// <summary>
    /// True (the default): the names (under <see cref="Prefix"/>) must be exactly the parameters. False: what matches is
    /// loaded, the rest reported in the <see cref="LoadResult"/>; shapes and finite values are checked either way.
    /// </summary>
    public bool Strict { get; init; } = true;

    /// <summary>
    /// The sub-module to load from a whole-model file, such as <c>rnn.</c> or <c>module.rnn.</c> (with its dot): only names
    /// that start with it are considered, without it; the others are ignored. Null or empty: every name.
    /// </summary>
    public string? Prefix { get; init; }
}

/// <summary>What a load did not match: PyTorch's <c>missing_keys</c> and <c>unexpected_keys</c>.</summary>
/// <remarks>Thread-safety: immutable, so safe. Lifetime: nothing to free.</remarks>
/// <param name="Missing">The parameters the source lacks (left as they were), by parameter name.</param>
/// <param name="Unexpected">The source's names under the prefix that are no parameter (ignored), as the source spells them.</param>
public sealed record LoadResult(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected)
{
    /// <summary>Whether every parameter was loaded and nothing was left over.</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0;
}

/// <summary>How <see cref="ParameterSet.Save(string, SaveOptions?)"/> writes a file.</summary>
/// <remarks>Thread-safety: immutable (init-only), so safe to share once made. Lifetime: nothing to free.</remarks>
public sealed record SaveOptions
{
    /// <summary>The options of a plain save: float32, no prefix.</summary>
    public static SaveOptions Default { get; } = new();

    /// <summary>The element type in the file (F32 unless chosen): F16 and BF16 round to nearest, ties to even, as PyTorch's <c>.half()</c> and <c>.bfloat16()</c>.</summary>
    public SafeTensorsDType DType { get; init; } = SafeTensorsDType.F32;

    /// <summary>Written before every name (such as <c>rnn.</c>), to make the file part of a whole model's state dict. Null or empty: none.</summary>
    public string? Prefix { get; init; }
}
