#!/usr/bin/env bash
# Clang's thread-safety analysis (-Wthread-safety, as errors) over every translation unit of
# core/, server/ and client/ that includes absl/synchronization/mutex.h (tests and benchmarks
# hold no locks of their own and reach no private member): ABSL_GUARDED_BY and
# ABSL_EXCLUSIVE_LOCKS_REQUIRED are checked, not just read. The analysis runs in clang's front
# end, so each file is only parsed (-fsyntax-only) with the flags of the GCC build in BUILD_DIR
# (default build/, which must be built: ninja's dependency log says which files include what).
#
# usage: scripts/thread-safety.sh [-j N]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
jobs=${BERTH_JOBS:-2}
while [ $# -gt 0 ]; do
  case $1 in
    -j) jobs=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "thread-safety.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
clangxx=${CLANGXX:-clang++}
command -v "$clangxx" >/dev/null || { echo "thread-safety.sh: $clangxx not found (scripts/setup.sh installs clang)" >&2; exit 2; }
[ -f "$build_dir/compile_commands.json" ] || { echo "thread-safety.sh: no $build_dir/compile_commands.json: build first" >&2; exit 2; }

start=$(date +%s)
list=$(mktemp)
probe=$(mktemp --suffix=.cc)
trap 'rm -f "$list" "$probe"' EXIT
flags=(-fsyntax-only -Wno-everything -Wthread-safety -Wthread-safety-beta -Werror=thread-safety -Werror=thread-safety-beta)
# The check must be able to fail: a read of a guarded member without its lock is an error.
cat > "$probe" <<'CC'
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
struct Counter {
  absl::Mutex mu;
  int n ABSL_GUARDED_BY(mu) = 0;
  int Read() { return n; }
};
CC
if "$clangxx" -std=c++17 "${flags[@]}" "$probe" 2>/dev/null; then
  echo "thread-safety.sh: $clangxx accepted an unguarded read; the analysis is not running" >&2
  exit 1
fi
# Objects whose recorded dependencies include absl's mutex header -> their sources' commands.
n=$( (cd "$build_dir" && ninja -t deps) | python3 -c '
import json, os, shlex, sys
build, root, out = sys.argv[1], sys.argv[2], sys.argv[3]
objects, current = set(), None
for line in sys.stdin:
    if line and not line[0].isspace():
        current = line.split(":")[0]
    elif "absl/synchronization/mutex.h" in line and current:
        objects.add(current)
commands = []
for e in json.load(open(os.path.join(build, "compile_commands.json"))):
    args = shlex.split(e["command"])
    obj = args[args.index("-o") + 1]
    src = os.path.realpath(e["file"])
    if obj not in objects or not any(src.startswith(f"{root}/{d}/") for d in ("core", "server", "client")):
        continue
    i = args.index("-o")
    del args[i:i + 2]
    args = [a for a in args[1:] if a != "-c"]
    commands.append(json.dumps({"dir": e["directory"], "args": args}))
open(out, "w").write("\n".join(commands) + ("\n" if commands else ""))
print(len(commands))
' "$build_dir" "$here" "$list")
echo "thread-safety: $n files of core/, server/ and client/ include absl/synchronization/mutex.h"
[ -s "$list" ] || { echo "thread-safety.sh: no translation unit uses absl::Mutex; nothing to check" >&2; exit 1; }

# -Wno-everything first: only the thread-safety diagnostics speak (the GCC build owns the rest).
check_one() {
  local -a f
  read -ra f <<< "$flags_string"
  python3 -c '
import json, subprocess, sys
e = json.loads(sys.argv[2])
sys.exit(subprocess.call([sys.argv[1]] + e["args"] + sys.argv[3:], cwd=e["dir"]))
' "$clangxx" "$1" "${f[@]}"
}
export -f check_one
export clangxx
export flags_string="${flags[*]}"
if ! tr '\n' '\0' < "$list" | xargs -0 -P "$jobs" -I{} bash -c 'check_one "$1"' _ {}; then
  echo "thread-safety: FAILED (see the errors above)" >&2
  exit 1
fi
echo "thread-safety: $(wc -l < "$list") files clean in $(( $(date +%s) - start ))s"
