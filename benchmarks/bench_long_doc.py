"""Time of each LUKE pipe on one long doc (~20,000 tokens), with and without sentences.

Run by hand (not in CI), from the repository root:

    python benchmarks/bench_long_doc.py [--tokens 20000] [--checkpoint-dir DIR] [--variant both]

The checkpoints are the test fixtures' tiny random-weight models (``tests/support/pipes.py``:
the test tokenizer, hidden size 32, 2 layers), built into ``--checkpoint-dir`` (reused when
there) with ``--max-positions`` 514 so the word window is luke-base's 510 pieces: the model is
cheap and the time left is the pipes' own work (candidates, windows, inputs, batching).

The doc is the fixtures' pseudo-sentences joined to ``--tokens`` tokens; ``sentences`` splits it
with spaCy's sentencizer, ``unsplit`` keeps it one sentence. The pipes run in order
(``luke_ner`` with the default ``max_mention_length`` 16, ``luke_entity_typer``,
``luke_relation_extractor``, ``luke_entity_vectors``), each timed on its own ``pipe(doc)`` call
after a warm-up doc (model loading is not timed): wall time and this process's CPU time (the
steadier of the two on a shared machine; ``--threads 1`` keeps them comparable).

``--windows-from FILE`` times the pipes with another ``spacy_luke/layers/windows.py`` (e.g.
``git show HEAD:spacy_luke/layers/windows.py > /tmp/windows_old.py``) in place of the installed
one's ``plan_windows`` and ``centred_window``. ``--plan-only`` runs no model: it times ``plan_windows``
on the doc's NER candidates and ``centred_window`` on the typer's and relation extractor's items
(over synthetic entities), ours and the file's when given.
"""
import argparse
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def load_windows_file(path: Path):
    """The module in ``path`` as if it were ``spacy_luke.layers.<name>`` (its relative imports work)."""
    spec = importlib.util.spec_from_file_location("spacy_luke.layers._bench_windows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def use_windows(module) -> None:
    """Make the pipes plan their windows with ``module``'s functions."""
    from spacy_luke.layers import marked_inputs, windows

    windows.plan_windows = module.plan_windows
    marked_inputs.centred_windows = module.centred_windows


def build_checkpoints(root: Path, max_positions: int) -> dict:
    seeds = {"ner": 0, "typer": 1, "relations": 3, "encoder": 4}
    return {kind: common.fixture_checkpoint(root, kind, f"{kind}-{max_positions}", seed, max_position_embeddings=max_positions)
            for kind, seed in seeds.items()}


def long_text(nlp, n_tokens: int) -> str:
    common.tests_on_path()
    from support.tokenizers import make_sentences

    parts, count, seed = [], 0, 0
    while count < n_tokens:
        for sentence in make_sentences(400, seed=seed):
            text = sentence.rstrip(".") + "."
            parts.append(text)
            count += len(nlp.make_doc(text))
            if count >= n_tokens:
                break
        seed += 1
    return " ".join(parts)


def make_nlp(folders: dict, sentences: bool):
    import spacy

    nlp = spacy.blank("en")
    if sentences:
        nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(folders["ner"])})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(folders["typer"])})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(folders["relations"])})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(folders["encoder"])})
    return nlp


def candidate_pairs(doc) -> int:
    """Ordered pairs of entities in the same sentence (before any per-sentence cap)."""
    from spacy_luke.layers.doc_pieces import sentence_bounds

    ends = np.asarray([e for _, e in sentence_bounds(doc)], dtype=np.int64)
    ents = [(e.start, e.end) for e in doc.ents]
    sent_of = np.searchsorted(ends, [s for s, _ in ents], side="right")
    inside = np.asarray([end <= ends[i] for (_, end), i in zip(ents, sent_of)], dtype=bool)
    counts = np.bincount(sent_of[inside], minlength=len(ends)) if len(ents) else np.zeros(0, dtype=np.int64)
    return int((counts * (counts - 1)).sum())


def pipe_items(pipe, doc):
    """The items (pairs) a marked-items pipe scores for ``doc`` (a private method: None if it moved)."""
    for method in ("_items", "_pairs"):
        if hasattr(pipe, method):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return getattr(pipe, method)([doc])[0]
    return None


def synthetic_ents(doc) -> None:
    """Entities of 1-3 tokens every few tokens (about as many as the tiny NER model finds), for --plan-only."""
    doc.ents = common.random_ents(doc, np.random.default_rng(0), gap=(0, 3))


