"""words/s of ``annotate``: the local engine against ``--engine ray`` with 1 and 2 actors.

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
    "ray-1": ["--engine", "ray", "--concurrency", "1", "--num-cpus", "2"],
    "ray-2": ["--engine", "ray", "--concurrency", "2", "--num-cpus", "1"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=sorted(common.SHAPES))
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workdir", default=None)
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
    words = sum(len(s) for s in sentences)
    results = {name: [] for name in CONFIGS}
    for repeat in range(args.repeats):
        for name, flags in CONFIGS.items():
            out = work / f"out-{name}-{repeat}"
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
    report = {"machine": common.machine(), "shape": args.shape, "text": source, "words": words, "batch_size": args.batch_size, "results": results}
    print(json.dumps(report, indent=1))
    print("\n| engine | words/s (whole command) | words/s (run) | x local |\n|---|---|---|---|")
    base = max(r["words_per_s"] for r in results["local"])
    for name, runs in results.items():
        best = max(runs, key=lambda r: r["words_per_s"])
        print(f"| {name} | {best['words_per_s']:.1f} | {best['run_words_per_s'] or float('nan'):.1f} | {best['words_per_s'] / base:.2f} |")
    return report


if __name__ == "__main__":
    main()
