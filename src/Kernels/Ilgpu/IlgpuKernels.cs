using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// Every kernel of <see cref="ElementwiseKernels"/>, <see cref="GemmKernels"/>, <see cref="ReductionKernels"/>,
/// <see cref="SequenceKernels"/>, <see cref="PackingKernels"/> and the cells' kernel classes (through <see cref="Load{TLauncher}"/>), loaded for one
/// accelerator on first use and then cached for its lifetime (compiling a kernel costs milliseconds to seconds;
/// launching a loaded one, microseconds).
/// </summary>
/// <remarks>Thread-safety: loading and caching are locked, so several threads may ask for kernels; launching them shares the accelerator's stream. Lifetime: not IDisposable; the loaded kernels belong to the accelerator and are freed when it is disposed, after which they must not be launched.</remarks>
public sealed class IlgpuKernels(Accelerator accelerator)
{
    private readonly Accelerator _accelerator = accelerator;
    private readonly Dictionary<(string, Type?), Delegate> _generic = [];
    private readonly Dictionary<MethodInfo, Delegate> _byMethod = [];

    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? _tiledSgemm;
    private Action<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? _simpleSgemm;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ColumnSumShape>? _columnSums;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ColumnSumShape>? _columnPartialSums;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int>? _broadcastRows;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>? _gatherRowsAdd;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>? _scatterRowsAdd;
    private Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, float>? _softmaxCrossEntropyRows;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>? _softmaxCrossEntropyCountsRows;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>? _squaredErrorPartials;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, float>? _squaredErrorMaskedPartials;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, int>? _argMaxRows;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>? _gatherRows;
    private Action<Index1D, ArrayView<float>, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>? _gatherPreviousHidden;

    /// <summary>
    /// A kernel loaded by <paramref name="load"/> on first use and cached by its method: how each cell's file
    /// (<see cref="Cells.DeviceCells"/>) loads its own kernels, so a new cell adds nothing here.
    /// </summary>
    public TLauncher Load<TLauncher>(Delegate kernel, Func<Accelerator, TLauncher> load) where TLauncher : Delegate
    {
        lock (_byMethod)
        {
            if (!_byMethod.TryGetValue(kernel.Method, out var launcher))
                _byMethod[kernel.Method] = launcher = load(_accelerator);
            return (TLauncher)launcher;
        }
    }

    /// <summary><see cref="ElementwiseKernels.Unary{TOp}"/>.</summary>
    public Action<Index2D, ArrayView<float>, Block, ArrayView<float>, Block> Unary<TOp>() where TOp : struct, IUnaryOp =>
        Cached(nameof(Unary), typeof(TOp), () =>
            _accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, Block, ArrayView<float>, Block>(ElementwiseKernels.Unary<TOp>));

    /// <summary><see cref="ElementwiseKernels.Binary{TOp}"/>.</summary>
    public Action<Index2D, ArrayView<float>, Block, ArrayView<float>, Block, ArrayView<float>, Block> Binary<TOp>() where TOp : struct, IBinaryOp =>
        Cached(nameof(Binary), typeof(TOp), () =>
            _accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, Block, ArrayView<float>, Block, ArrayView<float>, Block>(ElementwiseKernels.Binary<TOp>));

