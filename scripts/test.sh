#!/usr/bin/env bash
# Builds Berth and runs its tests (unit + integration; not benchmarks) with ctest.
#
# usage: scripts/test.sh [-R REGEX]   extra arguments go to ctest
#   BUILD_DIR   build directory (default: build)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

phase() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
t0=$(date +%s)
phase "setup and build"
BUILD_DIR=$build_dir "$here/scripts/setup.sh"
t1=$(date +%s)
phase "tests"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j2 "$@"
t2=$(date +%s)
printf '\nscripts/test.sh: build %ss, tests %ss\n' "$((t1 - t0))" "$((t2 - t1))"
