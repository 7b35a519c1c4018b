"""``python -m spacy_luke convert-conll``: a CoNLL-2003 style NER file to a ``.spacy`` DocBin."""
from __future__ import annotations

import argparse
import sys

from ._io import count, input_file

HELP = "CoNLL-2003 style NER file -> .spacy DocBin"


def add_command(commands) -> None:
    conll = commands.add("convert-conll", HELP, run)
    conll.add_argument("input", help="UTF-8 CoNLL file: 'token TAG ...' lines (IOB1 or IOB2 tags in the 2nd column), blank lines between sentences")
    conll.add_argument("output", help="the .spacy file to write (its folder is created)")
    conll.add_argument("--n-sents", type=count(1), default=10, help="sentences per doc (document context; default: 10)")
    conll.add_argument("--limit", type=count(0), default=0, help="keep only the first N sentences (default 0: all)")


def run(args: argparse.Namespace) -> int:
    from ..corpora.conll import convert_conll

    n = convert_conll(input_file(args.input), args.output, n_sents=args.n_sents, limit=args.limit)
    print(f"Wrote {n} docs to {args.output}", file=sys.stderr)
    return 0
