"""``python -m spacy_luke export-onnx``: a LUKE head (a checkpoint, or a saved pipeline's pipe) to an
ONNX folder, checked against torch with ONNX Runtime (:mod:`spacy_luke.export`)."""
from __future__ import annotations

import argparse
import sys

from ..export import DEFAULT_OPSET, HEAD_ALIASES, MIN_OPSET  # plain data: spacy_luke.export imports no torch
from ._errors import CliError
from ._io import count

HELP = "LUKE NER / typer / relation / encoder head -> ONNX folder, checked with ONNX Runtime (pip install spacy-luke[onnx])"


def add_command(commands) -> None:
    onnx = commands.add("export-onnx", HELP, run)
    onnx.add_argument("source", help="a LUKE checkpoint folder or hub id, a saved spaCy pipeline with a LUKE pipe, or one saved LUKE pipe's folder")
    onnx.add_argument("output", help="folder to write model.onnx, config.json, tokenizer files and onnx_export.json to (new or empty, unless --overwrite)")
    onnx.add_argument("--head", choices=sorted(HEAD_ALIASES) + sorted(HEAD_ALIASES.values()), default=None, metavar="HEAD", help="the head to export: ner, typer, relation, encoder or textcat (or a model class name); default: the one the checkpoint's config.json names")
    onnx.add_argument("--pipe", default=None, help="a spaCy pipeline with several LUKE pipes: the name of the one to export")
    onnx.add_argument("--opset", type=count(MIN_OPSET), default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET}; at least {MIN_OPSET})")
    onnx.add_argument("--lite", action="store_true", help="keep only the special entities of the entity table (NER, typer, relations feed [MASK] entities only)")
    onnx.add_argument("--int8", action="store_true", help="also write model.int8.onnx: ONNX Runtime's dynamic int8 quantization of the weight products (faster on CPUs; not within --atol)")
    onnx.add_argument("--check", action=argparse.BooleanOptionalAction, default=True, help="run ONNX Runtime against the torch model on two samples of different lengths (default: --check)")
    onnx.add_argument("--atol", type=float, default=1e-4, help="--check: the largest difference from torch float32 allowed (default: 1e-4)")
    onnx.add_argument("--overwrite", action="store_true", help="replace the files of a previous export in the output folder")


def run(args: argparse.Namespace) -> int:
    try:
        from ..export.onnx import export_onnx

        report = export_onnx(
            args.source, args.output, head=args.head, pipe=args.pipe, opset=args.opset, lite=args.lite,
            int8=args.int8, check=args.check, atol=args.atol, overwrite=args.overwrite,
        )
    except FileExistsError as err:
        if "overwrite=True" not in str(err):  # the library's wording; the CLI has a flag for it
            raise
        raise CliError(f"{args.output} is not empty: add --overwrite to replace its files") from None
    except ImportError as err:  # onnx / onnxruntime missing: the message says what to install
        raise CliError(str(err)) from None
    checked = (
        f"ONNX Runtime matches torch float32 within {max(report.max_abs_diff.values()):.1g}"
        if report.max_abs_diff else "not checked (--no-check)"
    )
    print(f"Wrote {report.head} as ONNX (opset {report.opset}) to {report.folder}; {checked}", file=sys.stderr)
    return 0
