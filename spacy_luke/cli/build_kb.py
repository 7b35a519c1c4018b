"""``python -m spacy_luke build-kb``: an alias file and a LUKE checkpoint to a spaCy knowledge base."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._errors import CliError
from ._io import input_file

HELP = "alias file + LUKE checkpoint -> spaCy knowledge base (entity vectors = LUKE's entity embeddings)"


def add_command(commands) -> None:
    kb = commands.add("build-kb", HELP, run)
    kb.add_argument("aliases", help="UTF-8 TSV file of alias<TAB>title<TAB>count lines (titles without a language prefix)")
    kb.add_argument("checkpoint", help="hub id or local folder of a LUKE / mLUKE checkpoint (with its entity vocabulary)")
    kb.add_argument("output", help="folder to write the knowledge base to (kb.to_disk; give it to the linker with linker.set_kb(FOLDER))")
    kb.add_argument("--lang", default=None, help="mLUKE: the language prefix of the titles, e.g. en (default: none, LUKE titles)")


def run(args: argparse.Namespace) -> int:
    from ..pipeline._linker.kb_builder import build_kb_with_report

    aliases = input_file(args.aliases)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CliError(f"{args.output} is a file: give build-kb a folder to write the knowledge base to")
    kb, report = build_kb_with_report(aliases, args.checkpoint, language=args.lang)
    kb.to_disk(output)
    print(
        f"Wrote a knowledge base to {output}: {report.entities} entities, {report.aliases} aliases; "
        f"skipped {len(report.skipped_titles)} titles not in the entity vocabulary"
        f" ({report.skipped_aliases} aliases with none left)",
        file=sys.stderr,
    )
    return 0
