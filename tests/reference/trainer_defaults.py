#!/usr/bin/env python3
"""Writes tests/data/fixtures/trainer-defaults.json: the defaults of the pinned transformers'
TrainingArguments for every field Berth's TrainingSpec mirrors, or (--check) verifies that the
committed file still says what the pinned transformers declares. trainer_defaults_test.cc then
compares the file with Berth's defaults, field by field.

The defaults are the dataclass's declared ones (what `TrainingArguments(output_dir=...)` starts
from); constructing the object would also probe devices, which says nothing about defaults.

usage: trainer_defaults.py [--out FILE] [--check]
"""
import argparse
import dataclasses
import json
import os
import sys

import transformers
from transformers import TrainingArguments

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = [
    "learning_rate", "adam_beta1", "adam_beta2", "adam_epsilon", "weight_decay", "max_grad_norm",
    "num_train_epochs", "max_steps", "warmup_steps", "lr_scheduler_type", "label_smoothing_factor",
    "seed", "data_seed", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "train_sampling_strategy", "eval_strategy", "save_strategy",
    "save_steps", "load_best_model_at_end", "metric_for_best_model", "dataloader_drop_last", "bf16",
    "fp16", "optim",
]


def defaults():
    declared = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    out = {}
    for name in FIELDS:
        if name not in declared:
            sys.exit("TrainingArguments has no field %r in transformers %s" % (name, transformers.__version__))
        f = declared[name]
        v = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[name] = getattr(v, "value", v)  # enums (SchedulerType, IntervalStrategy, ...) as their strings
    return {"transformers": transformers.__version__, "defaults": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "fixtures", "trainer-defaults.json"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    now = defaults()
    if not a.check:
        with open(a.out, "w") as f:
            json.dump(now, f, indent=1, sort_keys=True)
            f.write("\n")
        print("wrote", a.out)
        return 0
    committed = json.load(open(a.out))
    bad = [k for k in FIELDS if committed["defaults"].get(k, "<absent>") != now["defaults"][k]]
    for k in bad:
        print("FAIL %s: committed %r, transformers %s declares %r"
              % (k, committed["defaults"].get(k, "<absent>"), now["transformers"], now["defaults"][k]))
    print("%d of %d TrainingArguments defaults differ from %s" % (len(bad), len(FIELDS), a.out))
    return 1 if bad or committed["transformers"] != now["transformers"] else 0


if __name__ == "__main__":
    sys.exit(main())