def time_plan(nlp, doc, modules: dict) -> None:
    """plan_windows on the NER candidates; centred_window on the typer's and relation extractor's items."""
    from spacy_luke.layers.doc_pieces import sentence_bounds
    from spacy_luke.pipeline._shared.suggesters import sentence_spans_of_docs

    ner, typer, relations = (nlp.get_pipe(name) for name in ("luke_ner", "luke_entity_typer", "luke_relation_extractor"))
    for pipe in (ner, typer, relations):
        pipe._ensure_loaded()
    from spacy_luke.layers.doc_pieces import docs_token_pieces

    pieces = docs_token_pieces(ner.doc_encoder, [doc])[0]
    spans = sentence_spans_of_docs([doc], ner.cfg["max_mention_length"])[0]
    budget = ner._word_budget()
    synthetic_ents(doc)
    pairs = pipe_items(relations, doc)
    cores = {
        "typer": (typer._word_budget(), [(e.start, e.end) for e in doc.ents]),
        "relations": (relations._word_budget(), [(min(h[0], t[0]), max(h[1], t[1])) for h, t in pairs]),
    }
    print(f"  plan_windows on {len(spans):,} NER candidates ({int(pieces.ends[-1]):,} pieces, budget {budget}); "
          f"centred_window on {len(cores['typer'][1]):,} entities and {len(cores['relations'][1]):,} pairs (synthetic ents):")
    for name, module in modules.items():
        took, (windows, dropped) = common.timed(module.plan_windows, pieces.starts, pieces.ends, sentence_bounds(doc), spans, budget)
        line = f"    {name:>16}: plan_windows {took:8.3f} s ({len(windows)} windows, {len(dropped)} dropped)"
        for what, (item_budget, item_cores) in cores.items():
            took, _ = common.timed(lambda: [module.centred_window(pieces.starts, pieces.ends, core, item_budget) for core in item_cores])
            line += f"; {what} {took:7.3f} s"
        print(line)


def run_variant(folders: dict, n_tokens: int, sentences: bool, plan_only: bool, modules: dict) -> None:
    nlp = make_nlp(folders, sentences)
    doc = nlp.make_doc(long_text(nlp, n_tokens))
    n_sents = "one sentence"
    if sentences:
        doc = nlp.get_pipe("sentencizer")(doc)
        n_sents = f"{sum(1 for _ in doc.sents):,} sentences"
    print(f"\n[{'sentences' if sentences else 'unsplit'}] {len(doc):,} tokens, {n_sents}")
    if plan_only:
        time_plan(nlp, doc, modules)
        return
    nlp("Tokyo is a big city. Paris is in France.")  # load the models before timing
    total = total_cpu = 0.0
    for name, proc in nlp.pipeline:
        if name == "sentencizer":
            continue
        watch = common.Stopwatch()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            doc = proc(doc)
        took, cpu = watch.read()
        total += took
        total_cpu += cpu
        if name == "luke_ner":
            what = f"{len(doc.ents):,} entities"
        elif name == "luke_entity_typer":
            what = f"{sum(e._.luke_types is not None for e in doc.ents):,} entities typed"
        elif name == "luke_relation_extractor":
            scored = pipe_items(nlp.get_pipe(name), doc)
            scored = f"{len(scored):,}" if scored is not None else "?"
            what = f"{candidate_pairs(doc):,} candidate pairs, {scored} scored, {len(doc._.luke_relations or []):,} relations"
        else:
            what = f"{sum(e._.luke_vector is not None for e in doc.ents):,} entity vectors"
        note = f"  [{len(caught)} warning(s): {str(caught[0].message)[:90]}...]" if caught else ""
        print(f"  {name:<24} {took:9.2f} s wall {cpu:9.2f} s cpu   {what}{note}")
    print(f"  {'all four pipes':<24} {total:9.2f} s wall {total_cpu:9.2f} s cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="where the tiny checkpoints are built (reused when there)")
    parser.add_argument("--max-positions", type=int, default=514, help="max_position_embeddings of the checkpoints (window = this - 4)")
    parser.add_argument("--variant", choices=["both", "sentences", "unsplit"], default="both")
    parser.add_argument("--windows-from", type=Path, default=None, help="another windows.py to plan windows with")
    parser.add_argument("--plan-only", action="store_true", help="no model: time plan_windows and centred_window alone")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    import torch

    import spacy_luke  # noqa: F401  (registers the factories)
    from spacy_luke.layers import windows

    common.set_threads(args.threads)
    root = args.checkpoint_dir or Path(tempfile.mkdtemp(prefix="bench-long-doc-"))
    root.mkdir(parents=True, exist_ok=True)
    folders = build_checkpoints(root, args.max_positions)
    modules = {"ours": windows}
    if args.windows_from is not None:
        other = load_windows_file(args.windows_from)
        modules[args.windows_from.name] = other
        if not args.plan_only:
            use_windows(other)
    print(f"CPU: {common.cpu_model()}; torch threads: {torch.get_num_threads()}; checkpoints: {root}"
          + (f"; windows from {args.windows_from}" if args.windows_from and not args.plan_only else ""))
    for sentences in {"both": (True, False), "sentences": (True,), "unsplit": (False,)}[args.variant]:
        run_variant(folders, args.tokens, sentences, args.plan_only, modules)


if __name__ == "__main__":
    main()
