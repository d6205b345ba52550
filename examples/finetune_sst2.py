#!/usr/bin/env python3
"""Fine-tunes a text classifier on SST-2 with Berth's Python SDK, then evaluates and uses it.

Uploads the training and validation files (CSV, TSV or JSON Lines) to a running berth-server,
fine-tunes all-MiniLM-L6-v2 on them (the job runs on the server; a progress bar follows it),
prints the validation metrics the server computed, classifies a few sentences with the new
model, and points the alias `prod` at it. By default it uses the SST-2 sample shipped in
data/sst2-sample (2,000 training and 200 validation sentences from the GLUE SST-2 corpus); with
../shared/data/sst2 present (the full corpus, see its SOURCES.md) pass --train and --validation.

The last line it prints is a JSON object a script can read:
{"job_id", "model", "accuracy", "macro_f1", "examples", "seconds", "classified"}.

usage: examples/finetune_sst2.py [--server URL] [--base-model ID] [--epochs N] ...
       (run with the project's environment, e.g. .venv-clients/bin/python; the SDK reads
       BERTH_URL, BERTH_TOKEN and BERTH_TLS_* when no argument says otherwise)
"""
import argparse
import json
import os
import sys
import time

import berth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sst2-sample")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=None,
                    help="the server's HTTP address (default: $BERTH_URL, else http://127.0.0.1:8080)")
    ap.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2",
                    help="what to fine-tune: a Hub id, a registered model, or config:PRESET (default: %(default)s)")
    ap.add_argument("--train", default=os.path.join(SAMPLE, "train.tsv"), help="training file (default: the sample)")
    ap.add_argument("--validation", default=os.path.join(SAMPLE, "validation.tsv"),
                    help="validation file (default: the sample)")
    ap.add_argument("--model-name", default="sst2-example", help="the model to register (default: %(default)s)")
    ap.add_argument("--epochs", type=float, default=3, help="training epochs (default: %(default)s)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many updates (0: use --epochs)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args()

    client = berth.Berth(args.server)
    t0 = time.time()
    train = client.upload_dataset(args.train)
    validation = client.upload_dataset(args.validation)
    print("uploaded %s rows for training, %s for validation" % (train["rows"], validation["rows"]), file=sys.stderr)
    options = {"epochs": args.epochs}
    if args.max_steps:
        options["max_steps"] = args.max_steps
    job = client.create_job(args.base_model, train["dataset_id"], args.model_name,
                            validation_dataset_id=validation["dataset_id"], **options)
    final = client.wait(job["job_id"], progress=not args.no_progress)
    if final["state"] != berth.JobState.JOB_STATE_SUCCEEDED:
        print("the job ended %s: %s" % (final["state"], final.get("error", "")), file=sys.stderr)
        return 1
    model = "%s:%s" % (final["model_name"], final["model_version"])
    metrics = client.get_model(model).get("metrics", {})
    for row in metrics.get("per_label", []):
        print("label %-6s precision %.3f recall %.3f f1 %.3f support %s" %
              (row["label"], row["precision"], row["recall"], row["f1"], row["support"]), file=sys.stderr)
    sentences = ["a gorgeous, witty, seductive movie", "the plot is a dull, lifeless mess"]
    classified = [{"text": t, "label": c.label, "score": round(c.score, 4)}
                  for t, c in zip(sentences, client.classify(sentences, model=model))]
    client.set_alias(final["model_name"], "prod", final["model_version"])
    print(json.dumps({"job_id": job["job_id"], "model": model, "accuracy": metrics.get("accuracy"),
                      "macro_f1": metrics.get("macro_f1"), "examples": int(metrics.get("examples", 0)),
                      "seconds": round(time.time() - t0, 1), "classified": classified}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
