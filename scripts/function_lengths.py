#!/usr/bin/env python3
"""Lines of each function body in C++ files (from its signature to its closing brace), longest
first: a reader's check that no function has grown past the point where one gets lost.

usage: scripts/function_lengths.py [--max N] FILE...   (--max: fail when a function is longer)
"""
import re
import sys

SIGNATURE = re.compile(r"^\s*(?:[\w:<>,~*&\[\]]+\s+)*[\w:~<>]+\s*\(")
NOT_A_FUNCTION = ("if", "for", "while", "switch", "return", "catch", "else", "do")


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        word = line.strip().split("(")[0].split()
        if (SIGNATURE.match(line) and word and word[-1] not in NOT_A_FUNCTION
                and not line.strip().startswith(("//", "#"))):
            j = i
            while j < len(lines) and "{" not in lines[j] and ";" not in lines[j]:
                j += 1
            if j < len(lines) and "{" in lines[j] and ";" not in lines[j].split("{")[0]:
                depth, k = 0, j
                while k < len(lines):
                    depth += lines[k].count("{") - lines[k].count("}")
                    if depth <= 0:
                        break
                    k += 1
                out.append((k - i + 1, path, i + 1, line.strip()[:70]))
                i = k + 1
                continue
        i += 1
    return out


def main():
    args = sys.argv[1:]
    limit = None
    if args[:1] == ["--max"]:
        limit, args = int(args[1]), args[2:]
    found = sorted((f for p in args for f in functions(p)), reverse=True)
    for n, path, line, sig in found[:15]:
        print("%4d  %s:%d  %s" % (n, path, line, sig))
    over = [f for f in found if limit is not None and f[0] > limit]
    for n, path, line, sig in over:
        print("function_lengths: %s:%d is %d lines (at most %d): %s" % (path, line, n, limit, sig),
              file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
