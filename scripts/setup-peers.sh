#!/usr/bin/env bash
# Makes .venv-peers: ONNX Runtime, OpenVINO and onnx, pinned in bench/requirements-peers.txt, for
# bench/cpu_peers.py. torch, transformers, numpy and protobuf are .venv's (scripts/setup.sh makes
# it first), seen through a .pth file, so the peers run the project's pinned torch and the
# transformers the references use. Wheels come from setup.sh's cache (BERTH_WHEEL_CACHE) and
# only a missing one is downloaded (PyPI). Idempotent; a changed pin reinstalls.
#
# usage: scripts/setup-peers.sh        then: .venv-peers/bin/python bench/cpu_peers.py --help
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
venv=${BERTH_VENV:-$here/.venv}
peers=${BERTH_PEERS_VENV:-$here/.venv-peers}
wheels=${BERTH_WHEEL_CACHE:-$HOME/.cache/berth/wheels}
req=$here/bench/requirements-peers.txt
[ -x "$venv/bin/python" ] || { echo "setup-peers: $venv is missing: run scripts/setup.sh first" >&2; exit 1; }
stamp=$peers/.berth-requirements.sha256
want=$(sha256sum <"$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "setup-peers: $peers up to date"
  exit 0
fi
[ -x "$peers/bin/python" ] || python3 -m venv "$peers"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
own=$("$peers/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" >"$own/berth-venv.pth"
mkdir -p "$wheels"
pip=("$peers/bin/python" -m pip -q --disable-pip-version-check)
if ! "${pip[@]}" install --no-deps --no-index --find-links "$wheels" -r "$req" 2>/dev/null; then
  echo "setup-peers: downloading the wheels bench/requirements-peers.txt pins into $wheels"
  "${pip[@]}" download --no-deps -d "$wheels" -r "$req"
  "${pip[@]}" install --no-deps --no-index --find-links "$wheels" -r "$req"
fi
"$peers/bin/python" -c 'import onnxruntime, openvino, onnx, torch, transformers
print("setup-peers: onnxruntime", onnxruntime.__version__, "openvino", openvino.__version__, "torch", torch.__version__)'
echo "$want" >"$stamp"
