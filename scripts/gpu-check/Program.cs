using Recurrent.Bench;
using Recurrent.Tests;

return IlgpuGpuCheck.Run(args, Tolerances.Float32.Absolute, Tolerances.Float32.Relative);