    /// <summary><see cref="GemmKernels.TiledSgemm"/>; launch it through <see cref="IlgpuGemm"/>.</summary>
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape> TiledSgemm =>
        _tiledSgemm ??= _accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmKernels.TiledSgemm);

    /// <summary><see cref="GemmKernels.SimpleSgemm"/>; launch it through <see cref="IlgpuGemm"/>.</summary>
    public Action<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape> SimpleSgemm =>
        _simpleSgemm ??= _accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmKernels.SimpleSgemm);

    /// <summary><see cref="ReductionKernels.ColumnSums"/>.</summary>
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ColumnSumShape> ColumnSumsKernel =>
        _columnSums ??= _accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ColumnSumShape>(ReductionKernels.ColumnSums);

    /// <summary><see cref="ReductionKernels.ColumnPartialSums"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ColumnSumShape> ColumnPartialSumsKernel =>
        _columnPartialSums ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ColumnSumShape>(ReductionKernels.ColumnPartialSums);

    /// <summary><see cref="SequenceKernels.BroadcastRows"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, int> BroadcastRows =>
        _broadcastRows ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(SequenceKernels.BroadcastRows);

    /// <summary><see cref="SequenceKernels.GatherRowsAdd"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> GatherRowsAdd =>
        _gatherRowsAdd ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(SequenceKernels.GatherRowsAdd);

    /// <summary>
    /// <see cref="SequenceKernels.ScatterRowsAdd{TAdd}"/> with CUDA's hardware float add, and a compare-exchange on the
    /// bits elsewhere: ILGPU builds the float add there from a loop that compares floats and never ends on a NaN.
    /// </summary>
    public Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> ScatterRowsAdd =>
        _scatterRowsAdd ??= _accelerator.AcceleratorType == AcceleratorType.Cuda
            ? _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(SequenceKernels.ScatterRowsAdd<HardwareAtomicAdd>)
            : _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(SequenceKernels.ScatterRowsAdd<BitCompareExchangeAdd>);

    /// <summary><see cref="SequenceKernels.ActivationBackwardPartialSums{TActivation}"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ColumnSumShape> ActivationBackwardPartialSums<TActivation>()
        where TActivation : struct, IActivation =>
        Cached(nameof(ActivationBackwardPartialSums), typeof(TActivation), () =>
            _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ColumnSumShape>(SequenceKernels.ActivationBackwardPartialSums<TActivation>));

    /// <summary><see cref="SequenceKernels.SoftmaxCrossEntropyRows"/>: one group per row.</summary>
    public Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, float> SoftmaxCrossEntropyRows =>
        _softmaxCrossEntropyRows ??= _accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, int, float>(SequenceKernels.SoftmaxCrossEntropyRows);

    /// <summary><see cref="SequenceKernels.SoftmaxCrossEntropyCountsRows"/>: one group per row.</summary>
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float> SoftmaxCrossEntropyCountsRows =>
        _softmaxCrossEntropyCountsRows ??= _accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(SequenceKernels.SoftmaxCrossEntropyCountsRows);

    /// <summary><see cref="SequenceKernels.SquaredErrorPartials"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> SquaredErrorPartials =>
        _squaredErrorPartials ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(SequenceKernels.SquaredErrorPartials);

    /// <summary><see cref="SequenceKernels.SquaredErrorMaskedPartials"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, float> SquaredErrorMaskedPartials =>
        _squaredErrorMaskedPartials ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, float>(
            SequenceKernels.SquaredErrorMaskedPartials);

    /// <summary><see cref="SequenceKernels.ArgMaxRows"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<int>, int> ArgMaxRows =>
        _argMaxRows ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int>(SequenceKernels.ArgMaxRows);

    /// <summary><see cref="PackingKernels.GatherRows"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> GatherRows =>
        _gatherRows ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(PackingKernels.GatherRows);

    /// <summary><see cref="PackingKernels.GatherPreviousHidden"/>.</summary>
    public Action<Index1D, ArrayView<float>, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> GatherPreviousHidden =>
        _gatherPreviousHidden ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(
            PackingKernels.GatherPreviousHidden);

    /// <summary>Partial rows a tall column sum is first reduced to.</summary>
    public const int ColumnSumChunks = 64;

    /// <summary>Floats of scratch <see cref="ColumnSums"/> needs for <paramref name="cols"/> columns.</summary>
    public static long ColumnSumScratchLength(int cols) => (long)ColumnSumChunks * cols;

    /// <summary>
    /// sums[j] (+)= Σ_r matrix[r·ld + j] for a [rows, cols] matrix. Tall matrices (more rows than
    /// <see cref="ColumnSumChunks"/>) are first reduced to at most that many partial rows in
    /// <paramref name="scratch"/> (<see cref="ColumnSumScratchLength"/> floats) by <see cref="ReductionKernels.ColumnPartialSums"/>;
    /// <see cref="ReductionKernels.ColumnSums"/> then adds those up (or the rows themselves when few).
    /// </summary>
    public void ColumnSums(ArrayView<float> matrix, int rows, int cols, int ld, ArrayView<float> sums, bool accumulate, ArrayView<float> scratch)
    {
        if (cols == 0) return;
        int group = Math.Min(256, _accelerator.MaxNumThreadsPerGroup);
        var config = new KernelConfig(new Index1D(cols), new Index1D(group));
        if (rows <= ColumnSumChunks)
        {
            ColumnSumsKernel(config, matrix, sums, new ColumnSumShape(rows, cols, ld, accumulate));
            return;
        }
        if (scratch.Length < ColumnSumScratchLength(cols))
            throw new ArgumentException($"scratch: expected at least {ColumnSumScratchLength(cols)} floats for {cols} columns, got {scratch.Length}.", nameof(scratch));
        int rowsPerChunk = (rows + ColumnSumChunks - 1) / ColumnSumChunks;
        int chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        ColumnPartialSumsKernel(new Index1D(chunks * cols), matrix, scratch, new ColumnSumShape(rows, cols, ld, false, rowsPerChunk));
        ColumnSumsKernel(config, scratch, sums, new ColumnSumShape(chunks, cols, cols, accumulate));
    }

    private T Cached<T>(string name, Type? type, Func<T> load) where T : Delegate
    {
        lock (_generic)
        {
            if (!_generic.TryGetValue((name, type), out var kernel))
                _generic[(name, type)] = kernel = load();
            return (T)kernel;
        }
    }

    /// <summary>A kernel method as ILGPU compiles it: generic kernels closed over one operation type.</summary>
    /// <remarks>Thread-safety: immutable (init-only), so safe to share once made. Lifetime: nothing to free.</remarks>
    /// <param name="Name">Class.Method or Class.Method&lt;Op&gt;.</param>
    /// <param name="Method">The closed method.</param>
    /// <param name="ExplicitlyGrouped">Whether it is launched with a <see cref="KernelConfig"/> (group size and shared memory of its own).</param>
    public sealed record KernelMethod(string Name, MethodInfo Method, bool ExplicitlyGrouped);

    /// <summary>
    /// Every kernel of the library, found by reflection so a new kernel cannot be left out: each public static method of
    /// every static class of this assembly whose name ends in <c>Kernels</c> (the families here and each cell's, such as
    /// <see cref="Cells.LstmKernels"/>); generic ones closed over every operation struct of this assembly that meets
    /// their constraint.
    /// </summary>
    public static IReadOnlyList<KernelMethod> All()
    {
        var classes = typeof(IlgpuKernels).Assembly.GetTypes()
            .Where(t => t.IsClass && t.IsAbstract && t.IsSealed && !t.IsNested && t.Name.EndsWith("Kernels", StringComparison.Ordinal)
                && (t.Namespace ?? "").StartsWith(typeof(IlgpuKernels).Namespace!, StringComparison.Ordinal))
            .OrderBy(t => t.FullName, StringComparer.Ordinal);
        var structs = typeof(IlgpuKernels).Assembly.GetTypes().Where(t => t.IsValueType && !t.IsGenericType).ToArray();
        var result = new List<KernelMethod>();
        foreach (var type in classes)
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                var parameters = method.GetParameters();
                bool explicitlyGrouped = parameters.Length == 0 || !typeof(IIndex).IsAssignableFrom(parameters[0].ParameterType);
                if (!method.IsGenericMethodDefinition)
                {
                    result.Add(new KernelMethod($"{type.Name}.{method.Name}", method, explicitlyGrouped));
                    continue;
                }
                var constraint = method.GetGenericArguments()[0].GetGenericParameterConstraints().Single(c => c.IsInterface);
                foreach (var op in structs.Where(constraint.IsAssignableFrom))
                    result.Add(new KernelMethod($"{type.Name}.{method.Name}<{op.Name}>", method.MakeGenericMethod(op), explicitlyGrouped));
            }
        return result;
    }
}
