"""NER speed, memory and agreement: transformers' LUKE vs ``luke_ner``, same weights, one process.

Run by hand (not in CI)::

    TOKENIZERS_PARALLELISM=false python benchmarks/bench_ner.py --shape base --sentences 200

What it does:

1. Builds (or reuses, with ``--checkpoint``) a checkpoint of the chosen shape with random
   weights, saved with transformers' ``save_pretrained``: a byte-level BPE trained on the
   input text, a 4-row ("lite") entity vocabulary, the four query matrices equal (as in the
   public checkpoints), CoNLL's labels (O, PER, ORG, LOC, MISC) and a classifier whose
   non-entity bias is calibrated so that about 5% of candidate spans are entity-like.
2. Takes the same sentences for every system: the first ``--sentences`` sentences of
   CoNLL-2003 test (``--conll-dir FOLDER``'s test.txt, or ``--data FILE``) when given,
   else generated text. Each sentence is one spaCy Doc built from its tokens.
3. Candidates: every span of up to ``--max-mention-length`` tokens in the sentence; one pass per
   sentence (``max_entities_per_pass`` large enough) for every system.
4. Runs (a) the transformers reference pipeline (``LukeTokenizer`` +
   ``LukeForEntitySpanClassification``, eager float32, one sentence per call, greedy decoding)
   and (b) ``luke_ner`` in each ``--modes`` precision, alternating chunk by chunk, and prints
   words/s, the time split (input building / model / decoding), peak memory above the loaded
   model, and agreement: sentences with identical entities, entities found, and spans with the
   same decision (entity label or none).
5. Times input building on its own: transformers' ``LukeTokenizer`` vs our DocEncoder (cold and
   warm piece cache), and checks that both give the same ids and positions.

``--json PATH`` writes every figure. Threads: torch's default (all cores) unless ``--threads``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import SHAPES, Timer  # noqa: E402

LABELS = {0: "O", 1: "PER", 2: "ORG", 3: "LOC", 4: "MISC"}


def candidate_spans(n_tokens: int, max_len: int) -> List[Tuple[int, int]]:
    return [(i, j) for i in range(n_tokens) for j in range(i + 1, min(n_tokens, i + max_len) + 1)]


# ---------------------------------------------------------------------------------- checkpoint


def build_checkpoint(folder: Path, shape: str, sentences: Sequence[Sequence[str]], bpe_vocab: int, seed: int = 0) -> Path:
    """A LUKE NER checkpoint with random weights, written by transformers' save_pretrained."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer

    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(s) for s in sentences]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=bpe_vocab, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    n_pieces = len(json.loads((folder / "vocab.json").read_text(encoding="utf8")))
    common.write_json(folder, "added_tokens.json", {"<ent>": n_pieces, "<ent2>": n_pieces + 1})
    common.write_json(folder, "entity_vocab.json", common.entity_vocab(4))
    common.write_json(folder, "tokenizer_config.json", {"tokenizer_class": "LukeTokenizer", "model_max_length": 512, "max_entity_length": 32,
                                                        "max_mention_length": 30, "add_prefix_space": False})

    def prepare(model):
        common.tie_queries(model)
        # Calibrate the non-entity bias: about 5% of candidate spans get an entity label.
        tokenizer = transformers.LukeTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                               str(folder / "entity_vocab.json"), task="entity_span_classification")
        margins = []
        with torch.no_grad():
            for words in sentences[:24]:
                text, starts = " ".join(words), np.cumsum([0] + [len(w) + 1 for w in words])
                spans = candidate_spans(len(words), 16)
                chars = [(int(starts[i]), int(starts[j - 1] + len(words[j - 1]))) for i, j in spans]
                logits = model(**tokenizer(text, entity_spans=chars, max_entity_length=len(chars), return_tensors="pt")).logits[0]
                margins.append((logits[:, 1:].max(-1).values - logits[:, 0]).numpy())
            model.classifier.bias[0] += float(np.quantile(np.concatenate(margins), 0.95))

    common.save_random_luke(
        folder, "LukeForEntitySpanClassification", seed=seed, prepare=prepare,
        vocab_size=max(50267, n_pieces + 2), entity_vocab_size=4, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, use_entity_aware_attention=True, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        **SHAPES[shape],
    )
    return folder


# ------------------------------------------------------------------------------------ systems


