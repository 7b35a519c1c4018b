"""Words/s and peak GPU memory of luke_ner, luke_entity_typer, luke_relation_extractor and
luke_entity_linker against transformers' LUKE on the same GPU, luke-base and luke-large shapes,
each precision that runs on CUDA.

Run on a machine with a CUDA GPU (``benchmarks/gpu_check.sh`` runs it with the GPU tests):

    python benchmarks/bench_gpu.py [--shapes base,large] [--precisions float32,float16,bfloat16] [--docs 256] --json out.json

Both sides use the same random checkpoint of the shape (the test tokenizer and entity titles) and
the same inputs: generated sentences; luke_ner scores every span of up to ``--max-mention-length``
words, the typer and the linker each doc's ``doc.ents`` (1-3 word spans), the relation extractor
every ordered pair of them. Reference: transformers' LukeTokenizer (the head's task) on batches of
``--batch`` inputs with padding, then the head class in the precision (``model.to(dtype)``)
under ``torch.no_grad()`` (luke_ner's reference: 32 spans per input, its tokenizer's limit; the
linker's: LukeForMaskedLM's entity logits over [MASK] mentions). Ours: ``nlp.pipe`` with
annotate's device plan (``--gpu-id``: batch cost x8, pinned copies, prefetch), decoding and
writing to the Doc included. Each system: a warm-up pass, then ``--repeats`` timed passes (best
counts), ``torch.cuda.synchronize()`` before each clock read; peak memory:
``torch.cuda.max_memory_allocated`` over the timed passes (the weights included).

``--device cpu`` runs the same on the CPU (a smoke run of the script: ``--shapes tiny``).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PIPES = ("ner", "typer", "relations", "linker")
NO_CUDA = "bench_gpu: torch sees no CUDA device (torch.cuda.is_available() is false): run it on a GPU machine, or give --device cpu for a smoke run"


def checkpoints(root: Path, shape: str) -> Dict[str, Path]:
    common.tests_on_path()
    import support.pipes as fx

    size = dict(common.SHAPES[shape], max_position_embeddings=514)
    out = {kind: common.fixture_checkpoint(root, kind, f"{shape}-{kind}", **size) for kind in ("ner", "typer", "relations")}
    out["linker"] = fx.build_checkpoint(root, f"{shape}-linker", "LukeForMaskedLM", {0: "LABEL_0", 1: "LABEL_1"}, **size)
    return out


def make_docs(nlp, texts: List[str], seed: int = 0):
    rng = np.random.default_rng(seed)
    docs = [nlp.make_doc(t) for t in texts]
    for doc in docs:
        doc.ents = common.random_ents(doc, rng, first=(0, 2), gap=(1, 3), limit=6)
    return docs


def reference_inputs(kind: str, docs, max_len: int):
    """(text, entity spans, entities or None) per transformers input."""
    out = []
    for doc in docs:
        ents = [(e.start_char, e.end_char) for e in doc.ents]
        if kind == "ner":
            spans = [(doc[i].idx, doc[j - 1].idx + len(doc[j - 1])) for i in range(len(doc)) for j in range(i + 1, min(len(doc), i + max_len) + 1)]
            out.extend((doc.text, spans[s : s + 32], None) for s in range(0, len(spans), 32))
        elif kind == "typer":
            out.extend((doc.text, [span], None) for span in ents)
        elif kind == "relations":
            out.extend((doc.text, [h, t], None) for h in ents for t in ents if h != t)
        elif ents:
            out.append((doc.text, ents, ["[MASK]"] * len(ents)))
    return out


REFERENCE = {
    "ner": ("LukeForEntitySpanClassification", "entity_span_classification", "logits"),
    "typer": ("LukeForEntityClassification", "entity_classification", "logits"),
    "relations": ("LukeForEntityPairClassification", "entity_pair_classification", "logits"),
    "linker": ("LukeForMaskedLM", None, "entity_logits"),
}
FACTORY = {"ner": "luke_ner", "typer": "luke_entity_typer", "relations": "luke_relation_extractor", "linker": "luke_entity_linker"}


def reference_runner(kind: str, folder: Path, docs, precision: str, device: str, batch: int, max_len: int) -> Callable[[], None]:
    import torch
    import transformers

    cls, task, output = REFERENCE[kind]
    tokenizer = transformers.LukeTokenizer.from_pretrained(folder, **({"task": task} if task else {}))
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]
    model = getattr(transformers, cls).from_pretrained(folder).to(device=device, dtype=dtype).eval()
    items = reference_inputs(kind, docs, max_len)

    def go() -> None:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            extra = {"entities": [e for _, _, e in chunk]} if chunk[0][2] is not None else {}
            encoded = tokenizer([t for t, _, _ in chunk], entity_spans=[s for _, s, _ in chunk], padding=True, truncation=True, return_tensors="pt", **extra)
            with torch.no_grad():
                getattr(model(**encoded.to(device)), output).float().cpu()

    return go


def our_runner(kind: str, folder: Path, texts: List[str], precision: str, device: str, max_len: int) -> Callable[[], None]:
    import spacy

    from spacy_luke.annotate.device import apply_device, plan_for_this_machine

    nlp = spacy.blank("en")
    config = {"pretrained": str(folder), "precision": precision}
    if kind == "ner":
        config["max_mention_length"] = max_len
    if kind == "linker":
        config["entity_candidates"] = {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 30}
    nlp.add_pipe(FACTORY[kind], config=config)
    apply_device(nlp, plan_for_this_machine(int(device.split(":")[1]) if device.startswith("cuda") else None, precision, None))
    docs = make_docs(nlp, texts)

    def go() -> None:
        if kind == "ner":
            list(nlp.pipe(texts, batch_size=256))
        else:
            list(nlp.pipe([d.copy() for d in docs], batch_size=256))

    return go


def measure(go: Callable[[], None], repeats: int, device: str) -> Dict[str, float]:
    import torch

    cuda = device.startswith("cuda")
    go()  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        go()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "peak_gpu_bytes": int(torch.cuda.max_memory_allocated()) if cuda else 0}


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="base,large", help=f"comma-separated, of {', '.join(common.SHAPES)}")
    parser.add_argument("--precisions", default=None, help="comma-separated (default: every precision that runs on CUDA)")
    parser.add_argument("--pipes", default=",".join(PIPES))
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64, help="transformers' inputs per batch")
    parser.add_argument("--max-mention-length", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="ours only")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        raise SystemExit(3)
    from spacy_luke.model.views.precision import get_precision, precision_names

    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    precisions = args.precisions.split(",") if args.precisions else [p for p in precision_names() if get_precision(p).runs_on(kind) and p != "int8"]
    common.tests_on_path()
    from support.tokenizers import make_sentences

    texts = [t for t in make_sentences(3 * args.docs, seed=5) if len(t.split()) >= 6][: args.docs]
    words = sum(len(t.split()) for t in texts)
    report = {
        "device": torch.cuda.get_device_name(0) if kind == "cuda" else common.cpu_model(),
        "torch": torch.__version__, "docs": len(texts), "words": words, "complete": False, "results": [], "errors": [],
    }
    print(f"{report['device']}; {len(texts)} docs, {words} words", flush=True)
    def save() -> None:  # after every row: a run stopped at its time limit keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf8")

    root = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    for shape in args.shapes.split(","):
        folders = checkpoints(root, shape)
        for pipe in args.pipes.split(","):
            for precision in precisions:
                systems = {"spacy-luke": lambda: our_runner(pipe, folders[pipe], texts, precision, args.device, args.max_mention_length)}
                if args.reference:
                    nlp = __import__("spacy").blank("en")
                    systems["transformers"] = lambda: reference_runner(
                        pipe, folders[pipe], make_docs(nlp, texts), precision, args.device, args.batch, args.max_mention_length
                    )
                for system, build in systems.items():
                    row = {"shape": shape, "pipe": pipe, "precision": precision, "system": system}
                    gc.collect()  # the last system's model and batches gone before this one's peak is read
                    if kind == "cuda":
                        torch.cuda.empty_cache()
                    try:
                        result = measure(build(), args.repeats, args.device)
                    except Exception as err:  # noqa: BLE001 - a failure is a result of the check
                        row["error"] = f"{type(err).__name__}: {err}"
                        report["errors"].append(row)
                        print(f"{shape:5} {pipe:9} {precision:8} {system:12} FAILED {row['error']}", flush=True)
                        save()
                        continue
                    row.update(result, words_per_second=words / result["seconds"])
                    report["results"].append(row)
                    print(f"{shape:5} {pipe:9} {precision:8} {system:12} {row['words_per_second']:10.0f} words/s  "
                          f"peak {row['peak_gpu_bytes'] / 2**20:8.0f} MiB", flush=True)
                    save()
    report["complete"] = True
    save()
    return report


if __name__ == "__main__":
    main()
