using System.Diagnostics;
using Recurrent;

namespace Recurrent.Bench;

internal static class Program
{
    private static int Main()
    {
        // Until the report lands: time the reference backend on a small shape, every cell.
        const int steps = 20, batch = 8, input = 32, hidden = 32;
        Console.WriteLine($"Recurrent reference backend, T={steps} N={batch} I={input} H={hidden}");
        Console.WriteLine($"{"cell",-16} {"forward ms",12} {"fwd+bwd ms",12}");
        var random = new Random(1);
        var x = new Tensor(Enumerable.Range(0, steps * batch * input).Select(_ => (float)random.NextDouble()).ToArray(), steps, batch, input);
        foreach (var cell in Enum.GetValues<CellKind>())
        {
            RecurrentLayer layer = cell switch
            {
                CellKind.Lstm => new Lstm(input, hidden),
                CellKind.GruResetAfter => new Gru(input, hidden, GruVariant.ResetAfter),
                CellKind.GruResetBefore => new Gru(input, hidden, GruVariant.ResetBefore),
                CellKind.RnnRelu => new ElmanRnn(input, hidden, RnnActivation.Relu),
                _ => new ElmanRnn(input, hidden),
            };
            var inference = Stopwatch.StartNew();
            layer.Forward(x);
            inference.Stop();
            var training = Stopwatch.StartNew();
            using (var result = layer.Forward(x, keepForBackward: true))
                layer.Backward(result, result.Output);
            training.Stop();
            Console.WriteLine($"{cell,-16} {inference.Elapsed.TotalMilliseconds,12:F2} {training.Elapsed.TotalMilliseconds,12:F2}");
        }
        return 0;
    }
}
