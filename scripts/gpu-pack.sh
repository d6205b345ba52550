#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh --prebuilt needs into .gpu/ (ignored by git), so that a GPU
# machine whose device time is short runs programs built here instead of building them there:
# the unit tests, bench/gpu_bench and bench/engine_bench from build/ (CUDA is compiled into every Berth build,
# issue #15), the shared libraries they need that are neither the C/C++ runtime nor torch's
# (the GPU machine's own pip torch, the same version, supplies libtorch), the source root they
# were compiled with (tests find their data by absolute paths), and SST-2 validation (872
# sentences) when ../shared/data has it. Optionally a second gpu_bench, built from an earlier
# commit, for a before/after in the same run.
#
# usage: scripts/gpu-pack.sh [--build DIR] [--before-bench FILE] [OUT_DIR]   (default: .gpu)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
before=
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --before-bench) before=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-pack.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
out=${1:-$here/.gpu}
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/data"
bins=("$build/tests/berth_unit_tests" "$build/bench/gpu_bench" "$build/bench/engine_bench")
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "gpu-pack.sh: $b is missing: build it first (cmake --build build)" >&2; exit 2; }
  cp "$b" "$out/bin/"
done
[ -n "$before" ] && cp "$before" "$out/bin/gpu_bench_before"
# The C and C++ runtime stay the GPU machine's own (the binaries need GLIBC 2.34 at most).
runtime='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s)\.'
for b in "$out"/bin/*; do
  ldd "$b" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ "$name" =~ $runtime ]] && continue
  [[ "$path" == */site-packages/* ]] && continue  # torch and its CUDA libraries
  cp -L "$path" "$out/lib/$name"
done
echo "$here" >"$out/SOURCE_ROOT"
[ -f "$here/../shared/data/sst2/validation.tsv" ] && cp "$here/../shared/data/sst2/validation.tsv" "$out/data/sst2-validation.tsv"
echo "gpu-pack: $(ls "$out/bin" | wc -l) programs, $(ls "$out/lib" | wc -l) libraries, $(du -sh "$out" | cut -f1) in $out"