def greedy_decode(logits: np.ndarray, spans: Sequence[Tuple[int, int]], n_tokens: int, nil: int, id2label) -> List[Tuple[int, int, str]]:
    """The reference decoding: drop NIL argmaxes, sort by max logit, accept without overlap."""
    best = logits.argmax(-1)
    candidates = sorted(((float(logits[k, best[k]]), k) for k in range(len(spans)) if best[k] != nil), key=lambda x: -x[0])
    used = np.zeros(n_tokens, dtype=bool)
    ents = []
    for _, k in candidates:
        i, j = spans[k]
        if not used[i:j].any():
            used[i:j] = True
            ents.append((i, j, id2label[int(best[k])]))
    return sorted(ents)


class Reference:
    """transformers' LukeTokenizer + LukeForEntitySpanClassification, one sentence per call."""

    name = "transformers"

    def __init__(self, folder: Path, max_len: int):
        import transformers

        self.tokenizer = transformers.LukeTokenizer.from_pretrained(folder, task="entity_span_classification")
        self.model = transformers.LukeForEntitySpanClassification.from_pretrained(folder).eval()
        self.max_len = max_len
        self.id2label = self.model.config.id2label
        self.nil = [i for i, label in self.id2label.items() if label in ("O", "NIL")][0]
        self.timer = Timer()

    def inputs(self, doc):
        spans = candidate_spans(len(doc), self.max_len)
        chars = [(doc[i].idx, doc[j - 1].idx + len(doc[j - 1])) for i, j in spans]
        encoded = self.tokenizer(doc.text, entity_spans=chars, max_entity_length=len(chars), return_tensors="pt")
        return spans, encoded

    def run(self, docs) -> List[List[Tuple[int, int, str]]]:
        out = []
        for doc in docs:
            with self.timer("input"):
                spans, encoded = self.inputs(doc)
            with self.timer("model"), torch.no_grad():
                logits = self.model(**encoded).logits[0].numpy()
            with self.timer("decode"):
                out.append(greedy_decode(logits, spans, len(doc), self.nil, self.id2label))
        return out


class Ours:
    """``luke_ner`` (``nlp.add_pipe``) with one precision mode."""

    def __init__(self, folder: Path, max_len: int, precision: str, **settings):
        import spacy

        import spacy_luke  # noqa: F401

        # "ort:int8" / "ort:float32": that precision on engine = "onnxruntime"
        engine, _, precision = precision.rpartition(":")
        engine = {"": "torch", "ort": "onnxruntime"}[engine]
        self.name = f"luke_ner[{precision}]" if engine == "torch" else f"luke_ner[ort-{precision}]"
        self.nlp = spacy.blank("en")
        config = {"pretrained": str(folder), "max_mention_length": max_len, "max_entities_per_pass": 4096,
                  "precision": precision, **settings}
        if engine != "torch":  # only then: the setting is newer than some code this benchmark compares
            config["engine"] = engine
        self.ner = self.nlp.add_pipe("luke_ner", config=config)
        self.ner._ensure_loaded()
        self.timer = Timer()
        ner = self.ner
        common.time_input_building(ner, self.timer)
        ner.set_annotations = self.timer.wrap("decode", ner.set_annotations)

    def run(self, docs) -> List[List[Tuple[int, int, str]]]:
        with self.timer("total"):
            docs = list(self.ner.pipe(docs, batch_size=len(docs)))
        return [sorted((e.start, e.end, e.label_) for e in doc.ents) for doc in docs]


# --------------------------------------------------------------------------------- measuring


def make_docs(vocab, sentences):
    from spacy.tokens import Doc

    return [Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False]) for words in sentences]


def agreement(reference: List[list], got: List[list], n_spans: int) -> Dict[str, float]:
    same_sentences = sum(a == b for a, b in zip(reference, got))
    ref_ents = sum(len(a) for a in reference)
    found = sum(len(set(a) & set(b)) for a, b in zip(reference, got))
    # A span's decision is its entity label, or none: spans in the symmetric difference differ.
    differing_spans = sum(len({(s, e) for s, e, _ in set(a) ^ set(b)}) for a, b in zip(reference, got))
    return {
        "sentences_identical": same_sentences / max(1, len(reference)),
        "entities_found": found / max(1, ref_ents),
        "entities_reference": ref_ents,
        "entities_got": sum(len(b) for b in got),
        "spans_same_decision": 1.0 - differing_spans / max(1, n_spans),
    }


