"""``python -m spacy_luke train-pruner``: a trained luke_ner pipeline plus its training data to the
same pipeline with a learned span pruner (the training: :mod:`spacy_luke.pipeline._ner.pruner_training`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._errors import CliError
from ._io import count

HELP = "add a learned span pruner to a trained luke_ner pipeline (its NER weights unchanged): fewer candidates get the full LUKE pass"


def add_command(commands) -> None:
    pruner = commands.add("train-pruner", HELP, run)
    pruner.add_argument("pipeline", help="a saved spaCy pipeline with one luke_ner pipe")
    pruner.add_argument("train", help="a .spacy file of docs with gold entities (the NER training data)")
    pruner.add_argument("output", help="folder to save the pipeline with the pruner to (new or empty, unless --overwrite)")
    pruner.add_argument("--dev", default=None, help="a .spacy file to report on: the share of gold entities the kept candidates hold")
    pruner.add_argument("--pipe", default=None, help="the luke_ner pipe's name, when the pipeline has several")
    pruner.add_argument("--layers", type=count(1), default=2, help="encoder layers the pruner runs over the words (default: 2)")
    pruner.add_argument("--hidden-width", type=count(1), default=128, help="the pruner's hidden width (default: 128)")
    pruner.add_argument("--keep-per-word", type=float, default=1.0, help="candidates kept per token of a doc, rounded up (default: 1.0)")
    pruner.add_argument("--min-probability", type=float, default=0.0, help="also drop candidates below this pruner probability (default: 0)")
    pruner.add_argument("--epochs", type=count(1), default=2, help="passes over the training data (default: 2)")
    pruner.add_argument("--batch-size", type=count(1), default=32, help="docs per step (default: 32)")
    pruner.add_argument("--learn-rate", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    pruner.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    pruner.add_argument("--overwrite", action="store_true", help="replace the files in a non-empty output folder")


def run(args: argparse.Namespace) -> int:
    """Check the paths, train, report on stderr."""
    if not Path(args.output).parent.is_dir():
        raise CliError(f"{args.output}: the folder {Path(args.output).parent} does not exist")
    for name in (args.pipeline, args.train) + ((args.dev,) if args.dev else ()):
        if not Path(name).exists():
            raise CliError(f"{name}: no such file or folder")
    if Path(args.output).exists() and any(Path(args.output).iterdir()) and not args.overwrite:
        raise CliError(f"{args.output} is not empty: add --overwrite to replace its files")
    from ..pipeline._ner.span_pruning import SpanPruning
    from ..pipeline._ner.pruner_training import report_lines, train_span_pruner

    pruning = SpanPruning(args.layers, args.hidden_width, args.keep_per_word, args.min_probability)
    report = train_span_pruner(
        Path(args.pipeline), Path(args.train), Path(args.output), pipe_name=args.pipe, dev=Path(args.dev) if args.dev else None,
        pruning=pruning, epochs=args.epochs, batch_size=args.batch_size, learn_rate=args.learn_rate, seed=args.seed,
        log=lambda line: print(line, file=sys.stderr),
    )
    for line in report_lines(report):
        print(line, file=sys.stderr)
    print(f"Wrote the pipeline with its span pruner to {args.output}", file=sys.stderr)
    return 0
