"""Interleaved timing rounds for the peer benchmarks (bench/cpu_peers.py, bench/embed_bench.py).

A shared VM's speed drifts by a third over minutes, so timing one runtime's rounds and then the
next's lets the drift decide the ratios. Here each round times every runtime once, in turn, the
order reversed every other round, and each runtime's best round counts.
"""
import sys


def interleaved(runs, rounds, label, unit):
    """Times `runs`, [(name, run)] where run() returns (rate, output or None), for `rounds`.

    Returns ({name: best rate}, {name: the output of its best round}, {name: [every round's rate]})
    and prints each round's rate to stderr as it goes ("<label>: round r/R <name> <rate> <unit>").
    """
    rounds = max(1, rounds)
    best, outputs, per_round = {}, {}, {name: [] for name, _ in runs}
    for r in range(rounds):
        for name, run in (runs if r % 2 == 0 else runs[::-1]):
            rate, out = run()
            per_round[name].append(rate)
            if rate >= best.get(name, 0.0):
                best[name] = rate
                if out is not None:
                    outputs[name] = out
            print("%s: round %d/%d %-30s %8.1f %s" % (label, r + 1, rounds, name, rate, unit), file=sys.stderr,
                  flush=True)
    return best, outputs, per_round
