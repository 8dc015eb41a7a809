using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Recurrent;

/// <summary>
/// A named parameter of a <see cref="ParameterSet"/>: its value and the gradient that backward passes accumulate into,
/// both views of the set's flat storage (<see cref="ParameterSet.Values"/>, <see cref="ParameterSet.Gradients"/>) at
/// <see cref="Offset"/>. See <see cref="ParameterSet"/> for what may run concurrently.
/// </summary>
public sealed class Parameter
{
    internal Parameter(string name, int offset, Tensor value, Tensor grad) => (Name, Offset, Value, Grad) = (name, offset, value, grad);

    /// <summary>The name, as PyTorch's <c>named_parameters()</c> gives it, such as <c>weight_ih_l0_reverse</c> or <c>recurrent.weight_hh_l0</c>.</summary>
    public string Name { get; }
    /// <summary>The dimensions of <see cref="Value"/> and <see cref="Grad"/>.</summary>
    public IReadOnlyList<int> Shape => Value.Shape;
    /// <summary>The number of elements.</summary>
    public int Length => Value.Length;
    /// <summary>Where its elements start in its set's <see cref="ParameterSet.Values"/> and <see cref="ParameterSet.Gradients"/>.</summary>
    public int Offset { get; }
    /// <summary>The value; its shape never changes.</summary>
    public Tensor Value { get; }
    /// <summary>The accumulated gradient, same shape as <see cref="Value"/>; cleared by <see cref="ParameterSet.ZeroGrad"/>.</summary>
    public Tensor Grad { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Tensor.FormatShape(Shape)}";
}

