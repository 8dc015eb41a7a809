#!/usr/bin/env bash
# The consumer check: packs Recurrent and Recurrent.Kernels with `dotnet pack` into a folder feed, then builds and runs
# tests/Consumer as a project outside this repository would: copied to a temporary folder (no Directory.Build.props,
# no central package versions, no project reference), restoring Recurrent from the feed only and ILGPU from nuget.org
# into a package folder of its own, built and run with a PATH that holds dotnet and nothing else (so no CMake or
# compiler can take part). The program compares an LSTM's forward and backward pass with PyTorch's numbers.
#
#   scripts/consumer-check.sh [--keep]     --keep leaves the temporary folder (its path is printed) for a look
#
# Exits non-zero when packing, restoring, building or the comparison fails. .ci/run runs it after the tests.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=false
[ "${1:-}" = "--keep" ] && keep=true

work="$(mktemp -d "${TMPDIR:-/tmp}/recurrent-consumer.XXXXXX")"
if $keep; then echo "work folder: $work"; else trap 'rm -rf "$work"' EXIT; fi
consumer="$work/consumer"
mkdir -p "$consumer/data" "$work/bin"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "== dotnet pack -c Release"
dotnet pack "$root/Recurrent.sln" -c Release -o "$consumer/feed" -v quiet -nologo
shopt -s nullglob
packages=("$consumer/feed"/Recurrent.[0-9]*.nupkg)
[ ${#packages[@]} -eq 1 ] || { echo "expected one Recurrent package in the feed, found: ${packages[*]:-none}" >&2; exit 1; }
version="$(basename "${packages[0]}" .nupkg)"
version="${version#Recurrent.}"

# What each package must hold; every file is listed.
expect() {
  local package="$1" listing
  shift
  [ -f "$consumer/feed/$package" ] || { echo "dotnet pack made no $package" >&2; exit 1; }
  listing="$(unzip -Z1 "$consumer/feed/$package" | grep -v -e '^_rels/' -e '^package/' -e '^\[Content_Types\]')"
  echo "  $package ($(stat -c %s "$consumer/feed/$package") bytes): $(echo $listing)"
  for file in "$@"; do
    grep -qxF "$file" <<<"$listing" || { echo "$package lacks $file" >&2; exit 1; }
  done
}
expect "Recurrent.$version.nupkg" Recurrent.nuspec README.md LICENSE lib/net10.0/Recurrent.dll lib/net10.0/Recurrent.xml
expect "Recurrent.$version.snupkg" lib/net10.0/Recurrent.pdb
expect "Recurrent.Kernels.$version.nupkg" Recurrent.Kernels.nuspec README.md LICENSE lib/net10.0/Recurrent.Kernels.dll \
  lib/net10.0/Recurrent.Kernels.xml runtimes/linux-x64/native/librecurrent_native.so
expect "Recurrent.Kernels.$version.snupkg" lib/net10.0/Recurrent.Kernels.pdb

cp "$root/tests/Consumer/Consumer.csproj" "$root/tests/Consumer/Program.cs" "$root/tests/Consumer/nuget.config" "$consumer/"
cp "$root"/tests/Recurrent.Tests/Data/pytorch/lstm_l2_bi_f32.{params,data}.safetensors "$consumer/data/"

# Only dotnet on the PATH: nothing the consumer builds may call CMake, a compiler or anything else of this machine.
ln -s "$(command -v dotnet)" "$work/bin/dotnet"
export NUGET_PACKAGES="$consumer/.packages"
only_dotnet=(env PATH="$work/bin")

echo "== restore and build the consumer against Recurrent $version (PATH=$work/bin)"
"${only_dotnet[@]}" dotnet build "$consumer/Consumer.csproj" -c Release -p:RecurrentVersion="$version" -v quiet -nologo
bin="$consumer/bin/Release/net10.0"
native="$bin/runtimes/linux-x64/native/librecurrent_native.so"
[ -f "$native" ] || { echo "the build did not place the native library at ${native#"$work/"}" >&2; exit 1; }
echo "  ${native#"$consumer/"} came with the package"

echo "== run"
"${only_dotnet[@]}" dotnet "$bin/consumer-check.dll" "$consumer/data"
