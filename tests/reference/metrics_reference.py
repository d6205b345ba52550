#!/usr/bin/env python3
"""Writes tests/data/fixtures/metrics-sklearn.json: seeded random predictions and what the pinned
scikit-learn computes for them (accuracy_score, precision_recall_fscore_support macro, micro and per label,
confusion_matrix, hamming_loss), or (--check) verifies that the committed file still holds what
scikit-learn computes. metrics_sklearn_test.cc compares Berth's core/data/metrics.cc with it.

Berth always scores every class of the model's label set, so scikit-learn is called with
labels=range(k) (its default would drop a class absent from both truth and predictions) and
zero_division=0 (an undefined ratio counts as 0, Berth's rule).

Cases: single-label with 2, 5 and 20 classes; a class never predicted; a class in neither truth
nor predictions; every prediction right; multi-label with a label never predicted and one never
true.

usage: metrics_reference.py [--out FILE] [--check]
"""
import os
import sys

import numpy as np
import sklearn
from sklearn.metrics import accuracy_score, confusion_matrix, hamming_loss, precision_recall_fscore_support

from fixture_file import write_or_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cases():
    rng = np.random.RandomState(20261128)  # the legacy generator's streams are fixed by contract
    out = []

    def single(name, k, truth, pred):
        out.append({"name": name, "kind": "single", "k": k, "truth": [int(x) for x in truth],
                    "pred": [int(x) for x in pred]})

    for k in (2, 5, 20):
        n = 300
        truth = rng.randint(0, k, n)
        # Right about 60% of the time, otherwise a random class: uneven per-class counts.
        pred = np.where(rng.rand(n) < 0.6, truth, rng.randint(0, k, n))
        single("random_%d_classes" % k, k, truth, pred)
    truth = rng.randint(0, 5, 200)
    single("class_4_never_predicted", 5, truth, np.where(rng.rand(200) < 0.5, truth % 4, rng.randint(0, 4, 200)))
    truth = rng.randint(0, 4, 200)  # class 4 of 5 in neither
    single("class_4_absent_everywhere", 5, truth, np.where(rng.rand(200) < 0.7, truth, rng.randint(0, 4, 200)))
    truth = rng.randint(0, 3, 50)
    single("all_right", 3, truth, truth)

    k, n = 6, 150
    truth = (rng.rand(n, k) < 0.3).astype(int)
    truth[:, 5] = 0  # label 5 never true
    pred = np.where(rng.rand(n, k) < 0.75, truth, 1 - truth)
    pred[:, 4] = 0  # label 4 never predicted
    out.append({"name": "multi_label_6", "kind": "multi", "k": k, "truth": truth.tolist(), "pred": pred.tolist()})

    for c in out:
        labels = list(range(c["k"]))
        t, p = np.array(c["truth"]), np.array(c["pred"])
        e = {}
        for avg in ("macro", "micro"):
            pr, rc, f1, _ = precision_recall_fscore_support(t, p, labels=labels, average=avg, zero_division=0)
            e.update({avg + "_precision": float(pr), avg + "_recall": float(rc), avg + "_f1": float(f1)})
        pr, rc, f1, support = precision_recall_fscore_support(t, p, labels=labels, average=None, zero_division=0)
        e["per_label"] = [{"precision": float(a), "recall": float(b), "f1": float(c_), "support": int(d)}
                          for a, b, c_, d in zip(pr, rc, f1, support)]
        e["accuracy"] = float(accuracy_score(t, p))  # multi-label: exact-match ratio
        if c["kind"] == "single":
            e["confusion_matrix"] = confusion_matrix(t, p, labels=labels).tolist()
        else:
            e["hamming_loss"] = float(hamming_loss(t, p))
        c["expected"] = e
    return {"scikit-learn": sklearn.__version__, "cases": out}


def main():
    return write_or_check(__doc__,
                          os.path.join(HERE, "..", "data", "fixtures", "metrics-sklearn.json"),
                          cases, "metrics fixture")


if __name__ == "__main__":
    sys.exit(main())
