#!/usr/bin/env bash
# The ILGPU backend on a CUDA machine: parity against the reference, then timings beside PyTorch/cuDNN.
#
# Two halves, run on two machines:
#
#   scripts/gpu-check.sh build [ARCHIVE]
#       Here (has .NET): publishes scripts/gpu-check as a self-contained linux-x64 program and packs it with this
#       script and gpu_check_torch.py into ARCHIVE (default artifacts/gpu-check.tar.xz, about 25 MiB).
#
#   scripts/gpu-check.sh run [ARCHIVE|DIR] [--device cuda|cpu] [--shapes standard,small|tiny] [--reps N]
#       There (has an NVIDIA GPU, Python with PyTorch and cuDNN, no .NET): unpacks ARCHIVE (default
#       artifacts/gpu-check.tar.xz) or uses an unpacked DIR, runs the .NET check (CUDA parity of every cell, fused and
#       unfused, then LSTM/GRU forward and forward+backward timings), runs PyTorch's nn.LSTM/nn.GRU on the same shapes,
#       and prints one table. Exits non-zero when a parity check fails.
#       `run --device cpu --shapes tiny --reps 3` is the smoke test for a machine without a GPU (ILGPU's CPU
#       accelerator, PyTorch on the CPU if it is installed).
#
# ILGPU finds the CUDA driver (libcuda.so) on the loader's path; for cuBLAS, ILGPU.Algorithms looks for
# libcublas.so.12, .11 or .10, so `run` adds the directory of pip's nvidia-cublas (shipped with PyTorch) to
# LD_LIBRARY_PATH. Without libcublas the check still runs, on the tiled GEMM kernel, and says so.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command="${1:-}"
shift || true

build() {
  local root archive stage
  root="$(cd "$here/.." && pwd)"
  archive="${1:-$root/artifacts/gpu-check.tar.xz}"
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  mkdir -p "$stage/gpu-check" "$(dirname "$archive")"
  dotnet publish "$root/scripts/gpu-check/GpuCheck.csproj" -c Release -r linux-x64 --self-contained \
    -p:DebugType=none -p:GenerateDocumentationFile=false -o "$stage/gpu-check/bin" >/dev/null
  cp "$here/gpu-check.sh" "$here/gpu_check_torch.py" "$here/teacher_forcing_torch.py" "$stage/gpu-check/"
  tar -C "$stage" -cf - gpu-check | xz -T0 -6 >"$archive"
  echo "$archive: $(du -h "$archive" | cut -f1)"
}

# Adds pip's libcublas (and torch's own lib directory) to the loader path so that ILGPU.Algorithms can load cuBLAS.
add_cublas_path() {
  local dirs
  dirs="$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
found = []
for root in roots:
    for pattern in ("nvidia/cublas/lib", "torch/lib"):
        for d in glob.glob(os.path.join(root, pattern)):
            if glob.glob(os.path.join(d, "libcublas.so.*")):
                found.append(d)
print(":".join(found))
PY
)"
  if [ -n "$dirs" ]; then
    export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "libcublas from: $dirs"
  else
    echo "no libcublas.so.* found beside PyTorch; ILGPU uses the system's if any, else its tiled GEMM"
  fi
}

run() {
  local source="${1:-}" dir device="cuda" shapes="standard,small" reps="20" work status=0
  if [ -n "$source" ] && [ "${source#--}" = "$source" ]; then shift; else source="$here/../artifacts/gpu-check.tar.xz"; fi
  while [ $# -gt 0 ]; do
    case "$1" in
      --device) device="$2"; shift 2 ;;
      --shapes) shapes="$2"; shift 2 ;;
      --reps) reps="$2"; shift 2 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  if [ -d "$source" ]; then
    dir="$source"
  else
    tar -C "$work" -xJf "$source"
    dir="$work/gpu-check"
  fi
  [ "$device" = "cuda" ] && add_cublas_path
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

  echo "== ILGPU (.NET) =="
  "$dir/bin/gpu-check" --device "$device" --shapes "$shapes" --reps "$reps" --csv "$work/ilgpu.csv" || status=$?

  echo "== PyTorch =="
  local torch_device="$device"
  if python3 -c "import torch" 2>/dev/null; then
    python3 "$dir/gpu_check_torch.py" --device "$torch_device" --shapes "$shapes" --reps "$reps" --csv "$work/torch.csv" || true
    # The teacher-forced models in PyTorch, parallel and as a loop over t, beside the ILGPU sequence timings above.
    [ "$shapes" = tiny ] || python3 "$dir/teacher_forcing_torch.py" --device "$torch_device" --reps "$reps" || true
  else
    echo "python3 with torch not found: no PyTorch column"
  fi

  echo "== Table (median ms) =="
  python3 - "$work/ilgpu.csv" "$work/torch.csv" <<'PY'
import csv, os, sys
times, impls = {}, []
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    for impl, cell, shape, pas, ms in csv.reader(open(path)):
        times[(cell, shape, pas, impl)] = float(ms)
        if impl not in impls:
            impls.append(impl)
keys = sorted({k[:3] for k in times}, key=lambda k: (k[1] != "standard", k[1], k[0], k[2]))
fused = next((i for i in impls if i.startswith("ilgpu") and "unfused" not in i and "no-copies" not in i), None)
unfused = next((i for i in impls if i.endswith("-unfused")), None)
resident = next((i for i in impls if i.startswith("ilgpu") and "unfused" not in i and i.endswith("no-copies")), None)
torch = next((i for i in impls if i.startswith("torch")), None)
width = max([20] + [len(i) for i in impls])
header = f"{'cell':<15} {'shape':<9} {'pass':<8}" + "".join(f" {i:>{width}}" for i in impls)
header += f" {'unfused/fused':>14}" + (f" {'fused/torch':>12} {'no-copies/torch':>16}" if torch else "")
print(header)
for k in keys:
    row = f"{k[0]:<15} {k[1]:<9} {k[2]:<8}"
    for i in impls:
        v = times.get(k + (i,))
        row += f" {v:>{width}.3f}" if v is not None else f" {'-':>{width}}"
    f, u, r, t = (times.get(k + (i,)) if i else None for i in (fused, unfused, resident, torch))
    row += f" {u / f:>14.2f}" if f and u else f" {'-':>14}"
    if torch:
        row += f" {f / t:>12.2f}" if f and t else f" {'-':>12}"
        row += f" {r / t:>16.2f}" if r and t else f" {'-':>16}"
    print(row)
PY
  return "$status"
}

case "$command" in
  build) build "$@" ;;
  run) run "$@" ;;
  *) sed -n '2,25p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
