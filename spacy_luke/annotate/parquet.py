"""Parquet in and out for ``annotate`` (the optional extra ``parquet``: pyarrow, imported lazily).

**Input.** A Parquet file is read one row group at a time, in batches of rows (never the whole
file: memory holds about one row group). The text is the ``text_field`` column; every other
column is carried through. A record's ``line`` is its row number in the file, from 1; a row whose
text is null or not a string is a bad row (``FILE:ROW: ...``), reported and skipped as a bad line is.

**Output.** The record of a doc is the JSONL record (:mod:`.records`) in columns, with this schema
(:data:`RECORD_SCHEMA`), the input's carried columns first:

- ``source``: string, ``line``: int64, ``text``: string;
- ``entities``: list of struct ``{start: int64, end: int64, label: string, text: string,
  score: double, kb_id: string, kb_scores: list<struct<kb_id: string, score: double>>,
  types: map<string, double>}`` (``kb_scores`` / ``types`` null when that pipe did not run);
- ``relations``: list of struct ``{head: list<int64>, tail: list<int64>, label: string, score: double}``;
- ``cats``: map<string, double>.

The JSONL pairs ``kb_scores: [[kb_id, probability], ...]`` are the structs' ``kb_id`` and ``score``;
the JSONL objects ``types`` and ``cats`` are the maps (pandas shows a map as a list of
``(key, value)`` pairs). :func:`table_records` turns a table back into the JSONL records.

Carried columns keep their Parquet input's types. Fields carried from JSONL take the type
pyarrow infers from a shard's values; a field whose values mix kinds (a number in one record, a
string in another) is written as its JSON text. Values that JSON cannot hold (timestamps, dates,
decimals, bytes) are ISO text, decimal text and base64 in JSONL output.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

#: Rows read from a Parquet input at a time (within a row group).
READ_BATCH_ROWS = 1024
#: Rows per row group of an output shard.
ROW_GROUP_ROWS = 2048
MISSING_PYARROW = "Parquet input or output needs pyarrow: pip install 'spacy-luke[parquet]'"
OWN_COLUMNS = ("source", "line", "text", "entities", "relations", "cats")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ValueError(MISSING_PYARROW) from None
    return pyarrow


def record_schema():
    """The schema of annotate's own columns (see the module docstring)."""
    pa = _pyarrow()
    scores = pa.map_(pa.string(), pa.float64())
    kb_score = pa.struct([("kb_id", pa.string()), ("score", pa.float64())])
    entity = pa.struct(
        [
            ("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("text", pa.string()),
            ("score", pa.float64()), ("kb_id", pa.string()), ("kb_scores", pa.list_(kb_score)), ("types", scores),
        ]
    )
    relation = pa.struct([("head", pa.list_(pa.int64())), ("tail", pa.list_(pa.int64())), ("label", pa.string()), ("score", pa.float64())])
    return pa.schema(
        [
            ("source", pa.string()), ("line", pa.int64()), ("text", pa.string()), ("entities", pa.list_(entity)),
            ("relations", pa.list_(relation)), ("cats", scores),
        ]
    )


# ------------------------------------------------------------------------------------ input


def _open(path: str):
    pa = _pyarrow()
    try:
        return pa.parquet.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err}); give --input-format text or jsonl for other files") from None


def parquet_row_count(path: str) -> int:
    """The rows of a Parquet file, from its footer (no row group is read)."""
    return _open(path).metadata.num_rows


def carried_schema(paths: Sequence[str], text_field: str):
    """The carried columns of Parquet inputs (all but ``text_field``), one schema for all of them.

    Reads only each file's footer; fails before any work on a file that is not Parquet, lacks the
    text column, or types a column differently from another input.
    """
    pa = _pyarrow()
    schemas = []
    for path in paths:
        schema = _open(path).schema_arrow
        if text_field not in schema.names:
            raise ValueError(
                f"{path}: no {text_field!r} column (columns: {', '.join(schema.names)}): give --text-field with the column holding the text"
            )
        schemas.append(pa.schema([f for f in schema if f.name != text_field and f.name not in OWN_COLUMNS]))
    try:
        return pa.unify_schemas(schemas) if schemas else pa.schema([])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"the Parquet inputs type a column differently ({err}): annotate them in separate jobs") from None


