#!/usr/bin/env python3
"""docs/architecture.md stays true: every repository path it names in backticks exists (a glob
matches at least one file).

usage: docs_test.py REPO_ROOT
"""
import pathlib
import re
import sys

TOP = ("proto/", "server/", "core/", "client/", "tests/", "bench/", "deploy/", "scripts/", "docs/")


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    text = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = sorted({m for m in re.findall(r"`([^`\s]+)`", text) if m.startswith(TOP)})
    # A glob (the layers table names groups of files) must match something.
    missing = [p for p in named if not ((root / p).exists() if "*" not in p else list(root.glob(p)))]
    for p in missing:
        print(f"docs/architecture.md names {p}, which does not exist", file=sys.stderr)
    # Guards against a pattern that silently matches nothing.
    if len(named) < 20:
        print(f"docs_test: only {len(named)} paths found in docs/architecture.md", file=sys.stderr)
        return 1
    print(f"docs_test: {len(named)} paths, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
