#!/usr/bin/env bash
# The GPU run of issue #10, on a machine with an NVIDIA GPU, a pip PyTorch (CUDA), cmake, ninja
# and a compiler, but no apt: builds core, its unit tests and bench/ against that torch
# (-DBERTH_BUILD_SERVER=OFF) with the .deb files scripts/fetch-debs.sh downloaded (unpacked into
# a prefix, never into /), runs the device tests (Devices/*: fixture logits on CUDA fp32 within
# 1e-4, bf16 labels, the training trace within 1e-3), then bench/gpu_bench and
# bench/hf_baseline.py on the same card, and prints one summary table. Meant to finish in under
# 8 minutes on an H100.
#
# usage: scripts/gpu-check.sh [--debs DIR] [--device cuda] [--steps N] [--sst2 FILE] [--configure-only]
#   PREFIX (/tmp/berth-prefix), GPU_BUILD_DIR (build-gpu), OUT (results), TORCH_DIR (default:
#   the pip torch's cmake directory)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
debs=$here/.debs
device=cuda
steps=20
configure_only=0
sst2=$here/data/sst2-sample/validation.tsv
while [ $# -gt 0 ]; do
  case "$1" in
    --debs) debs=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --sst2) sst2=$2; shift 2 ;;
    --configure-only) configure_only=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
prefix=${PREFIX:-/tmp/berth-prefix}
build=${GPU_BUILD_DIR:-$here/build-gpu}
out=${OUT:-$build/results}
start=$(date +%s)
phase() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

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

phase "configure against ${TORCH_DIR:-$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')}"
torch_dir=${TORCH_DIR:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_BUILD_SERVER=OFF \
  -DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$prefix/usr" -DPKG_CONFIG_EXECUTABLE="$prefix/pkg-config" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$lib" -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-rpath-link,$lib" >/dev/null

[ "$configure_only" = 1 ] && { phase "configured (--configure-only)"; exit 0; }
phase "build ($(nproc) cores)"
# (with the libraries: the build lists the tests by running the test binary)
run cmake --build "$build" -j "$(nproc)" --target berth_unit_tests gpu_bench berth >/dev/null

phase "device tests"
mkdir -p "$out"
tests_ok=1
run "$build/tests/berth_unit_tests" --gtest_filter='Devices/*' 2>&1 | tee "$out/device_tests.txt" | grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) ' || true
grep -q '^\[  FAILED  \]' "$out/device_tests.txt" && tests_ok=0

phase "Berth benchmark on $device"
run "$build/bench/gpu_bench" --device "$device" --steps "$steps" --sst2 "$sst2" | tee "$out/berth.json"
phase "Hugging Face baseline on $device"
python3 "$here/bench/hf_baseline.py" --device "$device" --steps "$steps" --sst2 "$sst2" | tee "$out/hf.json"

phase "summary"
python3 - "$out/berth.json" "$out/hf.json" <<'PY'
import json, sys
b, h = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
rows = [("train samples/s, bert-base seq 128 batch 32 bf16", "train_bf16_seq128_batch32_samples_per_second", 1.0),
        ("inference sentences/s, SST-2 validation (%d) bf16" % b["sst2_sentences"], "infer_bf16_sst2_sentences_per_second", 1.5),
        ("inference sentences/s, seq 128 batch 128 bf16", "infer_bf16_seq128_batch128_sentences_per_second", None),
        ("peak GPU memory GiB", "peak_memory_gib", None)]
print("%-52s %12s %12s %8s %8s" % ("", "Berth", "HF " + h.get("torch", ""), "ratio", "target"))
for name, key, target in rows:
    ratio = b[key] / h[key] if h[key] else float("nan")
    print("%-52s %12.1f %12.1f %7.2fx %8s" % (name, b[key], h[key], ratio, ("%.1fx" % target) if target else ""))
PY
phase "done"
[ "$tests_ok" = 1 ] || { echo "gpu-check: device tests FAILED (see $out/device_tests.txt)" >&2; exit 1; }
