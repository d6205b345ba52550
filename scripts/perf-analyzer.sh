#!/usr/bin/env bash
# Runs NVIDIA's perf_analyzer against a running berth-server's Open Inference Protocol. Its only
# wheel (PyPI perf-analyzer) needs glibc 2.38 and Debian 12 has 2.36, so it runs in a Debian 13
# (trixie) chroot made with debootstrap from Debian's archive; the wheel is downloaded on the host
# for that platform and installed there. The chroot shares the host's network, so loopback
# reaches the server. Needs root (debootstrap, chroot); the chroot is kept for the next run.
#
# usage: scripts/perf-analyzer.sh [--chroot DIR] -- PERF_ANALYZER_ARGS...
#   e.g. scripts/perf-analyzer.sh -- -m tiny -u 127.0.0.1:50051 -i grpc --concurrency-range 8 -b 4
#   --chroot DIR   where the trixie chroot lives (default: /var/tmp/berth-trixie)
set -euo pipefail
root=/var/tmp/berth-trixie
while [ $# -gt 0 ]; do
  case "$1" in
    --chroot) root=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-analyzer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
version=2.60.0
if [ ! -x "$root/opt/pa/bin/perf_analyzer" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  [ -x "$root/usr/bin/python3" ] ||
    debootstrap --variant=minbase --include=python3,python3-venv trixie "$root" http://deb.debian.org/debian
  mkdir -p "$root/tmp/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 \
    --python-version 3.13 -d "$root/tmp/wheels" "perf-analyzer==$version"
  chroot "$root" bash -c "python3 -m venv /opt/pa && /opt/pa/bin/pip install -q --no-index --no-deps /tmp/wheels/perf_analyzer-*.whl"
fi
exec chroot "$root" /opt/pa/bin/perf_analyzer "$@"