def input_building(reference: Reference, ours: Ours, docs, repeats: int = 3) -> Dict[str, float]:
    """Seconds to build the model inputs of all ``docs`` (best of ``repeats``), and an ids check."""
    times = {"transformers": [], "ours_cold": [], "ours_warm": []}
    ner = ours.ner

    def theirs():
        for doc in docs:
            reference.inputs(doc)

    def ours_inputs():
        for _ in common.pipe_batches(ner, docs)[2]:  # padded as the pipe batches them
            pass

    for _ in range(repeats):
        times["transformers"].append(common.timed(theirs)[0])
        ner._encoder.clear_cache()
        for key in ("ours_cold", "ours_warm"):
            times[key].append(common.timed(ours_inputs)[0])
    # Same inputs? (ids and entity positions, pass by pass, read back from the padded batches)
    mismatches = 0
    owners, n_inputs, batches = common.pipe_batches(ner, docs)
    for batch, padded in batches:
        for row, i in enumerate(batch):
            _, encoded = reference.inputs(docs[owners[i][0]])
            n_words, n_entities = int(padded["attention_mask"][row].sum()), int(padded["entity_attention_mask"][row].sum())
            mml = padded["entity_position_ids"].shape[2]
            if not (np.array_equal(encoded["input_ids"][0].numpy(), padded["input_ids"][row, :n_words])
                    and np.array_equal(encoded["entity_position_ids"][0, :, :mml].numpy(), padded["entity_position_ids"][row, :n_entities])):
                mismatches += 1
    return {**{k: min(v) for k, v in times.items()}, "input_mismatches": mismatches, "passes": n_inputs}


def _print_input_building(ib: Dict[str, float]) -> None:
    print(f"input building ({ib['passes']} passes): transformers {ib['transformers']:.4f}s, ours cold {ib['ours_cold']:.4f}s "
          f"({ib['transformers'] / ib['ours_cold']:.1f}x), warm {ib['ours_warm']:.4f}s ({ib['transformers'] / ib['ours_warm']:.1f}x), "
          f"input mismatches: {ib['input_mismatches']}")


