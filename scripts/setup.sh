#!/usr/bin/env bash
# Installs everything Berth needs on Debian 12 (idempotent), selects OpenBLAS-OpenMP, and builds into build/.
#
# usage: scripts/setup.sh [--deps-only] [--no-build]
#   --deps-only   install packages and select BLAS; do not configure or build
#   BUILD_DIR     build directory (default: build)
#   BERTH_CMAKE_ARGS  extra arguments for cmake's configure step
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$here/build}
deps_only=0
for a in "$@"; do
  case "$a" in
    --deps-only|--no-build) deps_only=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

# Every Debian package the project uses (DESIGN.md, Dependencies).
packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-yaml
  libtorch-dev libopenblas0-openmp libopenblas-openmp-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsentencepiece-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev sqlite3 nlohmann-json3-dev libutf8proc-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev openssl libgoogle-glog-dev libgloo-dev
  prometheus
  clang libclang-rt-14-dev
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

# OpenBLAS with OpenMP for all three alternatives: the pthread flavour fights libtorch's
# OpenMP pool, and the reference BLAS is ~30x slower (DESIGN.md, Pitfalls: BLAS).
ob=/usr/lib/x86_64-linux-gnu/openblas-openmp
for alt in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  name=$alt-x86_64-linux-gnu
  if [ -e "$ob/$alt" ] && update-alternatives --query "$name" >/dev/null 2>&1; then
    current=$(update-alternatives --query "$name" | awk '/^Value:/ {print $2}')
    [ "$current" = "$ob/$alt" ] || update-alternatives --set "$name" "$ob/$alt"
  fi
done

[ "$deps_only" = 1 ] && exit 0

# Let ccache hit across checkouts in different folders (CI builds a fresh clone elsewhere).
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" ${BERTH_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "${BERTH_JOBS:-2}"
