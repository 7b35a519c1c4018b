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
   CoNLL-2003 test (``../shared/data/conll2003/test.txt`` next to the repository) when present,
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
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONLL_TEST = REPO.parent / "shared" / "data" / "conll2003" / "test.txt"
LABELS = {0: "O", 1: "PER", 2: "ORG", 3: "LOC", 4: "MISC"}
SHAPES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, entity_emb_size=256),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, entity_emb_size=256),
    # a small shape for a quick smoke run of this script
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, entity_emb_size=32),
}


# glibc settings that keep freed memory for reuse instead of returning it to the OS: on VMs
# where a page fault is expensive this changes both systems' speed several times over.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296", "MALLOC_TOP_PAD_": "268435456"}

# ---------------------------------------------------------------------------------------- data


def read_conll_sentences(path: Path) -> List[List[str]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        token = line.split()[0]
        if token == "-DOCSTART-":
            continue
        current.append(token)
    if current:
        sentences.append(current)
    return sentences


def generated_sentences(n: int, seed: int = 0) -> List[List[str]]:
    rng = random.Random(seed)
    names = ["Tokyo", "Japan", "Paris", "Obama", "Reuters", "Germany", "EU", "Clinton", "Manchester", "United"]
    words = ["the", "of", "said", "on", "in", "a", "to", "was", "and", "game", "minister", "talks", "won", "beat", "."]
    return [[rng.choice(names if rng.random() < 0.2 else words) for _ in range(rng.randint(3, 30))] for _ in range(n)]


def load_sentences(n: int, source: Optional[str]) -> Tuple[List[List[str]], str]:
    path = Path(source) if source else CONLL_TEST
    if path.is_file():
        return read_conll_sentences(path)[:n], f"CoNLL-2003 {path.name}, first {n} sentences"
    return generated_sentences(n), f"generated text ({n} sentences; {path} not found)"


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
    write = lambda name, data: (folder / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")  # noqa: E731
    write("added_tokens.json", {"<ent>": n_pieces, "<ent2>": n_pieces + 1})
    write("entity_vocab.json", {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3})
    write("tokenizer_config.json", {"tokenizer_class": "LukeTokenizer", "model_max_length": 512, "max_entity_length": 32,
                                    "max_mention_length": 30, "add_prefix_space": False})
    config = transformers.LukeConfig(
        vocab_size=max(50267, n_pieces + 2), entity_vocab_size=4, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, use_entity_aware_attention=True, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        **SHAPES[shape],
    )
    torch.manual_seed(seed)
    model = transformers.LukeForEntitySpanClassification(config).eval()
    with torch.no_grad():
        for layer in model.luke.encoder.layer:
            att = layer.attention.self
            for proj in (att.w2e_query, att.e2w_query, att.e2e_query):
                proj.weight.copy_(att.query.weight)
                proj.bias.copy_(att.query.bias)
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
    model.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the process RSS in a thread; ``peak`` is the highest value since ``reset``."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            value = rss_bytes()
            if value > self.peak:
                self.peak = value
            time.sleep(self.interval)

    def reset(self) -> int:
        self.peak = rss_bytes()
        return self.peak

    def stop(self):
        self._stop = True


# ------------------------------------------------------------------------------------ systems


class Timer:
    def __init__(self):
        self.totals: Dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - start

    def wrap(self, key: str, fn):
        def wrapped(*args, **kwargs):
            with self(key):
                return fn(*args, **kwargs)

        return wrapped


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

        self.name = f"luke_ner[{precision}]"
        self.nlp = spacy.blank("en")
        config = {"pretrained": str(folder), "max_mention_length": max_len, "max_entities_per_pass": 4096,
                  "precision": precision, **settings}
        self.ner = self.nlp.add_pipe("luke_ner", config=config)
        self.ner._ensure_loaded()
        self.timer = Timer()
        ner = self.ner
        ner._items = self.timer.wrap("input", ner._items)
        ner._plan = self.timer.wrap("input", ner._plan)
        ner._encoder.pad = self.timer.wrap("input", ner._encoder.pad)
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
    encoder = ner._encoder
    for _ in range(repeats):
        start = time.perf_counter()
        for doc in docs:
            reference.inputs(doc)
        times["transformers"].append(time.perf_counter() - start)
        encoder.clear_cache()
        for key in ("ours_cold", "ours_warm"):
            start = time.perf_counter()
            plan = ner._plan(docs, ner._items(docs))
            for _ in ner._padded_batches(plan.inputs):  # padded as the pipe batches them
                pass
            times[key].append(time.perf_counter() - start)
    # Same inputs? (ids and entity positions, pass by pass, read back from the padded batches)
    mismatches = 0
    plan = ner._plan(docs, ner._items(docs))
    for batch, padded in ner._padded_batches(plan.inputs):
        for row, i in enumerate(batch):
            _, encoded = reference.inputs(docs[plan.owners[i][0]])
            n_words, n_entities = int(padded["attention_mask"][row].sum()), int(padded["entity_attention_mask"][row].sum())
            mml = padded["entity_position_ids"].shape[2]
            if not (np.array_equal(encoded["input_ids"][0].numpy(), padded["input_ids"][row, :n_words])
                    and np.array_equal(encoded["entity_position_ids"][0, :, :mml].numpy(), padded["entity_position_ids"][row, :n_entities])):
                mismatches += 1
    return {**{k: min(v) for k, v in times.items()}, "input_mismatches": mismatches, "passes": len(plan.inputs)}


def _print_input_building(ib: Dict[str, float]) -> None:
    print(f"input building ({ib['passes']} passes): transformers {ib['transformers']:.4f}s, ours cold {ib['ours_cold']:.4f}s "
          f"({ib['transformers'] / ib['ours_cold']:.1f}x), warm {ib['ours_warm']:.4f}s ({ib['transformers'] / ib['ours_warm']:.1f}x), "
          f"input mismatches: {ib['input_mismatches']}")


def machine() -> Dict[str, str]:
    model = "unknown"
    flags = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = line
    except OSError:
        pass
    native_bf16 = any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "native_bf16": str(native_bf16),
        "avx512": str("avx512f" in flags.split()),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument("--checkpoint", help="use this LUKE NER folder instead of building one")
    parser.add_argument("--work-dir", default=os.environ.get("SPACY_LUKE_BENCH_DIR", "/tmp/spacy-luke-bench"))
    parser.add_argument("--data", help="a CoNLL-format file (default: CoNLL-2003 test next to the repo)")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--max-mention-length", type=int, default=16)
    parser.add_argument("--modes", default="float32,int8", help="luke_ner precisions, comma-separated")
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
    if args.malloc == "tuned" and os.environ.get("MALLOC_TRIM_THRESHOLD_") is None:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TUNED_MALLOC})
    if args.threads:
        torch.set_num_threads(args.threads)

    sentences, source = load_sentences(args.sentences, args.data)
    if args.checkpoint:
        folder = Path(args.checkpoint)
    else:
        train_text = sentences
        conll_dir = CONLL_TEST.parent
        if not args.data and (conll_dir / "train.txt").is_file():
            train_text = read_conll_sentences(conll_dir / "train.txt") + read_conll_sentences(conll_dir / "test.txt")
        folder = build_checkpoint(Path(args.work_dir) / f"luke-{args.shape}-ner-bpe{args.bpe_vocab}", args.shape, train_text, args.bpe_vocab)
    n_words = sum(len(s) for s in sentences)
    n_spans = sum(len(candidate_spans(len(s), args.max_mention_length)) for s in sentences)
    info = machine()
    print(f"machine: {info}")
    print(f"checkpoint: {folder} ({args.shape} shape)")
    print(f"data: {source}: {n_words} words, {n_spans} candidate spans (max {args.max_mention_length} tokens)")

    monitor = PeakRSS()
    loaded: Dict[str, int] = {}
    systems = []
    rss0 = rss_bytes()
    reference = None
    if not args.skip_reference:
        reference = Reference(folder, args.max_mention_length)
        gc.collect()
        loaded[reference.name] = rss_bytes() - rss0
        systems.append(reference)
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        before = rss_bytes()
        settings = {"max_batch_cost": args.max_batch_cost} if args.max_batch_cost else {}
        ours = Ours(folder, args.max_mention_length, mode, **settings)
        gc.collect()
        loaded[ours.name] = rss_bytes() - before
        systems.append(ours)
    if args.inputs_only:
        if reference is None:
            parser.error("--inputs-only needs the transformers reference (drop --skip-reference)")
        report = {"machine": info, "command": " ".join(sys.argv), "checkpoint": str(folder), "data": source, "words": n_words,
                  "spans": n_spans, "sentences": len(sentences),
                  "input_building": input_building(reference, systems[1], make_docs(systems[1].nlp.vocab, sentences), repeats=5)}
        _print_input_building(report["input_building"])
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
        return report
    # Warm-up (first calls allocate, JIT-select kernels, build the int8 copy)
    for system in systems:
        system.run(make_docs(systems[-1].nlp.vocab, sentences[-8:]))
        system.timer.totals.clear()

    vocab = systems[-1].nlp.vocab
    results = {s.name: [] for s in systems}
    walls = {s.name: 0.0 for s in systems}
    peaks = {s.name: 0 for s in systems}
    for start in range(0, len(sentences), args.chunk):
        chunk = sentences[start : start + args.chunk]
        for system in systems:
            docs = make_docs(vocab, chunk)
            gc.collect()
            base = monitor.reset()
            t0 = time.perf_counter()
            results[system.name].extend(system.run(docs))
            walls[system.name] += time.perf_counter() - t0
            peaks[system.name] = max(peaks[system.name], monitor.peak - base)
        done = start + len(chunk)
        print(f"  {done}/{len(sentences)} sentences: " + ", ".join(f"{k} {sum(len(s) for s in sentences[:done]) / v:.1f} w/s" for k, v in walls.items()), flush=True)
    monitor.stop()

    info["malloc"] = "tuned " + " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()) if args.malloc == "tuned" else "glibc default"
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
    if "input_building" in report:
        _print_input_building(report["input_building"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
