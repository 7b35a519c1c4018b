"""``python -m spacy_luke annotate``: any pipeline over text / JSONL / Parquet files into resumable shards
(:mod:`spacy_luke.annotate`), locally or on Ray."""
from __future__ import annotations

import argparse
import sys

from ._errors import EXIT_INTERRUPTED, CliError, report
from ._io import count

#: annotate's executors (spacy_luke.annotate.run.EXECUTORS; not imported here: --help stays light).
EXECUTORS = ("local", "ray", "ray-data")
HELP = "any pipeline over text / JSONL / Parquet files -> resumable JSONL, DocBin or Parquet shards (local, GPU or Ray)"


def add_command(commands) -> None:
    from ..model.views.precision import precision_names  # the registry's names: no torch imported

    job = commands.add("annotate", HELP, run)
    job.add_argument("pipeline", help="a saved spaCy pipeline (folder or package) with LUKE pipes, or a LUKE checkpoint (gets sentencizer + luke_ner)")
    job.add_argument("inputs", nargs="*", help="UTF-8 text files (one text per line), JSONL files (.jsonl) or Parquet files (.parquet); '-' or none reads stdin")
    job.add_argument("--output", "-o", required=True, help="output folder: manifest.json and part-NNNNN.jsonl / .spacy / .parquet shards (a re-run resumes)")
    job.add_argument("--format", choices=("jsonl", "docbin", "parquet"), default="jsonl", help="shard format (default: jsonl, written as it goes; parquet: pip install 'spacy-luke[parquet]')")
    job.add_argument("--input-format", choices=("auto", "text", "jsonl", "parquet"), default="auto", help="input kind (default: by suffix: .jsonl/.ndjson are JSONL, .parquet/.pq Parquet)")
    job.add_argument("--text-field", default="text", help="JSONL / Parquet: the field or column holding the text (default: text); the others are carried through")
    job.add_argument("--whole-file", action="store_true", help="text inputs: one document per file instead of one per non-empty line")
    job.add_argument("--on-error", choices=("skip", "fail"), default="skip", help="a bad line (not UTF-8, invalid JSON, no text): report and skip it, or stop (default: skip)")
    job.add_argument("--shard-size", type=count(1), default=10000, help="input records per output shard (default: 10000)")
    job.add_argument("--batch-size", type=count(1), default=32, help="texts per nlp.pipe batch (default: 32)")
    job.add_argument("--n-process", type=count(1), default=1, help="local executor on CPUs: processes (default: 1)")
    job.add_argument("--gpu-id", type=count(0), default=None, help="run the LUKE pipes on this CUDA device (default: CPU); with --executor ray: on GPUs (each actor gets its own)")
    job.add_argument("--precision", choices=precision_names(), default=None, help="precision of every LUKE pipe (default: each pipe's own)")
    job.add_argument("--max-batch-cost", type=count(1), default=None, help="padded cost per forward pass for every LUKE pipe (default: the pipe's; x8 on a GPU)")
    job.add_argument("--lang", default="en", help="a LUKE checkpoint as PIPELINE: language of the blank tokenizer (default: en)")
    job.add_argument("--overwrite", action="store_true", help="start over in an output folder that holds another job")
    job.add_argument("--executor", choices=EXECUTORS, default=None, help="where the batches run: local (default: this process, or --n-process processes), ray (a pool of Ray actors, each loading the pipeline once; pip install spacy-luke[ray]) or ray-data (many files on Ray Data: one output per input, a re-run skips the complete ones)")
    job.add_argument("--engine", choices=EXECUTORS, default=None, help=argparse.SUPPRESS)  # --executor's old name
    job.add_argument("--address", default=None, help="ray: the cluster to join (e.g. ray://head:10001 or auto; default: a local cluster)")
    job.add_argument("--concurrency", type=count(1), default=1, help="ray: pipeline actors (each loads the pipeline once; default: 1)")
    job.add_argument("--num-cpus", type=float, default=None, help="ray: CPUs per actor (default: Ray's, 1)")
    job.add_argument("--num-gpus", type=float, default=None, help="ray: GPUs per actor (default: 1 with --gpu-id, else 0)")
    job.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..annotate import annotate

    def inform(message: str) -> None:
        print(message[:1].upper() + message[1:], file=sys.stderr, flush=True)

    executor = args.executor or args.engine or "local"
    if args.engine is not None:
        print("warning: --engine is deprecated, use --executor (a pipe's engine is what runs its predictions)", file=sys.stderr, flush=True)
        if args.executor not in (None, args.engine):
            raise CliError(f"--executor {args.executor} and --engine {args.engine} (its old name) disagree: give --executor only")

    try:
        summary = annotate(
            args.pipeline, args.inputs, args.output,
            input_format=args.input_format, whole_file=args.whole_file, text_field=args.text_field,
            on_error=args.on_error, output_format=args.format, shard_size=args.shard_size,
            batch_size=args.batch_size, n_process=args.n_process, gpu_id=args.gpu_id, precision=args.precision,
            max_batch_cost=args.max_batch_cost, lang=args.lang, overwrite=args.overwrite, executor=executor,
            ray_address=args.address, ray_concurrency=args.concurrency, ray_num_cpus=args.num_cpus,
            ray_num_gpus=args.num_gpus, progress=not args.quiet, inform=inform,
        )
    except KeyboardInterrupt:
        report(f"interrupted: run the same command again to resume (the records written to {args.output} are kept)")
        return EXIT_INTERRUPTED
    if summary.already_complete:
        return 0
    resumed = f"; {summary.resumed} records were already there" if summary.resumed else ""
    print(
        f"Wrote {summary.written} docs ({summary.words} words, {summary.words_per_second:.1f} words/s on {summary.device}) "
        f"to {args.output}; {summary.skipped_bad} bad lines skipped{resumed}",
        file=sys.stderr,
    )
    return 0
