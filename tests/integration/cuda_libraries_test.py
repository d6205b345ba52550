#!/usr/bin/env python3
"""The HTTP servers (the API's and /metrics, both Boost.Beast over Asio) start their threads and
answer in a process that has loaded LibTorch's CUDA half, the case that kept prometheus-cpp's
civetweb exposer from starting (its 100 KB thread stacks cannot hold the CUDA libraries' static
TLS; server/metrics_http.h). No GPU is needed: berth-server loads the CUDA half whenever
libcuda.so.1 opens (core/runtime/runtime.cc), and the CUDA toolkit's stub libcuda.so stands in
for a driver here, so libtorch_cuda.so, cuBLAS and the rest are mapped as on a GPU machine
(CUDA then reports no device, and the server runs on the CPU).

usage: cuda_libraries_test.py berth-server STUB_LIBCUDA_SO
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

from checks import check, failures, start_server


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    server_bin, stub = sys.argv[1:3]
    work = tempfile.mkdtemp(prefix="berth-cuda-libs-")
    os.symlink(stub, os.path.join(work, "libcuda.so.1"))
    env = dict(os.environ, LD_LIBRARY_PATH=work + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    server = None
    try:
        server, _ = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "127.0.0.1:0",
            "--metrics-port-file", os.path.join(work, "metrics-port"), "--http-threads", "4"], env=env)
        maps = open("/proc/%d/maps" % server.pid).read()
        check("libtorch_cuda.so" in maps and "libcublasLt" in maps,
              "the server process has LibTorch's CUDA half (libtorch_cuda.so, cuBLASLt) mapped")
        metrics = "http://127.0.0.1:%s/metrics" % open(os.path.join(work, "metrics-port")).read().strip()
        code, body = get(metrics)
        check(code == 200 and "berth_inference_" in body,
              "GET /metrics answers on the metrics port (%d)" % code)
        http = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        code, _ = get(http + "/v2/health/ready")
        check(code == 200, "the API's HTTP server answers (its 4 threads started)")
        threads = os.listdir("/proc/%d/task" % server.pid)
        check(len(threads) > 4, "the server runs %d threads" % len(threads))
        log = open(os.path.join(work, "server.log"), errors="replace").read()
        check("Cannot create threads" not in log and "server.start" in log, "no thread failed to start")
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(open(os.path.join(work, "server.log"), errors="replace").read()[-2000:])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
