#!/usr/bin/env python3
"""Models Berth did not train, through two real berth-servers over loopback gRPC and the CLI:

  - `berth import-model --from DIR` uploads a classifier directory that transformers'
    save_pretrained wrote (tests/data/fixtures/roberta-tiny); the server classifies like
    transformers does: logits within 1e-5 (both run the same fp32 maths through different
    kernels, a few float32 ulps per layer on this 2-layer model; a wrong weight or token moves
    them by 1e-2 or more);
  - `berth export-model` writes a directory that transformers loads, with the same logits;
  - that directory imported into a second server gives identical scores (the same files, the
    same code);
  - `--server-dir` imports a directory under --model-roots, and is refused outside them;
  - `--from ORG/NAME` imports through the server's Hub downloader (a local fake Hub,
    fake_hub.py), recording the commit it got;
  - hostile archives (path traversal, absolute paths, symbolic links, devices, oversize,
    truncated) are refused with INVALID_ARGUMENT and leave no version and no files.

usage: import_export_test.py BERTH_SERVER BERTH FIXTURES_DIR   (run with .venv's python)
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, failures, start_server  # noqa: E402
from hub_test import Hub  # noqa: E402

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

TOLERANCE = 1e-5
TEXTS = ["a gripping, funny and moving film", "dull , overlong and 😴", "it's not bad at all",
         "Ünïcödé café 日本語 <mask> test"]


def run(cli, args, addr, timeout=300):
    r = subprocess.run([cli] + args + ["--server", addr], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def classify(cli, addr, model):
    rc, out, err = run(cli, ["classify", "--model", model, "--raw-scores"] + TEXTS, addr)
    if rc != 0:
        return None, err
    return [json.loads(l)["logits"] for l in out.splitlines() if l.strip()], err


def reference_logits(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return [model(**tok(t, return_tensors="pt")).logits[0].tolist() for t in TEXTS]


def worst(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def tar_bytes(members):
    """members: (TarInfo, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, (data if kind == tarfile.REGTYPE else None)


def main():
    server, cli, fixtures = sys.argv[1:4]
    torch.set_num_threads(1)
    source = os.path.abspath(os.path.join(fixtures, "roberta-tiny"))
    work = tempfile.mkdtemp(prefix="berth-import-")
    procs = []
    hub_root = os.path.join(work, "hub")
    shutil.copytree(source, os.path.join(hub_root, "berth-test", "roberta-tiny"))
    hub = Hub(hub_root)
    try:
        roots = os.path.join(work, "roots")
        os.makedirs(roots)
        a_dir, b_dir = os.path.join(work, "a"), os.path.join(work, "b")
        os.makedirs(a_dir)
        os.makedirs(b_dir)
        # A small upload limit, so that one hostile archive can be oversize.
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(work, "hf-home"))
        env.pop("HF_HUB_OFFLINE", None)
        proc, a = start_server(server, a_dir, ["--data-dir", os.path.join(a_dir, "data"), "--model-roots", roots,
                                               "--metrics-listen", "127.0.0.1:0",
                                               "--max-upload-bytes", str(4 << 20)], env=env)
        procs.append(proc)
        proc, b = start_server(server, b_dir, ["--data-dir", os.path.join(b_dir, "data"),
                                               "--metrics-listen", "127.0.0.1:0"])
        procs.append(proc)
        ref = reference_logits(source)

        rc, out, err = run(cli, ["import-model", "sentiment", "--from", source, "--json"], a)
        version = json.loads(out) if rc == 0 else {}
        check(rc == 0 and version.get("version") == "1" and version.get("imported_from", "").startswith("archive:sha256:"),
              "import-model uploads a directory transformers saved: " + (out + err)[-300:])
        check(version.get("labels") == ["negative", "neutral", "positive"], "the imported version has its labels")
        got, err = classify(cli, a, "sentiment")
        check(got is not None and worst(got, ref) <= TOLERANCE,
              "the imported model classifies like transformers (worst %.2e): %s" % (worst(got, ref) if got else -1, err[-200:]))

        exported = os.path.join(work, "exported")
        rc, out, err = run(cli, ["export-model", "sentiment:1", "--output", exported, "--json"], a)
        files = json.loads(out).get("files", []) if rc == 0 else []
        check(rc == 0 and "config.json" in files and "model.safetensors" in files,
              "export-model writes the version's files: " + (out + err)[-300:])
        if rc == 0:
            again = reference_logits(exported)
            check(worst(again, ref) == 0.0, "transformers loads the exported directory, same logits")
        rc, out, err = run(cli, ["export-model", "sentiment:1", "--output", exported], a)
        check(rc != 0 and "exists" in err, "export-model does not overwrite a directory: " + err[-200:])

        rc, out, err = run(cli, ["import-model", "copy", "--from", exported, "--json"], b)
        check(rc == 0, "the exported directory imports into another server: " + err[-300:])
        got_b, err = classify(cli, b, "copy")
        check(got is not None and got_b == got, "identical scores on the other server")

        # A directory on the server, under its --model-roots.
        shutil.copytree(source, os.path.join(roots, "roberta"))
        rc, out, err = run(cli, ["import-model", "fromroot", "--server-dir", os.path.join(roots, "roberta"), "--json"], a)
        check(rc == 0 and json.loads(out).get("imported_from", "").startswith("directory:"),
              "--server-dir imports a directory under --model-roots: " + err[-300:])
        rc, out, err = run(cli, ["import-model", "outside", "--server-dir", source], a)
        check(rc != 0 and "PERMISSION_DENIED" in err, "--server-dir outside --model-roots is refused: " + err[-200:])

        # A Hub id, through the server's downloader.
        rc, out, err = run(cli, ["import-model", "hubbed", "--from", "berth-test/roberta-tiny", "--json"], a)
        check(rc == 0 and json.loads(out).get("imported_from", "").startswith("hub:berth-test/roberta-tiny@0123456789abcdef"),
              "--from ORG/NAME imports through the Hub downloader: " + (out + err)[-300:])
        got_hub, err = classify(cli, a, "hubbed")
        check(got is not None and got_hub == got, "the Hub import classifies as the upload does")

        # Hostile archives: refused, nothing registered, nothing left on disk.
        good = [member(f, open(os.path.join(source, f), "rb").read())
                for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")]
        whole = tar_bytes(good)
        hostile = {
            "path traversal": tar_bytes(good + [member("../../escaped.json", b"{}")]),
            "absolute path": tar_bytes(good + [member("/tmp/berth-absolute.json", b"{}")]),
            "symbolic link": tar_bytes(good + [member("vocab.json", kind=tarfile.SYMTYPE, link="/etc/passwd")]),
            "device": tar_bytes(good + [member("dev", kind=tarfile.CHRTYPE)]),
            "oversize": tar_bytes(good + [member("padding.bin", os.urandom(5 << 20))]),
            "truncated": whole[:len(whole) // 2],
        }
        models_dir = os.path.join(a_dir, "data", "models")
        before = sorted(os.listdir(models_dir))
        rc, out, err = run(cli, ["models", "--json"], a)
        listed_before = json.loads(out)["models"] if rc == 0 else None
        for what, data in hostile.items():
            path = os.path.join(work, what.replace(" ", "-") + ".tar")
            with open(path, "wb") as f:
                f.write(data)
            rc, out, err = run(cli, ["import-model", "hostile", "--from", path], a)
            check(rc != 0 and "INVALID_ARGUMENT" in err, "%s: refused with INVALID_ARGUMENT: %s" % (what, err.strip()[-160:]))
        rc, out, err = run(cli, ["models", "--json"], a)
        check(rc == 0 and json.loads(out)["models"] == listed_before, "no version was registered by a hostile archive")
        check(sorted(os.listdir(models_dir)) == before, "no files were left behind: %s" % sorted(os.listdir(models_dir)))
        check(not os.path.exists(os.path.join(work, "escaped.json")) and not os.path.exists("/tmp/berth-absolute.json"),
              "nothing was written outside the server's data")
    finally:
        hub.stop()
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
