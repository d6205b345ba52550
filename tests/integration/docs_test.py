#!/usr/bin/env python3
"""docs/architecture.md stays true: every repository path it names in backticks exists (a glob
matches at least one file).

README.md links every page of docs/, and every link it has into docs/ resolves.

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
    # The README is a front page: every page of docs/ is linked from it, every link resolves
    # (a picture under docs/ must exist).
    readme = (root / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", readme))
    for p in sorted(set(re.findall(r"\]\((docs/[^)#]+)", readme)) - linked):
        if not (root / p).exists():
            print(f"README.md shows {p}, which does not exist", file=sys.stderr)
            linked.add(p)
    pages = {p.relative_to(root).as_posix() for p in (root / "docs").glob("*.md")}
    for p in sorted(pages - linked):
        print(f"README.md does not link {p}", file=sys.stderr)
    for p in sorted(linked - pages):
        print(f"README.md links {p}, which does not exist", file=sys.stderr)
    bad = len(pages - linked) + len(linked - pages)
    print(f"docs_test: {len(named)} paths, {len(missing)} missing; {len(pages)} pages, {bad} link problems")
    return 1 if missing or bad else 0


if __name__ == "__main__":
    sys.exit(main())
