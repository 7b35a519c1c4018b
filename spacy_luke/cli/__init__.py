"""Command line: ``python -m spacy_luke COMMAND``, one module per command.

- ``ner`` (:mod:`.ner`): run luke_ner over text files (or stdin) and write JSONL or a displaCy HTML page.
- ``convert-conll`` (:mod:`.convert_conll`): CoNLL-2003 style NER files to ``.spacy`` DocBins.
- ``convert-encoder`` (:mod:`.convert_encoder`): a BERT / RoBERTa / XLM-R checkpoint folder to a
  LUKE checkpoint folder.
- ``annotate`` (:mod:`.annotate`): any pipeline over text / JSONL files, streamed into resumable
  JSONL / DocBin shards, locally (CPU or GPU) or on Ray (``spacy_luke.annotate``).
- ``serve`` (:mod:`.serve`): any pipeline behind an HTTP endpoint that batches across requests
  (``spacy_luke.serve``), on uvicorn; a page to try it.
- ``build-kb`` (:mod:`.build_kb`): an alias file and a LUKE checkpoint to a spaCy knowledge base
  (for entity linking).
- ``export-onnx`` (:mod:`.export_onnx`): a LUKE NER / typer / relation / encoder head (a checkpoint
  or a saved pipeline's pipe) to an ONNX folder, checked against torch with ONNX Runtime
  (``spacy_luke.export``).
- ``train-pruner`` (:mod:`.train_pruner`): a trained luke_ner pipeline plus its training data to the
  same pipeline with a learned span pruner (``spacy_luke.pipeline._ner.pruner_training``).

Each command module has ``add_command(commands)``, which adds its parser and its run function.
Building the parser imports nothing heavy (no spaCy, torch or tqdm): a command imports what it
needs when it runs. Every failure is one line on stderr, ``error: FILE[:LINE]: what is wrong;
the fix``, and exit code 2, never a traceback (:mod:`._errors`); ``--debug`` (or
``SPACY_LUKE_DEBUG=1``) re-raises instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn, Optional, Sequence

from ._errors import EXIT_INTERRUPTED, EXIT_USAGE, CliError, error_line, report
from ._io import STDOUT

__all__ = ["main", "make_parser", "CliError", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EPILOG = """\
Every failure prints one line on stderr (error: FILE[:LINE]: what is wrong; the fix) and exits
with status 2, empty input included. For the Python traceback (to debug or report a bug), add
--debug after the command or set SPACY_LUKE_DEBUG=1.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (subcommand parsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        report(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)


class Commands:
    """The subcommands being assembled: a command module's ``add_command(commands)`` calls
    :meth:`add` and adds its arguments to the parser it gets."""

    def __init__(self, parser: argparse.ArgumentParser):
        self._subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self._common = argparse.ArgumentParser(add_help=False)
        self._common.add_argument("--debug", action="store_true", help="show the Python traceback of a failure (also: SPACY_LUKE_DEBUG=1)")

    def add(self, name: str, help: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        """The parser of command ``name``, which calls ``run(args)``."""
        sub = self._subparsers.add_parser(name, help=help, description=help, epilog=EPILOG, parents=[self._common],
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=run)
        return sub


def make_parser() -> argparse.ArgumentParser:
    from . import annotate, build_kb, convert_conll, convert_encoder, export_onnx, ner, serve, train_pruner

    parser = _Parser(
        prog="python -m spacy_luke", description="LUKE in spaCy pipelines.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = Commands(parser)
    for command in (ner, convert_conll, convert_encoder, annotate, serve, build_kb, export_onnx, train_pruner):
        command.add_command(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    if args.debug or os.environ.get("SPACY_LUKE_DEBUG", "0") not in ("", "0"):
        return args.func(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away: say so once, and keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        report(f"{STDOUT}: the reader closed the pipe before all output was written")
    except Exception as err:  # never a traceback: one line, the file named by the message
        report(error_line(err))
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
