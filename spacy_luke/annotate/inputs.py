"""Streaming input for ``annotate``: text files (one text per line, or per file), JSONL (a text
field, other fields carried through), Parquet (a text column, other columns carried through: read
a batch of rows at a time, :mod:`.parquet`) or stdin, read one line at a time (constant memory).

A UTF-8 byte order mark at the start of a file is dropped. A bad line (not UTF-8, invalid JSON,
JSON nested too deeply or with a number too long to read, no text field) is reported with its
file and line and skipped (``on_error="skip"``) or stops the run (``"fail"``). Records are numbered in input order
(bad lines excluded): the number decides the output shard, so a re-run over the same input
finds the same shards.
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

FORMATS = ("auto", "text", "jsonl", "parquet")
ON_ERROR = ("skip", "fail")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
STDIN_NAME = "-"
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark


class BadInputError(ValueError):
    """A line that cannot be read: the message starts with FILE:LINE."""


@dataclass(frozen=True)
class InputRecord:
    """One text to annotate.

    index: its number among the good records of the whole input (0-based).
    source: the file it came from ("-" for stdin); line: its line (0 for a whole file).
    fields: the other fields of a JSONL record, carried through to the output.
    """

    index: int
    source: str
    line: int
    text: str
    fields: Dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.line}"



def value_kind(value) -> str:
    """What a JSON (or Parquet) value is, in words: "a number", "null", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a value of type {type(value).__name__}"

