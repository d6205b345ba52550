#!/usr/bin/env python3
"""Makes the pytorch_model.bin fixtures under tests/data/fixtures/pytorch-bin with torch.save
(the pinned torch of scripts/requirements.txt), each beside what it must read as:

  roberta-tiny/          config and tokenizer of fixtures/roberta-tiny, its weights as
                         pytorch_model.bin (torch.save of the model's state_dict); Berth's logits
                         must equal those of the safetensors twin, fixtures/roberta-tiny
  views.bin              a state dict of awkward tensors: a transposed view, a slice at an
                         offset, two names for one storage, an nn.Parameter, float16, bfloat16,
                         int64, bool, a 0-d scalar and an empty tensor;
  views.safetensors      the same tensors made contiguous, written by safetensors
  hostile-global.bin     a torch.save whose pickle calls os.system (never to be run)
  legacy.bin             torch.save's pre-1.6 format (_use_new_zipfile_serialization=False)
  not-a-tensor.bin       a state dict with an int among the tensors
  missing-storage.bin    views.bin without one of its storage records

usage: make_bin_fixtures.py [--out DIR]
"""
import argparse
import os
import shutil
import zipfile

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "data", "fixtures")


class RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo this pickle ran a command",))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(FIXTURES, "pytorch-bin"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)

    src = os.path.join(FIXTURES, "roberta-tiny")
    twin = os.path.join(out, "roberta-tiny")
    os.makedirs(twin, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), twin)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    torch.save(model.state_dict(), os.path.join(twin, "pytorch_model.bin"))

    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    views = {
        "plain": torch.randn(3, 4, generator=g),
        "transposed": base.t(),
        "sliced": base[2:, 1:4],
        "shared_a": base,
        "shared_b": base,
        "parameter": torch.nn.Parameter(torch.randn(2, 3, generator=g)),
        "half": torch.randn(4, 2, generator=g).half(),
        "bfloat16": torch.randn(3, generator=g).bfloat16(),
        "int64": torch.arange(10, dtype=torch.int64).view(2, 5)[:, ::2],
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    torch.save(views, os.path.join(out, "views.bin"))
    save_file({k: v.detach().contiguous().clone() for k, v in views.items()},
              os.path.join(out, "views.safetensors"))

    torch.save({"weight": torch.ones(2), "payload": RunsACommand()}, os.path.join(out, "hostile-global.bin"))
    torch.save({"weight": torch.ones(2)}, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    torch.save({"weight": torch.ones(2), "step": 3}, os.path.join(out, "not-a-tensor.bin"))
    with zipfile.ZipFile(os.path.join(out, "views.bin")) as zin, \
            zipfile.ZipFile(os.path.join(out, "missing-storage.bin"), "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            if not item.filename.endswith("/data/0"):
                zout.writestr(item.filename.replace("views/", "missing-storage/"), zin.read(item.filename))
    print("wrote", out)


if __name__ == "__main__":
    main()
