"""ONNX Runtime vs our torch modes on the NER head: the same padded batches, in turn.

Run by hand (not in CI), from the repository root::

    TOKENIZERS_PARALLELISM=false python benchmarks/bench_onnx.py --shape base --sentences 100

1. The checkpoint of ``bench_ner.py`` (luke-base shape, random weights, tied queries, 8k BPE,
   lite entity vocabulary), built once in ``--work-dir``; exported with
   ``export_onnx(int8=True)``: the float32 graph (checked against torch to 1e-4) and its int8
   quantization (ONNX Runtime's dynamic quantization of the weight products, per channel).
2. The first ``--sentences`` sentences of CoNLL-2003 test (``--conll-dir FOLDER``; generated text
   without it), every span of up to 16 tokens a
   candidate, one pass per sentence: ``luke_ner``'s own plan and padded batches (its
   ``max_batch_cost``), built once; every system runs exactly those arrays.
3. Systems, alternating ``--chunk`` batches at a time: the thinc layer's ``predict`` in each torch
   ``--modes`` precision (unpadded encoder, as the pipe runs it), and ``OnnxRunner.predict`` (the
   padded graph). Model time only: no input building or decoding.

Prints batches/s and words/s per system, the ratio of each ONNX Runtime system to each torch
mode, and how the ONNX Runtime outputs compare with torch float32 on the real candidate rows
(largest |difference|, same argmax decision). ``--json PATH`` writes every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_ner import build_checkpoint, make_docs  # noqa: E402


def ner_pipe(folder: Path, precision: str, max_len: int, max_batch_cost: int):
    import spacy

    import spacy_luke  # noqa: F401

    nlp = spacy.blank("en")
    config = {"pretrained": str(folder), "max_mention_length": max_len, "max_entities_per_pass": 4096, "precision": precision}
    if max_batch_cost:
        config["max_batch_cost"] = max_batch_cost
    ner = nlp.add_pipe("luke_ner", config=config)
    ner._ensure_loaded()
    return nlp, ner


def exported(folder: Path, work: Path) -> Path:
    """The float32 and int8 export of ``folder`` in ``work``, made once."""
    from spacy_luke.export import export_onnx

    target = work / "onnx"
    if not (target / "onnx_export.json").is_file():
        report = export_onnx(folder, target, int8=True, overwrite=True)
        print(f"exported {target}: max |onnx - torch| {report.max_abs_diff}, int8 {report.int8_max_abs_diff}", flush=True)
    return target


def real_rows(batch: Dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
    return out[batch["entity_attention_mask"].astype(bool)]


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(common.SHAPES), default="base")
    parser.add_argument("--work-dir", default=os.environ.get("SPACY_LUKE_BENCH_DIR", "/tmp/spacy-luke-bench"))
    common.add_conll_argument(parser)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--max-mention-length", type=int, default=16)
    parser.add_argument("--modes", default="float32,int8,bfloat16", help="torch precisions of the thinc layer, comma-separated")
    parser.add_argument("--ort", default="ort-float32,ort-int8", help="ONNX Runtime systems: ort-float32, ort-int8")
    parser.add_argument("--chunk", type=int, default=2, help="batches per alternation step")
    parser.add_argument("--threads", type=int, default=0, help="torch and ONNX Runtime intra-op threads (0: torch's default)")
    parser.add_argument("--max-batch-cost", type=int, default=0, help="luke_ner max_batch_cost (default: the pipe's)")
    parser.add_argument("--max-padding", type=float, default=None,
                        help="padded slots over real ones a batch may hold (default: the torch engine's max_padding, loose: its encoder skips padding)")
    parser.add_argument("--bpe-vocab", type=int, default=8000)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    import torch

    from spacy_luke.export.ort_runner import OnnxRunner

    threads = args.threads or torch.get_num_threads()
    work = Path(args.work_dir) / f"luke-{args.shape}-ner-bpe{args.bpe_vocab}"
    sentences, source = common.load_sentences(args.sentences, conll_dir=args.conll_dir)
    train_text = sentences
    if (args.conll_dir / "train.txt").is_file():
        train_text = common.conll_sentences(args.conll_dir / "train.txt") + common.conll_sentences(args.conll_dir / "test.txt")
    folder = build_checkpoint(work, args.shape, train_text, args.bpe_vocab)
    ort_names = [name.strip() for name in args.ort.split(",") if name.strip()]
    onnx_dir = exported(folder, work)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    pipes = {f"torch-{mode}": ner_pipe(folder, mode, args.max_mention_length, args.max_batch_cost) for mode in modes}
    nlp, ner = next(iter(pipes.values()))
    docs = make_docs(nlp.vocab, sentences)
    from spacy_luke.layers.batch_runner import padded_batches

    plan = ner.model.get_ref("inputs").predict(ner.model_input(docs))
    runner = ner.model.get_ref("runner")
    if args.max_padding is None:
        batches = [padded for _, padded in padded_batches(runner, plan)]
    else:  # the pipe's batching with another padding limit
        from spacy_luke.layers.bucketing import bucket_by_cost

        costs = [(x.n_words, x.n_entities) for x in plan.inputs]
        groups = bucket_by_cost(costs, ner.cfg["max_batch_cost"], args.max_padding)
        batches = list(ner.doc_encoder.padded_span_batches(plan.inputs, groups))
    n_words = sum(len(s) for s in sentences)
    slots = sum(b["input_ids"].size + b["entity_ids"].size for b in batches)
    real = sum(int(b["attention_mask"].sum() + b["entity_attention_mask"].sum()) for b in batches)

    from spacy_luke.layers import head_layer

    runners = {name: (lambda model: lambda part: [model.predict(b) for b in part])(head_layer(pipe.model)) for name, (_, pipe) in pipes.items()}
    for name in ort_names:
        runner = OnnxRunner.from_folder(onnx_dir, precision=name.split("-")[1], threads=threads)
        runners[name] = (lambda r: lambda part: [r.predict(b) for b in part])(runner)
    info = common.machine()
    info["ort_threads"] = str(threads)
    import onnxruntime

    info["onnxruntime"] = onnxruntime.__version__
    print(f"machine: {info}")
    print(f"data: {source}: {n_words} words, {len(plan.inputs)} passes in {len(batches)} padded batches "
          f"(max_batch_cost {ner.cfg['max_batch_cost']}, max padding {'the pipe default' if args.max_padding is None else args.max_padding}) "
          f"({real} real of {slots} word + entity slots: {1 - real / slots:.0%} padding)", flush=True)
    for run in runners.values():  # warm-up: kernel selection, the int8 view, ORT's first-run allocations
        run(batches[:2])

    def progress(done, walls):
        print(f"  {done}/{len(batches)} batches: " + ", ".join(f"{k} {done / v:.2f} b/s" for k, v in walls.items()), flush=True)

    results, walls, _ = common.alternate(runners, batches, args.chunk, on_chunk=progress)
    reference = results.get("torch-float32")
    report = {"machine": info, "command": " ".join(sys.argv), "checkpoint": str(folder), "data": source, "words": n_words,
              "batches": len(batches), "padding": 1 - real / slots, "max_batch_cost": ner.cfg["max_batch_cost"],
              "max_padding": args.max_padding, "systems": {}}
    for name, wall in walls.items():
        entry = {"seconds": wall, "batches_per_s": len(batches) / wall, "words_per_s": n_words / wall}
        if reference is not None and name != "torch-float32":
            diffs, same, total = [], 0, 0
            for batch, ref, got in zip(batches, reference, results[name]):
                a, b = real_rows(batch, np.asarray(ref)), real_rows(batch, np.asarray(got))
                diffs.append(float(np.abs(a - b).max()))
                same += int((a.argmax(-1) == b.argmax(-1)).sum())
                total += len(a)
            entry["vs_float32"] = {"max_abs_diff": max(diffs), "same_argmax": same / max(1, total), "rows": total}
        report["systems"][name] = entry
    torch_names = [n for n in walls if n.startswith("torch-")]
    for name in ort_names:
        report["systems"][name]["speed_vs"] = {t: walls[t] / walls[name] for t in torch_names}
    print(json.dumps(report, indent=1))
    print()
    print("| system | batches/s | words/s | " + " | ".join(f"x {t}" for t in torch_names) + " | max diff vs float32 | same argmax |")
    print("|---|---|---|" + "---|" * len(torch_names) + "---|---|")
    for name, e in report["systems"].items():
        ratios = " | ".join(f"{walls[t] / walls[name]:.2f}" for t in torch_names)
        cmp = e.get("vs_float32", {})
        print(f"| {name} | {e['batches_per_s']:.2f} | {e['words_per_s']:.1f} | {ratios} | "
              f"{cmp.get('max_abs_diff', 0.0):.2g} | {cmp.get('same_argmax', 1.0):.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
