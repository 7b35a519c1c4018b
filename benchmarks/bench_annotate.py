"""words/s of ``annotate``: the local executor against ``--executor ray`` with 1 and 2 actors, and
Ray Data (``read_parquet`` -> ``map_batches(spacy_luke.ray.LukeAnnotator)`` -> ``write_parquet``)
with 1 and 2 actors (a local cluster of 2 CPUs for 1 actor, 3 logical CPUs for 2: Ray Data's
read and write tasks need one beside the actors); ``local-parquet``: the local executor, Parquet in
and out. The Ray Data runs read the same sentences from one Parquet file (64 rows per row group)
and must give the local executor's entities (checked: offsets, labels, scores to 1e-6). A Ray Data
run's own words/s counts from building the dataset to the written output (the actors' start and
pipeline load included: a dataset run is its whole life).

The pipeline: sentencizer + luke_ner from a random-weight checkpoint of ``--shape`` (bench_ner's
builder, a BPE trained on the text), saved with ``nlp.to_disk``; the input: CoNLL-2003 test
sentences (``--conll-dir FOLDER``, the folder of test.txt; generated ones without it), one per line. Each configuration runs the command line
(``python -m spacy_luke annotate``) in a fresh process, alternating, ``--repeats`` times; words/s
counts spaCy tokens over the wall time of the whole command, model loading and Ray start included
(what a user waits for), and the run's own words/s (its summary line) beside it.

    TOKENIZERS_PARALLELISM=false python benchmarks/bench_annotate.py --shape small --sentences 400
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_ner import build_checkpoint  # noqa: E402

common.SHAPES.setdefault("small", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, entity_emb_size=64))

CONFIGS = {
    "local": [],
    "local-parquet": ["--format", "parquet"],
    "ray-1": ["--executor", "ray", "--concurrency", "1", "--num-cpus", "2"],
    "ray-2": ["--executor", "ray", "--concurrency", "2", "--num-cpus", "1"],
    "ray-data-1": None,
    "ray-data-2": None,
}
#: A Ray Data run in a fresh process: argv = pipeline, parquet input, output folder, batch size, actors.
RAY_DATA = """
import sys, time, ray
from spacy_luke.ray import LukeAnnotator
pipeline, data, out, batch, actors = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ray.init(num_cpus=actors + 1, include_dashboard=False, log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
start = time.perf_counter()
ds = ray.data.read_parquet(data).map_batches(LukeAnnotator, fn_constructor_kwargs={"pipeline": pipeline, "batch_size": batch},
                                             batch_format="pyarrow", batch_size=batch, concurrency=actors, num_cpus=1)
ds.write_parquet(out)
seconds = time.perf_counter() - start
words = sum(len(t.split()) for t in ray.data.read_parquet(data).to_pandas()["text"])
print(f"ray data: {seconds:.2f} s, {words / seconds:.1f} words/s", file=sys.stderr)
"""


def entities_by_text(folder: Path) -> dict:
    import pyarrow.parquet as pq

    from spacy_luke.annotate.parquet import table_records

    records = []
    for path in sorted(folder.glob("*.jsonl")):
        records.extend(json.loads(line) for line in path.read_text(encoding="utf8").splitlines())
    for path in sorted(folder.glob("*.parquet")):
        records.extend(table_records(pq.read_table(path)))
    return {r["text"]: [(e["start"], e["end"], e["label"], e["score"]) for e in r["entities"]] for r in records}


def same_entities(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        [x[:3] for x in a[t]] == [y[:3] for y in b[t]] and all(abs(x[3] - y[3]) <= 1e-6 for x, y in zip(a[t], b[t])) for t in a
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=sorted(common.SHAPES))
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    common.add_conll_argument(parser)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-annotate-"))
    sentences, source = common.load_sentences(args.sentences, conll_dir=args.conll_dir)
    checkpoint = build_checkpoint(work / f"ckpt-{args.shape}", args.shape, sentences, bpe_vocab=8000)
    pipeline = work / f"pipeline-{args.shape}"
    if not (pipeline / "config.cfg").is_file():
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("luke_ner", config={"pretrained": str(checkpoint)})
        nlp.initialize()
        nlp.to_disk(pipeline)
    data = work / "input.txt"
    data.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf8")
    configs = args.configs.split(",")
    if any(name.startswith("ray-data") for name in configs):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": [" ".join(s) for s in sentences]}), work / "input.parquet", row_group_size=64)
    words = sum(len(s) for s in sentences)
    results = {name: [] for name in configs}
    entities = {}
    for repeat in range(args.repeats):
        for name in configs:
            flags = CONFIGS[name]
            out = work / f"out-{name}-{repeat}"
            if flags is None:
                shutil.rmtree(out, ignore_errors=True)
                command = [sys.executable, "-c", RAY_DATA, str(pipeline), str(work / "input.parquet"), str(out), str(args.batch_size), name[-1]]
            else:
                command = [sys.executable, "-m", "spacy_luke", "annotate", str(pipeline), str(data), "-o", str(out),
                           "--batch-size", str(args.batch_size), "--quiet", "--overwrite", *flags]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr[-2000:]}")
            inner = re.search(r"([\d.]+) words/s", done.stderr)
            results[name].append({"seconds": seconds, "words_per_s": words / seconds, "run_words_per_s": float(inner.group(1)) if inner else None})
            print(f"{name} run {repeat}: {seconds:.1f} s, {words / seconds:.1f} words/s (run: {inner.group(1) if inner else '?'})", file=sys.stderr)
            entities.setdefault(name, entities_by_text(out))
    first = entities[configs[0]]
    same = {name: same_entities(first, found) for name, found in entities.items()}
    report = {"machine": common.machine(), "shape": args.shape, "text": source, "words": words, "batch_size": args.batch_size,
              "results": results, f"same_entities_as_{configs[0]}": same}
    print(json.dumps(report, indent=1))
    print("\n| executor | words/s (whole command) | words/s (run) | x first | same entities |\n|---|---|---|---|---|")
    base = max(r["words_per_s"] for r in results[configs[0]])
    for name, runs in results.items():
        best = max(runs, key=lambda r: r["words_per_s"])
        print(f"| {name} | {best['words_per_s']:.1f} | {best['run_words_per_s'] or float('nan'):.1f} | {best['words_per_s'] / base:.2f} | {same[name]} |")
    return report


if __name__ == "__main__":
    main()
