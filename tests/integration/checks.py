"""What the integration scripts share: named checks, printed as they run and counted, and a
berth-server started on a free loopback port.

    from checks import check, failures, start_server
    check(cond, "what must hold")        # prints "ok   ..." or "FAIL ..."
    proc, addr = start_server(server_bin, work, ["--data-dir", d])   # addr "127.0.0.1:PORT"
    sys.exit(1 if failures else 0)
"""
import os
import subprocess
import time

failures = []


def start_server(server_bin, work, args, env=None, log_mode="ab"):
    """Starts `server_bin args` on 127.0.0.1:0, its output in WORK/server.log, and waits (up to
    60 s) for the port it writes to WORK/port; returns (process, "127.0.0.1:PORT"). The file
    must be non-empty: it is written, not renamed, so it can exist before it has the port."""
    port_file = os.path.join(work, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    log = open(os.path.join(work, "server.log"), log_mode)
    proc = subprocess.Popen([server_bin, "--listen", "127.0.0.1:0", "--port-file", port_file] + args,
                            stdout=log, stderr=log, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(port_file) and open(port_file).read().strip()):
        if proc.poll() is not None:
            raise RuntimeError("berth-server exited with %d (see %s)" % (proc.returncode, log.name))
        time.sleep(0.05)
    return proc, "127.0.0.1:%s" % open(port_file).read().strip()


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