def parquet_rows(path: str, text_field: str) -> Iterator[Tuple[int, Any, Dict[str, Any]]]:
    """(row number from 1, text value, other columns) of each row, a batch of rows at a time."""
    handle = _open(path)
    row = 0
    for group in range(handle.num_row_groups):  # one at a time: iter_batches over all of them reads far ahead
        for batch in handle.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=[group], use_threads=False):
            for values in batch.to_pylist():
                row += 1
                text = values.pop(text_field, None)
                yield row, text, values


# ------------------------------------------------------------------------------------ values


def _column(pa, name: str, values: List[Any], kind):
    """``values`` (JSON forms) as an Arrow array of ``kind`` (None: inferred)."""
    if kind is None:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):  # mixed kinds: JSON text
            return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], type=pa.string())
    try:
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):  # base64 in JSON
            return pa.array([None if v is None else base64.b64decode(v) for v in values], type=kind)
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    try:  # the JSON text of a timestamp, a date, a decimal: back to the input's type
        return pa.array(values, type=pa.string()).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        raise ValueError(f"column {name!r} ({kind}) cannot be written to Parquet from its JSON form: use --format jsonl") from None


def _entity_row(entity: Dict[str, Any]) -> Dict[str, Any]:
    kb_scores = entity.get("kb_scores")
    return {**entity, "kb_scores": None if kb_scores is None else [{"kb_id": k, "score": p} for k, p in kb_scores]}


def records_table(records: List[Dict[str, Any]], carried=None):
    """The Arrow table of annotate ``records`` (the JSONL form): own columns in :func:`record_schema`,
    carried columns typed by ``carried`` (a schema; columns it lacks are inferred)."""
    pa = _pyarrow()
    own = record_schema()
    names: Dict[str, None] = {}
    for record in records:
        names.update((key, None) for key in record if key not in OWN_COLUMNS)
    columns, fields = [], []
    for name in names:
        kind = carried.field(name).type if carried is not None and name in carried.names else None
        array = _column(pa, name, [record.get(name) for record in records], kind)
        columns.append(array)
        fields.append(pa.field(name, array.type))
    for field, array in record_columns(records, own.names):
        columns.append(array)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def record_columns(records: List[Optional[Dict[str, Any]]], names: Sequence[str]) -> List[tuple]:
    """(field, array) of the own columns ``names`` of ``records`` (the JSONL form), in
    :func:`record_schema`'s types; a record that is None is null in each of them."""
    pa = _pyarrow()
    schema = record_schema()
    out = []
    for name in names:
        field = schema.field(name)
        if name == "entities":
            values = [None if r is None else [_entity_row(e) for e in r["entities"]] for r in records]
        else:
            values = [None if r is None else r[name] for r in records]
        out.append((field, pa.array(values, type=field.type)))
    return out


def _pairs(value) -> Optional[Dict[str, float]]:
    return None if value is None else {k: v for k, v in value}


def table_records(table) -> List[Dict[str, Any]]:
    """The JSONL records of an annotate Parquet table (the inverse of :func:`records_table`)."""
    out = []
    for row in table.to_pylist():
        for entity in row.get("entities") or []:
            kb = entity.get("kb_scores")
            entity["kb_scores"] = None if kb is None else [[s["kb_id"], s["score"]] for s in kb]
            entity["types"] = _pairs(entity.get("types"))
        if "cats" in row:
            row["cats"] = _pairs(row["cats"]) or {}
        out.append(row)
    return out


# ------------------------------------------------------------------------------------ shards


def write_shard(lines_path: Path, target: Path, carried=None) -> None:
    """Write the JSONL records of ``lines_path`` as the Parquet file ``target``."""
    pa = _pyarrow()
    with open(lines_path, "r", encoding="utf8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    pa.parquet.write_table(records_table(records, carried), target, row_group_size=ROW_GROUP_ROWS)


def shard_lines(path: Path) -> Iterator[Dict[str, Any]]:
    """The records of a Parquet shard, a row group at a time."""
    handle = _open(str(path))
    for group in range(handle.num_row_groups):
        yield from table_records(handle.read_row_group(group))
