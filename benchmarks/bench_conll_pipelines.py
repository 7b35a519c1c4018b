"""Trained NER pipelines on CoNLL-2003 test in one run, alternating: F1 and words/s side by side.

Run by hand (not in CI), from the repository root, after training (e.g. ``spacy train
project/configs/luke_ner.cfg`` and ``project/configs/trf_ner.cfg``, or spaCy's own ``ner`` trained on
the same corpus: ``python -m spacy init config ner.cfg --lang en --pipeline ner`` then
``python -m spacy train ner.cfg --paths.train corpus/train.spacy --paths.dev corpus/dev.spacy``):

    python benchmarks/bench_conll_pipelines.py corpus/test.spacy \\
        luke_ner=training/model-last luke_ner-int8=training/model-last:precision=int8 \\
        trf_ner=trf/model-last [--chunk 200] [--threads 0]

Each system is ``NAME=PATH[:setting=value,...]``: a saved pipeline, with settings written into
its LUKE pipes' ``cfg`` (``precision``, ``engine``, ``skip_longer_than_trained``, ...) or into
luke_ner's span pruner (``keep_per_word``, ``min_probability``; ``pruning=null``: off). The test
docs are cut into chunks of ``--chunk`` sentences; every chunk runs through every system in turn
(``common.alternate``; ``nlp.pipe`` on the gold tokens, default batch size), so load on a shared
machine hits all alike. Reported per system: words/s (wall time of its chunks), spaCy's ents P/R/F on the whole
set, and against the first system: the share of its entities found (same start, end, label).
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse_system(text: str):
    name, _, rest = text.partition("=")
    path, _, settings = rest.partition(":")
    values = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        try:
            values[key] = json.loads(value)  # numbers, true / false / null
        except ValueError:
            values[key] = value  # a plain string: int8, onnxruntime, ...
    return name, Path(path), values


#: Settings of luke_ner's span pruner (``pruning=null`` turns it off).
PRUNING_KEYS = ("pruning", "keep_per_word", "min_probability")


def load(path: Path, settings: dict):
    import spacy

    from spacy_luke.layers import architectures
    from spacy_luke.pipeline._shared.base import LukePipe

    nlp = spacy.load(path)
    settings = dict(settings)
    pruning = {key: settings.pop(key) for key in PRUNING_KEYS if key in settings}
    for _, pipe in nlp.pipeline:
        if pruning and getattr(pipe, "pruning", None) is not None:  # luke_ner's span pruner
            disabled = "pruning" in pruning and pruning.pop("pruning") is None
            pipe.pruning = None if disabled else dataclasses.replace(pipe.pruning, **pruning)
        if isinstance(pipe, LukePipe) and settings:
            pipe.cfg.update(settings)
            architectures.set_precision(pipe.model, pipe.cfg.get("precision", "float32"))
            if hasattr(architectures, "set_engine"):  # older code (compared by PYTHONPATH) has no engines
                architectures.set_engine(pipe.model, pipe.cfg.get("engine", "torch"))
    return nlp


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a .spacy DocBin with gold entities (e.g. corpus/test.spacy)")
    parser.add_argument("systems", nargs="+", help="NAME=PATH[:setting=value,...]")
    parser.add_argument("--chunk", type=int, default=200, help="sentences per alternation step")
    parser.add_argument("--limit", type=int, default=0, help="only the first N docs")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)

    from spacy.scorer import Scorer
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example

    systems = {}
    for text in args.systems:
        name, path, settings = parse_system(text)
        systems[name] = load(path, settings)
    first = next(iter(systems.values()))
    gold = list(DocBin().from_disk(args.data).get_docs(first.vocab))
    if args.limit:
        gold = gold[: args.limit]
    n_words = sum(len(d) for d in gold)
    info = common.machine()
    print(f"machine: {info}\ndata: {args.data}: {len(gold)} docs, {n_words} words")

    def runner(nlp):
        def run(chunk):  # the gold tokens as a new Doc of this pipeline's vocab (a few ms a chunk), tagged
            docs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in chunk]
            return list(nlp.pipe(docs))

        return run

    runners = {name: runner(nlp) for name, nlp in systems.items()}
    for run in runners.values():  # warm-up: loads weights, builds views / ONNX graphs
        run(gold[:16])

    def progress(done, walls):
        words = sum(len(d) for d in gold[:done])
        print(f"  {done}/{len(gold)}: " + ", ".join(f"{k} {words / v:.0f} w/s" for k, v in walls.items()), flush=True)

    predicted, seconds, _ = common.alternate(runners, gold, args.chunk, on_chunk=progress)

    report = {"machine": info, "command": " ".join(sys.argv), "docs": len(gold), "words": n_words, "systems": {}}
    base_name = next(iter(systems))
    base_ents = [{(e.start, e.end, e.label_) for e in d.ents} for d in predicted[base_name]]
    for name in systems:
        examples = [Example(p, g) for p, g in zip(predicted[name], gold)]
        scores = Scorer.score_spans(examples, "ents")
        ents = [{(e.start, e.end, e.label_) for e in d.ents} for d in predicted[name]]
        found = sum(len(a & b) for a, b in zip(base_ents, ents))
        report["systems"][name] = {
            "words_per_s": n_words / seconds[name],
            "seconds": seconds[name],
            "ents_p": scores["ents_p"],
            "ents_r": scores["ents_r"],
            "ents_f": scores["ents_f"],
            f"entities_found_vs_{base_name}": found / max(1, sum(len(b) for b in base_ents)),
            "entities": sum(len(e) for e in ents),
        }
    print(json.dumps(report, indent=1))
    print(f"\n| system | words/s | P | R | F1 | entities found vs {base_name} |\n|---|---|---|---|---|---|")
    for name, e in report["systems"].items():
        print(f"| {name} | {e['words_per_s']:.0f} | {100 * e['ents_p']:.2f} | {100 * e['ents_r']:.2f} | {100 * e['ents_f']:.2f} | "
              f"{100 * e[f'entities_found_vs_{base_name}']:.2f}% ({e['entities']}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