def input_format(name: str, fmt: str) -> str:
    """"text", "jsonl" or "parquet" for an input: ``fmt``, or by suffix when "auto" (stdin: text)."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: choose one of {FORMATS}")
    if fmt == "parquet" and name == STDIN_NAME:
        raise ValueError("Parquet input cannot come from stdin: give the Parquet files as inputs")
    if fmt != "auto":
        return fmt
    suffix = Path(name).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "jsonl" if suffix in JSONL_SUFFIXES else "text"


def parquet_inputs(inputs: Sequence[str], fmt: str) -> list:
    """The inputs read as Parquet."""
    return [name for name in inputs if input_format(name, fmt) == "parquet"]


INPUT_SUFFIXES = (".txt",) + JSONL_SUFFIXES + PARQUET_SUFFIXES


def expand_folders(inputs: Sequence[str]) -> list:
    """``inputs`` with each folder replaced by the files below it with an input suffix (.txt, .jsonl,
    .ndjson, .parquet, .pq), sorted by path; a folder with none of them is an error."""
    out = []
    for name in inputs:
        if name != STDIN_NAME and Path(name).is_dir():
            found = sorted(str(p) for p in Path(name).rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                raise ValueError(f"{name}: a folder with no input files ({', '.join(INPUT_SUFFIXES)}) in it")
            out.extend(found)
        else:
            out.append(name)
    return out


def check_inputs(inputs: Sequence[str]) -> None:
    """Fail before any work on an input that does not exist or is a folder."""
    for name in inputs:
        if name == STDIN_NAME:
            continue
        path = Path(name)
        if path.is_dir():
            raise ValueError(f"{name} is a directory, not a file: give the files in it (e.g. {name}/*.txt)")
        if not path.exists():
            raise ValueError(f"{name}: no such input file")


def _binary(name: str):
    if name == STDIN_NAME:
        if sys.stdin is None:
            raise ValueError("<stdin> is closed: pipe text in, or give input files")
        return getattr(sys.stdin, "buffer", None) or io.BytesIO(sys.stdin.read().encode("utf8"))
    return open(name, "rb")


def _lines(name: str) -> Iterator[tuple]:
    """(line number, raw bytes without the newline) of a file, streamed (a leading BOM dropped)."""
    handle = _binary(name)
    try:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            yield number, raw.rstrip(b"\r\n")
    finally:
        if name != STDIN_NAME:
            handle.close()


def count_texts(inputs: Sequence[str], *, fmt: str = "auto", whole_file: bool = False) -> Optional[int]:
    """How many texts ``inputs`` hold (bad ones included: each is reported as it is skipped), for a
    progress bar's total: non-blank lines, Parquet rows (from the files' footers), or files with
    ``whole_file``. None when an input is stdin or cannot be read now (the run says why later)."""
    if not inputs or STDIN_NAME in inputs:
        return None
    total = 0
    try:
        for name in inputs:
            kind = input_format(name, fmt)
            if whole_file and kind == "text":
                total += 1
            elif kind == "parquet":
                from .parquet import parquet_row_count

                total += parquet_row_count(name)
            else:
                with open(name, "rb") as handle:
                    total += sum(1 for raw in handle if raw.strip() and raw.strip() != BOM)
    except (OSError, ValueError, ImportError):
        return None
    return total


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf8")
    except UnicodeDecodeError as err:
        raise BadInputError(f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None


def read_records(
    inputs: Sequence[str],
    *,
    fmt: str = "auto",
    whole_file: bool = False,
    text_field: str = "text",
    on_error: str = "skip",
    report: Optional[Callable[[str], None]] = None,
) -> Iterator[InputRecord]:
    """The records of ``inputs`` ("-" or none: stdin), in order, one line at a time."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}: choose one of {ON_ERROR}")
    report = report or (lambda message: print(f"warning: {message}", file=sys.stderr))
    index = 0
    for name in inputs or [STDIN_NAME]:
        kind = input_format(name, fmt)
        display = "<stdin>" if name == STDIN_NAME else name
        if whole_file and kind == "text":
            handle = _binary(name)
            try:
                data = handle.read()
                if data.startswith(BOM):
                    data = data[len(BOM):]
            finally:
                if name != STDIN_NAME:
                    handle.close()
            try:
                text = _decode(data, display).replace("\r\n", "\n")
            except BadInputError as err:
                if on_error == "fail":
                    raise
                report(f"{err}; skipped")
                continue
            if text.strip():
                yield InputRecord(index, name, 0, text)
                index += 1
            continue
        if kind == "parquet":
            from .parquet import parquet_rows

            for number, text, fields in parquet_rows(name, text_field):
                if not isinstance(text, str):
                    found = value_kind(text)
                    err = BadInputError(f"{display}:{number}: the {text_field!r} column is {found}; each row needs a string there")
                    if on_error == "fail":
                        raise err
                    report(f"{err}; skipped")
                    continue
                yield InputRecord(index, name, number, text, fields)
                index += 1
            continue
        for number, raw in _lines(name):
            where = f"{display}:{number}"
            try:
                record = _parse(raw, where, kind, text_field)
            except BadInputError as err:
                if on_error == "fail":
                    raise
                report(f"{err}; skipped")
                continue
            if record is None:
                continue
            text, fields = record
            yield InputRecord(index, name, number, text, fields)
            index += 1


def _parse(raw: bytes, where: str, kind: str, text_field: str):
    """(text, other fields) of one line; None for a blank line."""
    if not raw.strip():
        return None
    line = _decode(raw, where)
    if kind == "text":
        return line, {}
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadInputError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise BadInputError(f"{where}: JSON nested too deeply to read") from None
    except (ValueError, MemoryError) as err:  # e.g. an integer of over 4,300 digits
        raise BadInputError(f"{where}: JSON that cannot be read ({err})") from None
    if not isinstance(value, dict):
        raise BadInputError(f"{where}: a JSONL record must be an object with a {text_field!r} field, got {value_kind(value)}")
    text = value.get(text_field)
    if not isinstance(text, str):
        found = "missing" if text_field not in value else value_kind(text)
        raise BadInputError(f"{where}: the {text_field!r} field is {found}; each record needs it as a string (--text-field to use another)")
    fields = {k: v for k, v in value.items() if k != text_field}
    return text, fields
