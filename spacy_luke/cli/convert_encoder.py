"""``python -m spacy_luke convert-encoder``: a BERT / RoBERTa / XLM-R folder to a LUKE checkpoint folder."""
from __future__ import annotations

import argparse
import sys

from ._errors import CliError

HELP = "BERT/RoBERTa/XLM-R checkpoint folder -> LUKE checkpoint folder"


def add_command(commands) -> None:
    encoder = commands.add("convert-encoder", HELP, run)
    encoder.add_argument("source", help="local folder of the encoder: config.json, weights, tokenizer files")
    encoder.add_argument("output", help="folder to write the LUKE checkpoint to (new or empty, unless --overwrite)")
    encoder.add_argument("--overwrite", action="store_true", help="replace the files of a previous conversion in the output folder")


def run(args: argparse.Namespace) -> int:
    from ..convert import convert_encoder_to_luke

    try:
        folder = convert_encoder_to_luke(args.source, args.output, overwrite=args.overwrite)
    except FileExistsError as err:
        if "overwrite=True" not in str(err):  # the library's wording; the CLI has a flag for it
            raise
        raise CliError(f"{args.output} is not empty: add --overwrite to replace a previous conversion") from None
    print(f"Wrote a LUKE checkpoint to {folder}", file=sys.stderr)
    return 0
