#!/usr/bin/env python3
"""Compares the include graph of Berth's sources with the layers docs/architecture.md allows.

The table under "## Layers" in docs/architecture.md lists, for each group of sources (a folder,
or glob patterns), the folders its files may include. This script reads every #include "..."
of core/, server/ and client/, and fails on an include the table does not allow, on a
torch-free source that includes torch, and on core including gRPC or protobuf. The build
enforces the same edges (cmake/Layers.cmake); this check keeps the page true. It also keeps the
gRPC handlers thin (server/*_service.cc): no request rule (InvalidArgumentError, switch) and no
call into the store or the registry there; those live in the facades.

usage: scripts/layers.py [REPO_ROOT] [--graph]   (--graph: print the folder graph found)
"""
import fnmatch
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*(.*?)\s*\|\s*$")
FOLDERS = ("core/util", "core/text", "core/data", "core/model", "core/runtime", "core/infer",
           "core/eval", "core/train", "core/store", "core/service", "core/jobs", "server",
           "client/lib", "client/cli", "proto")
# Sources that must build without LibTorch (the fuzz build, the thin client, the remote CLI).
TORCH_FREE = ("core/util/*", "core/text/*", "core/data/*", "core/store/*", "core/model/config.*",
              "core/model/presets.*", "core/model/safetensors.*", "core/model/pytorch_bin.*",
              "core/model/pooling_files.*",
              "client/lib/*", "client/cli/remote*", "client/cli/loadtest.*",
              "client/cli/spec_flags.*")
TORCH = ("torch/", "ATen/", "c10/", "caffe2/")
RPC = ("grpc", "grpcpp/", "google/protobuf/", "berth/v1/", "inference/")
HANDLER_RULES = re.compile(r"InvalidArgumentError|\bswitch\b|\b(store|registry)(_)?->")


def folder_of(path):
    """The known folder a path (a source or an include) belongs to, or None."""
    best = None
    for f in FOLDERS:
        if path == f or path.startswith(f + "/"):
            if best is None or len(f) > len(best):
                best = f
    if best is None and path.startswith("berth/v1/"):
        return "proto"
    return best


def allowed_table(doc):
    """[(patterns, set of folders)] from the "## Layers" table, in order (first match wins)."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = ROW.match(line)
        if not m or "`" not in m.group(1):
            continue
        patterns = re.findall(r"`([^`]+)`", m.group(1))
        may = {x.strip() for x in re.findall(r"`([^`]+)`", m.group(2))}
        rows.append((patterns, may))
    return rows


def rule_for(rows, rel):
    for patterns, may in rows:
        for p in patterns:
            if fnmatch.fnmatch(rel, p) or (p.endswith("/") and rel.startswith(p)):
                return patterns, may
    return None, None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent)
    rows = allowed_table(root / "docs" / "architecture.md")
    if len(rows) < 10:
        print("layers: the table in docs/architecture.md has only %d rows" % len(rows), file=sys.stderr)
        return 1
    problems, graph, files = [], {}, 0
    for top in ("core", "server", "client"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".h", ".cc") or "sp_module" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            src = folder_of(rel)
            patterns, may = rule_for(rows, rel)
            if patterns is None:
                problems.append("%s: no row of the layers table covers it" % rel)
                continue
            files += 1
            text = path.read_text(encoding="utf-8", errors="replace")
            if fnmatch.fnmatch(rel, "server/*_service.cc"):
                for n, line in enumerate(text.split("\n"), 1):
                    if HANDLER_RULES.search(line.split("//")[0]):
                        problems.append("%s:%d: a handler applies a rule or calls the store or "
                                        "registry itself (use a facade): %s" % (rel, n, line.strip()))
            for inc in INCLUDE.findall(text):
                if rel.startswith("core/") and inc.startswith(RPC):
                    problems.append("%s includes %s: core knows nothing of gRPC or protobuf" % (rel, inc))
                if any(fnmatch.fnmatch(rel, p) for p in TORCH_FREE) and inc.startswith(TORCH):
                    problems.append("%s includes %s, but it must build without LibTorch" % (rel, inc))
                dst = folder_of(inc)
                if dst is None or dst == src:
                    continue
                graph.setdefault(src, set()).add(dst)
                if dst not in may:
                    problems.append("%s includes %s: %s may not use %s (docs/architecture.md, Layers)"
                                    % (rel, inc, " ".join(patterns), dst))
    if "--graph" in sys.argv:
        for src in sorted(graph):
            print("%-12s -> %s" % (src, ", ".join(sorted(graph[src]))))
    for p in problems:
        print("layers: " + p, file=sys.stderr)
    print("layers: %d files, %d folder edges, %d problems" %
          (files, sum(len(v) for v in graph.values()), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
