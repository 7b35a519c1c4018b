"""Speed of luke_entity_typer (spans/s) and luke_relation_extractor (pairs/s) against transformers.

Run by hand (not in CI), from the repository root:

    python benchmarks/bench_typer_relations.py [--hidden 768 --layers 12 --heads 12 --intermediate 3072] [--docs 200]

Both sides use the same random checkpoint (the test tokenizer; the given shape, luke-base by
default) and the same spans: each doc's ``doc.ents`` (1-3 token spans), all ordered pairs for the
relations. Reference: transformers' LukeTokenizer (task="entity_classification" /
"entity_pair_classification") on batches of ``--batch`` inputs with padding, then
LukeForEntityClassification / LukeForEntityPairClassification under ``torch.no_grad()``.
Ours: ``nlp.pipe`` (input building, batching by cost, decoding, writing to the Doc). CPU,
float32; each side: a warm-up pass on a few docs, then the best of ``--repeats`` timed runs.
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
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed runs per side")
    args = parser.parse_args()

    import spacy
    import torch
    import transformers
    from spacy.tokens import Span

    common.set_threads(args.threads)
    common.tests_on_path()
    from tokenizer_fixtures import make_sentences

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

    def run_reference(folder, cls, task, items):
        tok = transformers.LukeTokenizer.from_pretrained(folder, task=task)
        model = getattr(transformers, cls).from_pretrained(folder).eval()

        def go(batch_items):
            outs = []
            for s in range(0, len(batch_items), args.batch):
                chunk = batch_items[s : s + args.batch]
                enc = tok([t for t, _ in chunk], entity_spans=[sp for _, sp in chunk], padding=True, return_tensors="pt")
                with torch.no_grad():
                    outs.append(model(**enc).logits.numpy())
            return np.concatenate(outs)

        go(items[:8])
        return common.best_of(args.repeats, go, items)

    def run_ours(folder, factory, n_items):
        nlp = spacy.blank("en")
        nlp.add_pipe(factory, config={"pretrained": str(folder)})
        pipe = nlp.get_pipe(factory)
        docs = [nlp.make_doc(d.text) for d in base_docs]
        for d, b in zip(docs, base_docs):
            d.ents = [Span(d, e.start, e.end, label="E") for e in b.ents]
        list(pipe.pipe(docs[:4]))
        best, out = common.best_of(args.repeats, lambda: list(pipe.pipe(docs, batch_size=256)))
        return best, out, pipe

    for name, folder, cls, task, factory, items in (
        ("typer (spans/s)", typer_dir, "LukeForEntityClassification", "entity_classification", "luke_entity_typer", span_inputs),
        ("relations (pairs/s)", rel_dir, "LukeForEntityPairClassification", "entity_pair_classification", "luke_relation_extractor", pair_inputs),
    ):
        ref_time, ref_logits = run_reference(folder, cls, task, items)
        our_time, docs, pipe = run_ours(folder, factory, len(items))
        ours = np.concatenate([p[1] for p in pipe.predict(docs)])
        diff = float(np.abs(ours - ref_logits).max())
        print(f"{name}: transformers {len(items) / ref_time:8.1f}/s ({ref_time:.2f}s)   spacy-luke {len(items) / our_time:8.1f}/s "
              f"({our_time:.2f}s)   speed-up x{ref_time / our_time:.2f}   max |logit diff| {diff:.2e}")


if __name__ == "__main__":
    main()
