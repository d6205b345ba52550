#!/usr/bin/env python3
"""Makes the RoBERTa model directory tests/data/fixtures/roberta-tiny (the model under test; its
expected/ outputs come from make_fixtures.py like every other fixture's).

- The tokenizer: a byte-level BPE trained by Hugging Face `tokenizers` on the shipped SST-2
  sample (data/sst2-sample/train.tsv), 2,000 tokens, RoBERTa's special tokens, wrapped in
  transformers' RobertaTokenizer and saved with save_pretrained (tokenizer.json,
  tokenizer_config.json) plus the BPE model's own vocab.json and merges.txt.
- The model: a random-init RobertaForSequenceClassification (2 layers, hidden 64, 3 labels),
  seed 0, saved as model.safetensors.

usage: make_roberta_fixture.py [--out DIR]   (default: tests/data/fixtures/roberta-tiny)
"""
import argparse
import csv
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def sst2_sentences():
    with open(os.path.join(ROOT, "data", "sst2-sample", "train.tsv"), encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "fixtures", "roberta-tiny"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(sst2_sentences(), trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    bpe.model.save(args.out)  # vocab.json, merges.txt
    # As a user's vocab.json + merges.txt would load.
    tok = RobertaTokenizer.from_pretrained(args.out, model_max_length=128)
    tok.save_pretrained(args.out)

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=128,
                           max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, initializer_range=0.2,
                           num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
                           label2id={"negative": 0, "neutral": 1, "positive": 2})
    model = RobertaForSequenceClassification(config)
    model.save_pretrained(args.out, safe_serialization=True)
    print("wrote", args.out, "vocab", bpe.get_vocab_size())


if __name__ == "__main__":
    main()
