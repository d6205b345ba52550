"""What the integration scripts share: named checks, printed as they run and counted.

    from checks import check, failures
    check(cond, "what must hold")        # prints "ok   ..." or "FAIL ..."
    sys.exit(1 if failures else 0)
"""

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
