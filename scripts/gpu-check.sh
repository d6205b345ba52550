#!/usr/bin/env bash
# The GPU run of issues #10 and #18, on a machine with an NVIDIA GPU and a pip PyTorch (CUDA) but
# no apt: runs the device tests (Devices/*: fixture logits on CUDA fp32 within 1e-4, bf16
# labels, the training trace within 1e-3), then bench/gpu_bench and bench/hf_baseline.py on the
# same card, and prints one table: Berth and Hugging Face side by side, each figure's TFLOP/s and
# its share of the card's bf16 matrix-product rate measured in the same run, against the
# targets of issue #18.
#
# Two ways to get the programs:
#   --prebuilt DIR  run what scripts/gpu-pack.sh packed here (programs, their libraries, the
#                   source root); nothing is built there, so the run fits a few minutes;
#   otherwise       build core, its unit tests and bench/ with ninja on all cores against the
#                   machine's torch (-DBERTH_BUILD_SERVER=OFF) with the .deb files
#                   scripts/fetch-debs.sh downloaded (unpacked into a prefix, never into /).
#
# usage: scripts/gpu-check.sh [--prebuilt DIR] [--debs DIR] [--device cuda] [--steps N] [--sst2 FILE]
#                             [--configure-only]
#   PYTHON (python3: the one with torch and transformers), PREFIX (/tmp/berth-prefix), GPU_BUILD_DIR (build-gpu), OUT (results), TORCH_DIR (default:
#   the pip torch's cmake directory); BENCH_ARGS, BENCH_ARGS_BEFORE, HF_ARGS: more arguments for
#   gpu_bench, gpu_bench_before and hf_baseline.py (a quick CPU check: --device cpu with
#   BENCH_ARGS="--model config:bert-tiny --train-batches 4" HF_ARGS="--layers 2 --hidden 128 --train-batches 4"
#   ENGINE_ARGS="--model config:bert-tiny"); ENGINE_RUNS (2): bench/engine_bench runs, bf16, for the spread;
#   HF_COMPILE (1; 0 skips the torch.compile peer), HF_COMPILE_TIMEOUT (360 s), HF_COMPILE_ARGS
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
debs=$here/.debs
device=cuda
steps=20
configure_only=0
prebuilt=
sst2=$here/data/sst2-sample/validation.tsv
while [ $# -gt 0 ]; do
  case "$1" in
    --prebuilt) prebuilt=$(cd "$2" && pwd); shift 2 ;;
    --debs) debs=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --sst2) sst2=$2; shift 2 ;;
    --configure-only) configure_only=1; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python3}
prefix=${PREFIX:-/tmp/berth-prefix}
build=${GPU_BUILD_DIR:-$here/build-gpu}
out=${OUT:-$build/results}
start=$(date +%s)
phase() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

