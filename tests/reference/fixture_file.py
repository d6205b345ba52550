"""What the reference scripts that write one JSON fixture share: write it, or (--check) say
whether the committed file still holds exactly what the pinned reference computes now.

    from fixture_file import write_or_check
    sys.exit(write_or_check(__doc__, default_out, compute))  # compute() -> the JSON value
"""
import argparse
import json


def write_or_check(doc, default_out, compute, what="fixture"):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    a = ap.parse_args()
    now = compute()
    if not a.check:
        with open(a.out, "w") as f:
            json.dump(now, f, separators=(",", ":"))
            f.write("\n")
        print("wrote", a.out)
        return 0
    # Exact: the same inputs through the same reference give the same values, and JSON keeps
    # them (Python writes the shortest repr that reads back to the same double).
    ok = json.load(open(a.out)) == now
    print("%s %s the pinned reference" % (what, "matches" if ok else "DIFFERS from"))
    return 0 if ok else 1
