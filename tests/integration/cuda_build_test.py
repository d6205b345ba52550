#!/usr/bin/env python3
"""The CUDA paths are compiled in: fails if Berth was built against a LibTorch without CUDA, or
if its programs load another LibTorch than the one it was configured with.

Checks, for each program: `ldd` resolves libtorch_cpu.so inside TORCH_LIB_DIR (the wheel's
torch/lib), no libtorch from anywhere else, and not libtorch_cuda.so: that one is loaded at run
time (LoadCudaLibraries), so a machine without a GPU does not pay for loading CUDA's libraries.
Then libtorch_cuda.so is in TORCH_LIB_DIR, `berth version --json` reports cuda_built
(libtorch_cuda loaded and its hooks registered) with a CUDA runtime version, and on a machine
without a GPU `berth predict --device cuda` loads them on demand and says no GPU is visible.
Machines without a GPU pass: nothing here needs one.

usage: cuda_build_test.py TORCH_LIB_DIR BERTH [OTHER_PROGRAM...]
"""
import json
import os
import subprocess
import sys

from checks import check, failures


def main():
    torch_lib = os.path.realpath(sys.argv[1])
    berth = sys.argv[2]
    for prog in sys.argv[2:]:
        out = subprocess.run(["ldd", prog], capture_output=True, text=True).stdout
        libs = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>":
                libs[parts[0]] = parts[2]
        name = os.path.basename(prog)
        for lib in ("libtorch_cpu.so", "libc10.so"):
            where = libs.get(lib)
            check(where is not None and os.path.realpath(os.path.dirname(where)) == torch_lib,
                  "%s links %s from %s (found: %s)" % (name, lib, torch_lib, where))
        for lib in ("libtorch_cuda.so", "libc10_cuda.so", "libtorch.so"):
            check(lib not in libs, "%s does not link %s: CUDA's half is loaded at run time (found: %s)"
                  % (name, lib, libs.get(lib)))
        strays = [p for l, p in libs.items() if l.startswith(("libtorch", "libc10"))
                  and os.path.realpath(os.path.dirname(p)) != torch_lib]
        check(not strays, "%s loads no other LibTorch (%s)" % (name, strays))
    r = subprocess.run([berth, "version", "--json"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "berth version --json exits 0: %s" % r.stderr[-300:])
    if r.returncode == 0:
        info = json.loads(r.stdout)
        print("berth version --json:", info)
        check(info.get("cuda_built") is True, "CUDA is compiled in (cuda_built)")
        check(info.get("cuda_runtime", 0) >= 12000, "a CUDA runtime version is reported (%s)" % info.get("cuda_runtime"))
        check(info.get("torch", "").startswith("2."), "torch 2.x (%s)" % info.get("torch"))
        if info.get("cuda_devices") == 0:
            model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fixtures",
                                 "bert-tiny-uncased")
            p = subprocess.run([berth, "predict", "--model", model, "--device", "cuda"], input="hello\n",
                               capture_output=True, text=True, timeout=120)
            check(p.returncode != 0 and "no GPU is visible" in p.stderr,
                  "berth predict --device cuda without a GPU: CUDA's libraries load on demand, and "
                  "the error says no GPU is visible (%d: %s)" % (p.returncode, p.stderr[-300:]))
    check(os.path.isfile(os.path.join(torch_lib, "libtorch_cuda.so")),
          "libtorch_cuda.so is in %s, for LoadCudaLibraries" % torch_lib)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
