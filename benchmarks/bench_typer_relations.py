"""Speed of luke_entity_typer (spans/s) and luke_relation_extractor (pairs/s) against transformers.

Run by hand (not in CI), from the repository root:

    python benchmarks/bench_typer_relations.py [--hidden 768 --layers 12 --heads 12 --intermediate 3072] [--docs 200]

Both sides use the same random checkpoint (the test tokenizer; the given shape, luke-base by
default) and the same spans: each doc's ``doc.ents`` (1-3 token spans), all ordered pairs for the
relations. Reference: transformers' LukeTokenizer (task="entity_classification" /
"entity_pair_classification") on batches of ``--batch`` inputs with padding, then
LukeForEntityClassification / LukeForEntityPairClassification under ``torch.no_grad()``.
Ours: ``nlp.pipe`` (input building, batching by cost, decoding, writing to the Doc) in each
``--modes`` precision ("float32", "bfloat16", "int8"; "ort:float32" / "ort:int8" on engine
onnxruntime). CPU; each system: a warm-up pass on a few docs, then ``--repeats`` rounds in which
the systems run one after the other (alternating, so load on a shared machine hits them alike);
each system's best round counts. Agreement: the share of items whose argmax label equals float32's.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag, default in (("--hidden", 768), ("--layers", 12), ("--heads", 12), ("--intermediate", 3072), ("--docs", 200), ("--batch", 32),
                          ("--threads", 0)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each system's best counts")
    parser.add_argument("--modes", default="float32", help="our precisions, comma-separated; 'ort:int8' etc.: engine onnxruntime")
    args = parser.parse_args()

    import spacy
    import torch
    import transformers
    from spacy.tokens import Span

    common.set_threads(args.threads)
    common.tests_on_path()
    from support.tokenizers import make_sentences

    root = Path(tempfile.mkdtemp())
    shape = dict(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                 intermediate_size=args.intermediate, entity_emb_size=256, max_position_embeddings=514)
    typer_dir = common.fixture_checkpoint(root, "typer", **shape)
    rel_dir = common.fixture_checkpoint(root, "relations", "rel", **shape)

    nlp0 = spacy.blank("en")
    # Texts whose spaCy tokens are all whitespace-separated (token-by-token pieces then equal the
    # BPE of the joined text; see docs/pipes.md "Known limit").
    texts = [
        t for t in make_sentences(6 * args.docs, seed=5)
        if len(t.split()) >= 6 and all(tok.whitespace_ for tok in nlp0.make_doc(t)[:-1])
    ][: args.docs]
    rng = np.random.default_rng(0)
    base_docs = [nlp0.make_doc(t) for t in texts]
    for doc in base_docs:
        doc.ents = common.random_ents(doc, rng, first=(0, 2), gap=(1, 3), limit=4)
    span_inputs = [(d.text, [(e.start_char, e.end_char)]) for d in base_docs for e in d.ents]
    pair_inputs = [(d.text, [(h.start_char, h.end_char), (t.start_char, t.end_char)]) for d in base_docs for h in d.ents for t in d.ents if h != t]
    print(f"shape: hidden={args.hidden} layers={args.layers} heads={args.heads} intermediate={args.intermediate}; "
          f"{len(base_docs)} docs, {len(span_inputs)} spans, {len(pair_inputs)} pairs; torch threads={torch.get_num_threads()}")

    import time

    def reference_runner(folder, cls, task, items):
        tok = transformers.LukeTokenizer.from_pretrained(folder, task=task)
        model = getattr(transformers, cls).from_pretrained(folder).eval()

        def go(batch_items=items):
            outs = []
            for s in range(0, len(batch_items), args.batch):
                chunk = batch_items[s : s + args.batch]
                enc = tok([t for t, _ in chunk], entity_spans=[sp for _, sp in chunk], padding=True, return_tensors="pt")
                with torch.no_grad():
                    outs.append(model(**enc).logits.numpy())
            return np.concatenate(outs)

        go(items[:8])
        return go

    def our_runner(folder, factory, mode):
        engine, _, precision = mode.rpartition(":")
        nlp = spacy.blank("en")
        pipe = nlp.add_pipe(factory, config={"pretrained": str(folder), "precision": precision,
                                             "engine": {"": "torch", "ort": "onnxruntime"}[engine]})
        docs = [nlp.make_doc(d.text) for d in base_docs]
        for d, b in zip(docs, base_docs):
            d.ents = [Span(d, e.start, e.end, label="E") for e in b.ents]
        list(pipe.pipe([d.copy() for d in docs[:4]]))

        def go():
            list(pipe.pipe(docs, batch_size=256))

        return go, pipe, docs

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name, folder, cls, task, factory, items in (
        ("typer (spans/s)", typer_dir, "LukeForEntityClassification", "entity_classification", "luke_entity_typer", span_inputs),
        ("relations (pairs/s)", rel_dir, "LukeForEntityPairClassification", "entity_pair_classification", "luke_relation_extractor", pair_inputs),
    ):
        runners = {"transformers": reference_runner(folder, cls, task, items)}
        pipes = {}
        for mode in modes:
            go, pipe, docs = our_runner(folder, factory, mode)
            runners[mode], pipes[mode] = go, (pipe, docs)
        best = {key: float("inf") for key in runners}
        for _ in range(args.repeats):
            for key, go in runners.items():  # alternating: one round runs every system once
                start = time.perf_counter()
                go()
                best[key] = min(best[key], time.perf_counter() - start)
        ref_logits = runners["transformers"]()
        ref_time = best["transformers"]
        print(f"{name}: transformers {len(items) / ref_time:8.1f}/s ({ref_time:.2f}s)")
        base_labels = None
        for mode in modes:
            pipe, docs = pipes[mode]
            logits = np.concatenate([p[1] for p in pipe.predict(docs)])
            labels = logits.argmax(-1)
            base_labels = labels if base_labels is None else base_labels
            line = (f"  spacy-luke[{mode}] {len(items) / best[mode]:8.1f}/s ({best[mode]:.2f}s)   x{ref_time / best[mode]:.2f} transformers   "
                    f"max |logit diff| vs transformers {float(np.abs(logits - ref_logits).max()):.2e}   "
                    f"same label as {modes[0]}: {float((labels == base_labels).mean()):.4f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
