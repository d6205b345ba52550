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
    """Starts `server_bin args` on 127.0.0.1:0 (gRPC, and HTTP unless args say --http-listen; its
    port in WORK/http-port), its output in WORK/server.log, and waits (up to 60 s) for the port it
    writes to WORK/port; returns (process, "127.0.0.1:PORT"). The file must be non-empty: it is
    written, not renamed, so it can exist before it has the port."""
    port_file = os.path.join(work, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    log = open(os.path.join(work, "server.log"), log_mode)
    http = [] if "--http-listen" in args else ["--http-listen", "127.0.0.1:0", "--http-port-file",
                                                os.path.join(work, "http-port")]
    proc = subprocess.Popen([server_bin, "--listen", "127.0.0.1:0", "--port-file", port_file] + http + args,
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


class Postgres:
    """A PostgreSQL server of the test's own (Debian's binaries): initdb into a fresh directory
    under /tmp, started on 127.0.0.1 at a free port with trust authentication for user berth,
    as the `postgres` account when the test runs as root (PostgreSQL refuses root). `url(db)`
    gives a libpq URL, `psql(db, sql)` runs SQL and returns its unaligned output, `stop()`
    shuts it down at once (as a crash would), `start()` starts it again, `remove()` ends it."""

    def __init__(self):
        import glob
        import pwd
        import shutil
        import socket
        import tempfile
        ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if os.environ.get("BERTH_PG_BINDIR"):
            ctl = [os.path.join(os.environ["BERTH_PG_BINDIR"], "pg_ctl")]
        if not ctl or not os.access(ctl[-1], os.X_OK):
            raise RuntimeError("no PostgreSQL server binaries: scripts/setup.sh installs the postgresql package")
        self.bin = os.path.dirname(ctl[-1])
        self.dir = tempfile.mkdtemp(prefix="berth-pg-")
        self.prefix = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self._shutil = shutil
        subprocess.run(self.prefix + [os.path.join(self.bin, "initdb"), "-D", os.path.join(self.dir, "data"),
                                      "-U", "berth", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True)
        self.start()

    def start(self):
        opts = "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off" % (self.port, self.dir)
        subprocess.run(self.prefix + [os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                                      "-l", os.path.join(self.dir, "server.log"), "-w", "-o", opts, "start"],
                       check=True, capture_output=True)

    def stop(self):
        subprocess.run(self.prefix + [os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                                      "-m", "immediate", "-w", "stop"], check=True, capture_output=True)

    def url(self, db):
        return "postgresql://berth@127.0.0.1:%d/%s" % (self.port, db)

    def psql(self, db, sql):
        p = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "berth", "-d", db, "-c", sql],
                           capture_output=True, text=True, check=True)
        return p.stdout.strip()

    def remove(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        self._shutil.rmtree(self.dir, ignore_errors=True)
