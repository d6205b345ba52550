#!/usr/bin/env bash
# Downloads the Debian packages that core, its tests and bench/ need (with their library
# dependencies) into .debs/ (ignored by git), for scripts/gpu-check.sh on a machine that has a
# pip PyTorch but no apt. Run it here, where Debian's archive is reachable; carry .debs/ along.
#
# usage: scripts/fetch-debs.sh [DIR]   (default: .debs)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/.debs}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

# What BERTH_BUILD_SERVER=OFF finds with find_package/pkg-config (see CMakeLists.txt), plus
# pkg-config itself. Torch, CUDA, cmake, ninja and a compiler come from the GPU machine.
wanted=(libabsl-dev nlohmann-json3-dev libcli11-dev libcurl4-openssl-dev libsqlite3-dev libutf8proc-dev
        libsentencepiece-dev libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev pkgconf)
# The base system every Linux has; unpacking these beside it would shadow its own.
base='^(libc6|libc6-dev|libc-dev-bin|libgcc-s1|libstdc\+\+6|libstdc\+\+-.*-dev|libgcc-.*-dev|linux-libc-dev|libcrypt1|libcrypt-dev|zlib1g|libzstd1|liblzma5|libbz2-1.0|libselinux1|libpcre2-8-0|debconf|cdebconf|dpkg|perl-base|tar|gcc-.*-base|libssl3|libnsl.*|libtirpc.*|libgssapi.*|libkrb5.*|libk5crypto3|libcom-err2|libkeyutils1|adduser|passwd|libpam.*|libaudit.*|libsemanage.*|libsepol2|libdebian-installer4|install-info|libnewt.*|libslang2|libtextwrap1|readline-common|libreadline8|libtinfo6|libcap-ng0|libacl1|libmd0|libdb5.3|rpcsvc-proto)$'

mapfile -t deps < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                      --no-replaces --no-enhances "${wanted[@]}" | grep -E '^[a-z0-9]' | sort -u)
keep=()
for p in "${deps[@]}"; do
  [[ "$p" =~ $base ]] && continue
  apt-cache show "$p" >/dev/null 2>&1 || continue  # virtual packages
  keep+=("$p")
done
mkdir -p "$dir"
cd "$dir"
apt-get download "${keep[@]}" >/dev/null
echo "fetch-debs: ${#keep[@]} packages, $(du -sh . | cut -f1) in $dir"
