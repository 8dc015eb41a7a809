using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace Recurrent.Kernels.Ilgpu;

/// <summary>
/// Every kernel of <see cref="CellKernels"/>, <see cref="ElementwiseKernels"/>, <see cref="GemmKernels"/>,
/// <see cref="ReductionKernels"/> and <see cref="SequenceKernels"/>, loaded for one accelerator on first use and then cached for its lifetime
/// (compiling a kernel costs milliseconds to seconds; launching a loaded one, microseconds).
/// </summary>
public sealed class IlgpuKernels(Accelerator accelerator)
{
    private readonly Accelerator _accelerator = accelerator;
    private readonly Dictionary<(string, Type?), Delegate> _generic = [];

    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _lstmForward;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _lstmBackward;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruAfterForward;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruAfterBackward;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruBeforeGates;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruBeforeCandidate;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruBeforeBackwardGates;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>? _gruBeforeBackwardReset;
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
    private Action<Index1D, ArrayView<float>, ArrayView<int>, int>? _argMaxRows;

    /// <summary><see cref="CellKernels.LstmForward"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> LstmForward =>
        _lstmForward ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.LstmForward);

    /// <summary><see cref="CellKernels.LstmBackward"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> LstmBackward =>
        _lstmBackward ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.LstmBackward);

    /// <summary><see cref="CellKernels.GruResetAfterForward"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetAfterForward =>
        _gruAfterForward ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetAfterForward);

    /// <summary><see cref="CellKernels.GruResetAfterBackward"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetAfterBackward =>
        _gruAfterBackward ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetAfterBackward);

    /// <summary><see cref="CellKernels.GruResetBeforeGates"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetBeforeGates =>
        _gruBeforeGates ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetBeforeGates);

    /// <summary><see cref="CellKernels.GruResetBeforeCandidate"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetBeforeCandidate =>
        _gruBeforeCandidate ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetBeforeCandidate);

    /// <summary><see cref="CellKernels.GruResetBeforeBackwardGates"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetBeforeBackwardGates =>
        _gruBeforeBackwardGates ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetBeforeBackwardGates);

    /// <summary><see cref="CellKernels.GruResetBeforeBackwardReset"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> GruResetBeforeBackwardReset =>
        _gruBeforeBackwardReset ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.GruResetBeforeBackwardReset);

    /// <summary><see cref="CellKernels.RnnForward{TActivation}"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> RnnForward<TActivation>()
        where TActivation : struct, IActivation =>
        Cached(nameof(RnnForward), typeof(TActivation), () =>
            _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.RnnForward<TActivation>));

    /// <summary><see cref="CellKernels.RnnBackward{TActivation}"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape> RnnBackward<TActivation>()
        where TActivation : struct, IActivation =>
        Cached(nameof(RnnBackward), typeof(TActivation), () =>
            _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepShape>(CellKernels.RnnBackward<TActivation>));

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

    /// <summary><see cref="SequenceKernels.ArgMaxRows"/>.</summary>
    public Action<Index1D, ArrayView<float>, ArrayView<int>, int> ArgMaxRows =>
        _argMaxRows ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int>(SequenceKernels.ArgMaxRows);

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
    /// <param name="Name">Class.Method or Class.Method&lt;Op&gt;.</param>
    /// <param name="Method">The closed method.</param>
    /// <param name="ExplicitlyGrouped">Whether it is launched with a <see cref="KernelConfig"/> (group size and shared memory of its own).</param>
    public sealed record KernelMethod(string Name, MethodInfo Method, bool ExplicitlyGrouped);

    /// <summary>
    /// Every kernel of the library, found by reflection so a new kernel cannot be left out: each public static method of
    /// the kernel classes; generic ones closed over every operation struct of this assembly that meets their constraint.
    /// </summary>
    public static IReadOnlyList<KernelMethod> All()
    {
        Type[] classes = [typeof(CellKernels), typeof(ElementwiseKernels), typeof(GemmKernels), typeof(ReductionKernels), typeof(SequenceKernels)];
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
