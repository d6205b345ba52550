#!/usr/bin/env bash
# clang-format (Debian 12's clang-format-14, the version .clang-format is checked with) over every
# tracked C++ file: in place, or with --check as CI runs it, listing each file that differs and
# failing when any does.
#
# usage: scripts/format.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "format.sh: unknown argument $1" >&2; exit 2 ;;
esac
fmt=${CLANG_FORMAT:-clang-format-14}
command -v "$fmt" >/dev/null || { echo "format.sh: $fmt not found (scripts/setup.sh installs it)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [ "$check" = 0 ]; then
  "$fmt" -i "${files[@]}"
  echo "format: ${#files[@]} files formatted"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format: %s differs from clang-format (scripts/format.sh fixes it)\n' "${bad[@]}" >&2
  "$fmt" --dry-run "${bad[0]}" 2>&1 | head -20 >&2
  exit 1
fi
echo "format: ${#files[@]} files as clang-format writes them"