/// <summary>
/// The parameters of a model: named tensors in a fixed order, whose values are one contiguous float array and whose
/// gradients are another, so that what works on all of them at once (an optimizer step, clearing the gradients, a
/// gradient all-reduce, an upload to a device) is one pass over one span (<see cref="Values"/>, <see cref="Gradients"/>).
/// Each <see cref="Parameter"/>'s value and gradient are views of those spans, in the order of <see cref="All"/>.
/// Every model exposes its parameters as one: <see cref="RecurrentLayer.Parameters"/> (an <see cref="RnnParameters"/>),
/// <see cref="Sequence.RecurrentSequenceModel.Parameters"/> (its own and its stack's) and
/// <see cref="Sequence.OutputRecurrentNetwork.Parameters"/>; <see cref="Save"/> and <see cref="Load"/> are the safetensors
/// checkpoint of every one of them.
/// </summary>
/// <remarks>
/// Thread-safety: passes that read the parameters (a layer's forward and backward passes, a sequence model's calls) may
/// run on several threads at once; gradients are added under a lock, one pass at a time, so concurrent backward passes
/// add up to the sum of their gradients. What replaces the values (<see cref="Load"/>, <see cref="SgdStep"/>,
/// <see cref="RnnParameters.Reset"/>) refuses to run while a pass is in flight, and a pass refuses to start while they run
/// (<see cref="InvalidOperationException"/> both ways); a layer's backward pass refuses a forward pass whose values were
/// replaced since. <see cref="ZeroGrad"/> waits for a backward pass in flight. Writing into the spans or tensors directly is
/// outside this protection: do it only while no pass is in flight, and not between a forward pass and its backward pass.
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
    /// <param name="metadata">Strings <see cref="Save"/> records in the file's <c>__metadata__</c> and <see cref="Load"/> checks: a file that
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
                    throw new ArgumentException($"parameters: '{entry.Name}' has the shape {Tensor.FormatShape(entry.Shape)}; expected non-negative dimensions.", "parameters");
                long count = entry.Shape.Contains(0) ? 0 : 1;
                foreach (int d in entry.Shape)
                {
                    // Both factors are below 2³¹ until the product passes the limit: no overflow.
                    count *= d;
                    if (count > Array.MaxLength)
                        throw new ArgumentOutOfRangeException("parameters", $"parameters: '{entry.Name}' {Tensor.FormatShape(entry.Shape)} has more elements than one array holds ({Array.MaxLength}; one flat span).");
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
                    var parameter = new Parameter(entry.Name, offsets[e], Tensor.View(values, offsets[e], entry.Shape!), Tensor.View(gradients, offsets[e], entry.Shape!));
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
        Values = new Tensor(values, values.Length);
        Gradients = new Tensor(gradients, gradients.Length);
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
    public Tensor Values { get; }

    /// <summary>Every gradient [P], in the order of <see cref="Values"/>: the storage the parameters' <see cref="Parameter.Grad"/>s view.</summary>
    public Tensor Gradients { get; }

    /// <summary>What <see cref="Save"/> records in the file's metadata and <see cref="Load"/> checks (see the constructor).</summary>
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
    /// Saves every value as a safetensors file under the parameters' names, in the order of <see cref="All"/>, with
    /// <see cref="Metadata"/> and <c>format: pt</c> in the file's metadata (atomically: a temporary file, then a rename).
    /// PyTorch loads it with <c>load_state_dict(load_file(path))</c> into a module whose parameters have these names.
    /// </summary>
    /// <remarks>Through a symbolic link the link's final target is replaced and the link kept; see <see cref="SafeTensors.Write"/>.</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be written (its folder is missing, the target is a folder, the disk is full);
    /// an existing file is left as it was.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder may not be written (permissions).</exception>
    /// <exception cref="InvalidOperationException">A value is NaN or infinite: <see cref="Load"/> refuses such files, so they are not written;
    /// or another thread is replacing the values.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Inside a pass, so no SGD step or Load changes the values between the check and the write.
        using var pass = EnterPass();
        foreach (var p in _parameters)
        {
            var values = p.Value.Span;
            int bad = Tensor.IndexOfNonFinite(values);
            if (bad >= 0)
                throw new InvalidOperationException($"parameter '{p.Name}' element {bad} is {values[bad]}; a checkpoint with non-finite values cannot be loaded again, so it is not saved.");
        }
        // format first, as PyTorch's save_file writes it (and as the committed files that PyTorch checked have it).
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        foreach (var (key, value) in _metadata) metadata[key] = value;
        SafeTensors.Write(path, _parameters.Select(p => KeyValuePair.Create(p.Name, p.Value)), metadata);
    }

    /// <summary>
    /// Loads every value from a safetensors file, such as one written by <see cref="Save"/> or by PyTorch's
    /// <c>save_file(module.state_dict(), path)</c>. Strict: the file must hold exactly these names, each with its shape and
    /// finite values, and record no other value under a key of <see cref="Metadata"/>. Nothing is changed unless the whole
    /// file is valid. Gradients are left as they are.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, extra, misshaped or not finite, the dtype is not F32, the metadata
    /// disagrees (a file saved from another cell of the same shapes), or the file is malformed; the message names the file and the tensor.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be read: it is missing (<see cref="FileNotFoundException"/>), or a folder.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read (permissions).</exception>
    /// <exception cref="InvalidOperationException">A pass that reads these parameters is running on another thread.</exception>
    /// <exception cref="ObjectDisposedException">The model these parameters belong to was disposed and gave its stack back.</exception>
    /// <remarks>A layer's forward pass run before Load cannot be back-propagated after it (<see cref="RecurrentLayer.Backward"/> throws).</remarks>
    public void Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ThrowIfReleased();
        var tensors = SafeTensors.Read(path, out var metadata);
        foreach (var (key, value) in _metadata)
            if (metadata.TryGetValue(key, out var saved) && saved != value)
                throw new InvalidDataException($"{path}: metadata '{key}' is {saved}, but {_description} has {value}: the names and shapes fit, the computation would not.");
        string Expected() => string.Join(", ", _parameters.Select(q => q.Name));
        foreach (var p in _parameters)
        {
            if (!tensors.TryGetValue(p.Name, out var t))
                throw new InvalidDataException($"{path}: tensor '{p.Name}' is missing; {_description} needs {Expected()}.");
            if (!t.HasShape([.. p.Shape]))
                throw new InvalidDataException($"{path}: tensor '{p.Name}' has shape {Tensor.FormatShape(t.Shape)}; expected {Tensor.FormatShape(p.Shape)}.");
            var values = t.Span;
            int bad = Tensor.IndexOfNonFinite(values);
            if (bad >= 0) throw new InvalidDataException($"{path}: tensor '{p.Name}' element {bad} is {values[bad]}; expected finite values.");
        }
        foreach (var name in tensors.Keys)
            if (!_byName.ContainsKey(name))
                throw new InvalidDataException($"{path}: tensor '{name}' is not a parameter of {_description}; expected only {Expected()}.");
        using var write = BeginWrite(nameof(Load));
        foreach (var p in _parameters) tensors[p.Name].Span.CopyTo(p.Value.Span);
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
