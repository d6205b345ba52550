#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DBERTH_FUZZ=ON, ASan + UBSan) and fuzzes each one.
#
# usage: scripts/fuzz.sh [--seconds N | --fixed] [--jobs N] [TARGET...]
#   --seconds N   fuzzing time per target, from a random seed (default 30)
#   --fixed       what CI runs: seed 1 and a fixed number of inputs per target (about 20 s each
#                 here), so what it tries does not depend on the machine's speed and a crash it
#                 finds reproduces with the same command; fuzz with --seconds to find new ones
#   --jobs N      libFuzzer worker processes per target (default 1)
#   TARGET        wordpiece sentencepiece bpe safetensors pytorch_bin model_config tokenizer_files dataset
#                 oip_codec
#                 (default: all)
#   FUZZ_BUILD_DIR  build directory (default: build-fuzz)
# Seeds come from tests/fuzz/corpus/TARGET and past crashes from tests/fuzz/regressions/TARGET;
# inputs the fuzzer finds go to FUZZ_BUILD_DIR/corpus/TARGET (not the repository). A crash leaves
# its input in FUZZ_BUILD_DIR/crashes/TARGET/ and fails the script: copy it into
# tests/fuzz/regressions/TARGET/ with the fix, so every build replays it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FUZZ_BUILD_DIR:-$here/build-fuzz}
seconds=30
fixed=0
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --fixed) fixed=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(wordpiece sentencepiece bpe safetensors pytorch_bin model_config tokenizer_files dataset oip_codec)

export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  CC=clang CXX=clang++ cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBERTH_FUZZ=ON "${launcher[@]}"
fi
cmake --build "$build_dir" -j "${BERTH_JOBS:-2}"

# --fixed: inputs per target, each about 20 s of this project's 2-core CI machine under ASan.
declare -A fixed_runs=([wordpiece]=140000 [sentencepiece]=220000 [bpe]=140000 [safetensors]=600000 [pytorch_bin]=300000
                       [model_config]=250000 [tokenizer_files]=15000 [dataset]=800000
                       [oip_codec]=600000)

failed=()
for t in "${targets[@]}"; do
  exe=$build_dir/tests/fuzz/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
  work=$build_dir/corpus/$t
  crashes=$build_dir/crashes/$t
  mkdir -p "$work" "$crashes"
  seeds=("$here/tests/fuzz/corpus/$t")
  [ -d "$here/tests/fuzz/regressions/$t" ] && seeds+=("$here/tests/fuzz/regressions/$t")
  if [ "$fixed" = 1 ]; then
    # A fresh working corpus: what earlier runs added would change which inputs come next.
    rm -rf "$work"; mkdir -p "$work"
    budget=(-seed=1 -runs="${fixed_runs[$t]}")
    printf '== fuzz %-16s seed 1, %s inputs ... ' "$t" "${fixed_runs[$t]}"
  else
    budget=(-max_total_time="$seconds")
    printf '== fuzz %-16s %ss ... ' "$t" "$seconds"
  fi
  log=$build_dir/fuzz_$t.log
  # Leaks are reported as crashes too; 2 GB is the memory any single input may use.
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # From the build directory: with -jobs, libFuzzer writes fuzz-N.log files into the cwd.
  if (cd "$build_dir" && "$exe" "$work" "${seeds[@]}" "${budget[@]}" "${parallel[@]}" \
       -rss_limit_mb=2048 -timeout=10 -max_len=8192 -print_final_stats=1 \
       -artifact_prefix="$crashes/" >"$log" 2>&1); then
    runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    echo "ok: ${runs} runs, coverage ${cov:-?} edges"
  else
    echo "CRASH (log: $log, input: $(ls "$crashes" | head -1))"
    tail -40 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
