"""``python -m spacy_luke convert-encoder``: a BERT / RoBERTa / XLM-R folder to a LUKE checkpoint folder."""
from __future__ import annotations

import argparse
import sys

from ._errors import CliError
from ._io import input_file

HELP = "BERT/RoBERTa/XLM-R checkpoint folder -> LUKE checkpoint folder"


def add_command(commands) -> None:
    encoder = commands.add("convert-encoder", HELP, run)
    encoder.add_argument("source", help="local folder of the encoder: config.json, weights, tokenizer files")
    encoder.add_argument("output", help="folder to write the LUKE checkpoint to (new or empty, unless --overwrite)")
    encoder.add_argument(
        "--entities", default=None, metavar="FILE",
        help="UTF-8 file of entity titles, one per line, or an alias file (alias<TAB>title<TAB>count): the titles become "
        "the entity vocabulary, each entity started from its title's word pieces through the encoder, for build-kb and "
        "luke_entity_linker",
    )
    encoder.add_argument("--overwrite", action="store_true", help="replace the files of a previous conversion in the output folder")


def run(args: argparse.Namespace) -> int:
    from ..convert import convert_encoder_to_luke
    from ..convert.entity_titles import read_entity_titles

    titles = read_entity_titles(input_file(args.entities)) if args.entities else ()
    try:
        folder = convert_encoder_to_luke(args.source, args.output, entity_titles=titles, overwrite=args.overwrite)
    except FileExistsError as err:
        if "overwrite=True" not in str(err):  # the library's wording; the CLI has a flag for it
            raise
        raise CliError(f"{args.output} is not empty: add --overwrite to replace a previous conversion") from None
    with_titles = f" with {len(titles)} entities" if titles else ""
    print(f"Wrote a LUKE checkpoint{with_titles} to {folder}", file=sys.stderr)
    return 0
