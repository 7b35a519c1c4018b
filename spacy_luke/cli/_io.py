"""What the commands read and write: argument types, input files and stdin, output checks.

Everything is read (and decoded) before any model loads, so that bad input fails at once.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from ._errors import CliError

STDIN, STDOUT = "<stdin>", "<stdout>"


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return int(text)

    return parse


def input_file(name: str) -> Path:
    """``name`` as an existing, non-directory path (FIFOs such as ``<(cmd)`` included)."""
    path = Path(name)
    if path.is_dir():
        raise CliError(f"{name} is a directory, not a file: give the files in it (e.g. {name}/*.txt)")
    if not path.exists():
        raise CliError(f"{name}: no such input file")
    return path


def decode(data: bytes, name: str) -> str:
    """UTF-8 text, or a CliError naming the line and column of the first bad byte."""
    try:
        return data.decode("utf8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise CliError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8"
        ) from None


def check_output(name: Optional[str]) -> None:
    """Fail before any work when the output cannot be written (stdout closed, no such folder)."""
    if name is None:
        if sys.stdout is None:
            raise CliError(f"{STDOUT} is closed: write to a file with --output FILE")
    elif Path(name).is_dir():
        raise CliError(f"{name} is a directory: give --output a file name")
    elif not Path(name).parent.is_dir():
        raise CliError(f"{name}: the folder {Path(name).parent} does not exist")


def read_input(name: str) -> str:
    """A file's or stdin's text, with universal newlines (as text mode reads it)."""
    if name != "-":
        text = decode(input_file(name).read_bytes(), name)
    elif sys.stdin is None:
        raise CliError(f"{STDIN} is closed: pipe text in, or give input files")
    elif hasattr(sys.stdin, "buffer"):  # bytes, so that binary input fails here, not mid-run
        text = decode(sys.stdin.buffer.read(), STDIN)
    else:
        text = sys.stdin.read()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_texts(inputs: Sequence[str], by_line: bool) -> Tuple[List[str], List[str]]:
    """(texts, source names) from files, or stdin for ``-`` / no inputs; all read before any model loads."""
    texts, sources = [], []
    for name in inputs or ["-"]:
        content = read_input(name)
        if by_line:
            for lineno, line in enumerate(content.splitlines(), 1):
                if line.strip():
                    texts.append(line)
                    sources.append(f"{name}:{lineno}")
        else:
            texts.append(content)
            sources.append(name)
    if not any(text.strip() for text in texts):
        names = ", ".join(STDIN if name == "-" else name for name in inputs or ["-"])
        raise CliError(f"no texts in {names}: the input is empty or only blank lines")
    return texts, sources
