#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub's file API, for tests (serves 127.0.0.1 only).

usage: fake_hub.py ROOT [--fail-once-after N] [--corrupt] [--require-token T] [--log FILE]
ROOT/<org>/<name>/<file> is served at /<org>/<name>/resolve/<revision>/<file> like the Hub:
small files answer with ETag and X-Repo-Commit; *.safetensors (LFS) answer a HEAD with a 302
and X-Linked-Etag (the SHA-256) / X-Linked-Size, and a GET by redirecting to /lfs/<sha256>,
which honours Range. Prints "PORT <n>" once listening.
"""
import argparse
import hashlib
import http.server
import os
import sys
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--fail-once-after", type=int, default=0)
    ap.add_argument("--corrupt", action="store_true")
    ap.add_argument("--require-token", default="")
    ap.add_argument("--log", default="")
    args = ap.parse_args()
    state = {"failed": False}
    lock = threading.Lock()
    blobs = {}

    def log(line):
        if args.log:
            with lock, open(args.log, "a") as f:
                f.write(line + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def authorized(self):
            if not args.require_token:
                return True
            if self.headers.get("Authorization") == "Bearer " + args.require_token:
                return True
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def resolve(self, head):
            if not self.authorized():
                return
            parts = self.path.split("/")
            # /<org>/<name>/resolve/<rev>/<file> or /<name>/resolve/<rev>/<file>
            try:
                i = parts.index("resolve")
            except ValueError:
                return self.not_found()
            repo = "/".join(parts[1:i])
            fname = "/".join(parts[i + 2:])
            path = os.path.join(args.root, repo, fname)
            if not os.path.isfile(path):
                return self.not_found()
            data = open(path, "rb").read()
            if fname.endswith(".safetensors"):
                sha = hashlib.sha256(data).hexdigest()
                blobs[sha] = data
                self.send_response(302)
                self.send_header("Location", "/lfs/" + sha)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", '"%s"' % sha)
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"%s"' % hashlib.sha1(data).hexdigest())
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def lfs(self):
            sha = self.path.split("/")[-1]
            data = blobs.get(sha)
            if data is None:
                return self.not_found()
            if args.corrupt:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            start = 0
            rng = self.headers.get("Range")
            if rng:
                log("RANGE " + rng)
                start = int(rng.split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if args.fail_once_after and not state["failed"] and not rng:
                state["failed"] = True
                self.wfile.write(body[:args.fail_once_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

        def not_found(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):
            log("HEAD " + self.path)
            self.resolve(head=True)

        def do_GET(self):
            log("GET " + self.path)
            if self.path.startswith("/lfs/"):
                self.lfs()
            else:
                self.resolve(head=False)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT", server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