if [ -n "$prebuilt" ]; then
  phase "prebuilt programs from $prebuilt"
  bin=$prebuilt/bin
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  run() { LD_LIBRARY_PATH=$prebuilt/lib:$torch_lib:${LD_LIBRARY_PATH:-} "$@"; }
  # The tests find their data under the source root they were compiled in.
  src=$(cat "$prebuilt/SOURCE_ROOT")
  if [ "$src" != "$here" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$here" "$src"; fi
  [ -f "$prebuilt/data/sst2-validation.tsv" ] && [ "$sst2" = "$here/data/sst2-sample/validation.tsv" ] &&
    sst2=$prebuilt/data/sst2-validation.tsv
  run "$bin/gpu_bench" --help >/dev/null || { echo "gpu-check: the prebuilt programs do not start here" >&2; exit 2; }
else
  phase "unpack $(ls "$debs"/*.deb 2>/dev/null | wc -l) packages into $prefix"
  [ -n "$(ls "$debs"/*.deb 2>/dev/null)" ] || { echo "no .deb files in $debs: run scripts/fetch-debs.sh first" >&2; exit 2; }
  mkdir -p "$prefix"
  for f in "$debs"/*.deb; do
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" "$prefix"; else (cd "$prefix" && ar p "$f" data.tar.xz | tar -xJ); fi
  done
  lib=$prefix/usr/lib/x86_64-linux-gnu
  # Only Berth's own programs (and pkgconf) run with the unpacked libraries: the machine's tools
  # (python3, cmake, the compiler) keep their own.
  run() { LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-} "$@"; }
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$lib" "$prefix/usr/bin/pkgconf" >"$prefix/pkg-config"
  chmod +x "$prefix/pkg-config"
  export PKG_CONFIG_PATH=$lib/pkgconfig:$prefix/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$prefix
  export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$prefix/usr/share/pkgconfig

  phase "configure against ${TORCH_DIR:-$("$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')}"
  torch_dir=${TORCH_DIR:-$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch}
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_BUILD_SERVER=OFF \
    -DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$prefix/usr" -DPKG_CONFIG_EXECUTABLE="$prefix/pkg-config" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$lib" -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-rpath-link,$lib" >/dev/null

  [ "$configure_only" = 1 ] && { phase "configured (--configure-only)"; exit 0; }
  phase "build ($(nproc) cores)"
  # (with the libraries: the build lists the tests by running the test binary)
  run cmake --build "$build" -j "$(nproc)" --target berth_unit_tests gpu_bench berth >/dev/null
  mkdir -p "$build/bin" && ln -sf "$build/tests/berth_unit_tests" "$build/bench/gpu_bench" "$build/bin/"
  bin=$build/bin
fi

phase "device tests"
mkdir -p "$out"
tests_ok=1
run "$bin/berth_unit_tests" --gtest_filter='Devices/*' 2>&1 | tee "$out/device_tests.txt" | grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) ' || true
grep -q '^\[  FAILED  \]' "$out/device_tests.txt" && tests_ok=0
# On a GPU machine a skipped CUDA instance means CUDA did not load (the programs load LibTorch's
# CUDA half at run time, LoadCudaLibraries): that is a failure here, not a skip.
if [ "$device" != cpu ] && grep -q '^\[  SKIPPED \]' "$out/device_tests.txt"; then
  echo "gpu-check: CUDA device tests were skipped on a GPU machine: CUDA did not load" >&2
  tests_ok=0
fi

phase "Berth benchmark on $device"
# A benchmark that fails is reported and the others still run (one device run gives every figure).
benches_ok=1
# shellcheck disable=SC2086  # BENCH_ARGS / HF_ARGS: extra words for a quick CPU check
run "$bin/gpu_bench" --device "$device" --steps "$steps" --sst2 "$sst2" ${BENCH_ARGS:-} | tee "$out/berth.json" || benches_ok=0
if [ -x "$bin/gpu_bench_before" ]; then
  phase "Berth before this change (gpu_bench_before) on $device"
  BERTH_SHARE_DIR=$here/data run "$bin/gpu_bench_before" --device "$device" --steps "$steps" --sst2 "$sst2" ${BENCH_ARGS_BEFORE:-} |
    tee "$out/berth_before.json" || benches_ok=0
fi
if [ -x "$bin/engine_bench" ] && [ "${ENGINE_RUNS:-2}" -gt 0 ]; then
  # The inference path's rows (issues #17 and #38: one sentence, median of 200) in two runs, for
  # their spread from run to run.
  for i in $(seq "${ENGINE_RUNS:-2}"); do
    phase "engine_bench on $device, run $i"
    run "$bin/engine_bench" --device "$device" --precision bf16 --no-predict --sst2 "$sst2" ${ENGINE_ARGS:-} \
      >"$out/engine_$i.json" 2>"$out/engine_$i.txt" || benches_ok=0
    grep -v '^{' "$out/engine_$i.txt" || true
  done
fi
phase "Hugging Face baseline on $device: eager"
"$py" "$here/bench/hf_baseline.py" --device "$device" --steps "$steps" --sst2 "$sst2" --sections train,infer ${HF_ARGS:-} |
  tee "$out/hf.json" || benches_ok=0
if [ "${HF_COMPILE:-1}" = 1 ]; then
  # torch.compile's own time is reported apart; a mode that compiles for too long is cut off
  # (HF_COMPILE_TIMEOUT seconds) and the rows it measured before stay.
  phase "Hugging Face + torch.compile on $device (at most ${HF_COMPILE_TIMEOUT:-360} s)"
  timeout "${HF_COMPILE_TIMEOUT:-360}" "$py" "$here/bench/hf_baseline.py" --device "$device" --steps "$steps" \
    --sst2 "$sst2" --sections compile ${HF_ARGS:-} ${HF_COMPILE_ARGS:-} | tee "$out/hf_compile.json" ||
    echo "gpu-check: hf_baseline --sections compile ended early (its rows so far are kept)" >&2
fi
# One file with both peers' figures (the last line of each).
"$py" - "$out/hf_compile.json" "$out/hf.json" >"$out/hf_all.json" <<'MERGE'
import json, sys
merged = {}
for path in sys.argv[1:]:
    try:
        lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    except OSError:
        continue
    if lines:
        merged.update(json.loads(lines[-1]))
print(json.dumps(merged))
MERGE

phase "summary"
table_args=()
[ -f "$out/berth_before.json" ] && table_args+=(--before "$out/berth_before.json")
for f in "$out"/engine_*.json; do [ -f "$f" ] && table_args+=(--engine "$f"); done
"$py" "$here/scripts/gpu_table.py" "$out/berth.json" "$out/hf_all.json" "${table_args[@]}" |
  tee "$out/summary.txt"
phase "done"
[ "$benches_ok" = 1 ] || echo "gpu-check: a benchmark FAILED (its output is above)" >&2
[ "$tests_ok" = 1 ] || { echo "gpu-check: device tests FAILED (see $out/device_tests.txt)" >&2; exit 1; }
[ "$benches_ok" = 1 ] || exit 1