def _finish(report: Dict, json_path: str) -> Dict:
    """Print the input-building line (when measured), write the report as JSON (when asked)."""
    if "input_building" in report:
        _print_input_building(report["input_building"])
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument("--checkpoint", help="use this LUKE NER folder instead of building one")
    parser.add_argument("--work-dir", default=os.environ.get("SPACY_LUKE_BENCH_DIR", "/tmp/spacy-luke-bench"))
    parser.add_argument("--data", help="a CoNLL-format file (default: --conll-dir's test.txt)")
    common.add_conll_argument(parser)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--max-mention-length", type=int, default=16)
    parser.add_argument("--modes", default="float32,int8",
                        help="luke_ner precisions, comma-separated; 'ort:float32' / 'ort:int8': on engine onnxruntime")
    parser.add_argument("--chunk", type=int, default=25, help="sentences per alternation step")
    parser.add_argument("--bpe-vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--inputs-only", action="store_true", help="only time input building (transformers vs the first mode)")
    parser.add_argument("--max-batch-cost", type=int, default=0, help="luke_ner max_batch_cost (default: the pipe's)")
    parser.add_argument("--malloc", choices=["default", "tuned"], default="default",
                        help="tuned: re-run with glibc keeping freed memory (MALLOC_* settings below), for both systems")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    common.use_malloc(args.malloc)
    common.set_threads(args.threads)

    sentences, source = common.load_sentences(args.sentences, args.data, args.conll_dir)
    if args.checkpoint:
        folder = Path(args.checkpoint)
    else:
        train_text = sentences
        if not args.data and (args.conll_dir / "train.txt").is_file():
            train_text = common.conll_sentences(args.conll_dir / "train.txt") + common.conll_sentences(args.conll_dir / "test.txt")
        folder = build_checkpoint(Path(args.work_dir) / f"luke-{args.shape}-ner-bpe{args.bpe_vocab}", args.shape, train_text, args.bpe_vocab)
    n_words = sum(len(s) for s in sentences)
    n_spans = sum(len(candidate_spans(len(s), args.max_mention_length)) for s in sentences)
    info = common.machine()
    print(f"machine: {info}")
    print(f"checkpoint: {folder} ({args.shape} shape)")
    print(f"data: {source}: {n_words} words, {n_spans} candidate spans (max {args.max_mention_length} tokens)")

    monitor = common.PeakRSS()
    loaded: Dict[str, int] = {}
    systems = []
    settings = {"max_batch_cost": args.max_batch_cost} if args.max_batch_cost else {}
    makers = [] if args.skip_reference else [lambda: Reference(folder, args.max_mention_length)]
    makers += [partial(Ours, folder, args.max_mention_length, m.strip(), **settings) for m in args.modes.split(",") if m.strip()]
    for make in makers:
        system, loaded_bytes = common.with_rss_added(make)
        loaded[system.name] = loaded_bytes
        systems.append(system)
    reference = None if args.skip_reference else systems[0]
    if args.inputs_only:
        if reference is None:
            parser.error("--inputs-only needs the transformers reference (drop --skip-reference)")
        report = {"machine": info, "command": " ".join(sys.argv), "checkpoint": str(folder), "data": source, "words": n_words,
                  "spans": n_spans, "sentences": len(sentences),
                  "input_building": input_building(reference, systems[1], make_docs(systems[1].nlp.vocab, sentences), repeats=5)}
        return _finish(report, args.json)
    # Warm-up (first calls allocate, JIT-select kernels, build the int8 copy)
    for system in systems:
        system.run(make_docs(systems[-1].nlp.vocab, sentences[-8:]))
        system.timer.totals.clear()

    vocab = systems[-1].nlp.vocab

    def progress(done, walls):
        print(f"  {done}/{len(sentences)} sentences: " + ", ".join(f"{k} {sum(len(s) for s in sentences[:done]) / v:.1f} w/s" for k, v in walls.items()), flush=True)

    results, walls, peaks = common.alternate({s.name: s.run for s in systems}, sentences, args.chunk,
                                             prepare=lambda chunk: make_docs(vocab, chunk), monitor=monitor, on_chunk=progress)
    monitor.stop()

    info["malloc"] = common.malloc_description(args.malloc)
    report = {"machine": info, "command": " ".join(sys.argv), "checkpoint": str(folder), "shape": args.shape, "data": source, "words": n_words,
              "spans": n_spans, "sentences": len(sentences), "systems": {}}
    ref_name = reference.name if reference else None
    float_name = "luke_ner[float32]" if "luke_ner[float32]" in results else None
    for system in systems:
        name = system.name
        wall = walls[name]
        totals = system.timer.totals
        model_time = totals.get("model", wall - totals.get("input", 0.0) - totals.get("decode", 0.0))
        entry = {
            "words_per_s": n_words / wall,
            "spans_per_s": n_spans / wall,
            "seconds": wall,
            "input_s": totals.get("input", 0.0),
            "model_s": model_time,
            "decode_s": totals.get("decode", 0.0),
            "loaded_rss_mb": loaded[name] / 2**20,
            "peak_rss_above_start_mb": peaks[name] / 2**20,
        }
        if ref_name:
            entry["speedup_vs_transformers"] = walls[ref_name] / wall
            entry["vs_transformers"] = agreement(results[ref_name], results[name], n_spans)
        if float_name and name != float_name:
            entry["vs_float32"] = agreement(results[float_name], results[name], n_spans)
        report["systems"][name] = entry
    if reference is not None:
        for system in systems:
            if system is not reference:
                report["input_building"] = input_building(reference, system, make_docs(vocab, sentences))
                break
    print(json.dumps(report, indent=1))
    print()
    print(f"| system | words/s | x transformers | input s | model s | decode s | peak MB above start | same entities (sentences) vs transformers | entities found vs float32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, e in report["systems"].items():
        print(f"| {name} | {e['words_per_s']:.1f} | {e.get('speedup_vs_transformers', float('nan')):.2f} | {e['input_s']:.2f} | "
              f"{e['model_s']:.2f} | {e['decode_s']:.2f} | {e['peak_rss_above_start_mb']:.0f} | "
              f"{e.get('vs_transformers', {}).get('sentences_identical', float('nan')):.4f} | "
              f"{e.get('vs_float32', {}).get('entities_found', float('nan')):.4f} |")
    return _finish(report, args.json)


if __name__ == "__main__":
    main()
