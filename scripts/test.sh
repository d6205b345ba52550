#!/usr/bin/env bash
# Builds Berth and runs its tests (unit + integration; not benchmarks) with ctest.
#
# usage: scripts/test.sh [--sanitize] [-R REGEX]   other arguments go to ctest
#   --sanitize  build core and its unit tests with AddressSanitizer + UndefinedBehaviorSanitizer
#               in build-sanitize/ (or SANITIZE_BUILD_DIR) and run the unit tests there
#   BUILD_DIR   build directory (default: build)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
sanitize=0
args=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --sanitize) sanitize=1 ;;
    *) args+=("$a") ;;
  esac
done

phase() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
t0=$(date +%s)
if [ "$sanitize" = 1 ]; then
  build_dir=${SANITIZE_BUILD_DIR:-$here/build-sanitize}
  phase "setup and sanitizer build (address,undefined)"
  "$here/scripts/setup.sh" --deps-only
  export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
    cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
      -DBERTH_SANITIZE=address,undefined -DBERTH_BUILD_SERVER=OFF -DBERTH_BUILD_BENCH=OFF
  fi
  cmake --build "$build_dir" -j "${BERTH_JOBS:-2}" --target unit_tests
  # Leaks are checked; third-party ones (libtorch's, OpenMP's) are suppressed by name.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/sanitizer/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  args=(-L unit "${args[@]}")
else
  phase "setup and build"
  BUILD_DIR=$build_dir "$here/scripts/setup.sh"
fi
t1=$(date +%s)
phase "tests"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j2 "${args[@]}"
t2=$(date +%s)
printf '\nscripts/test.sh%s: build %ss, tests %ss\n' "$([ "$sanitize" = 1 ] && echo ' --sanitize')" \
  "$((t1 - t0))" "$((t2 - t1))"
