"""The JSONL record of an annotated doc: what every LUKE pipe wrote, plus the input's own fields.

``{"source", "line", "text", "entities": [{start, end, label, text, score, kb_id, kb_scores,
types}], "relations": [{head, tail, label, score}], "cats": {label: probability}, ...input
fields}``. Character offsets; ``score`` is luke_ner's (None from other recognizers),
``kb_scores`` the linker's [(kb_id, probability)], ``types`` the typer's {type: probability}
(each None when that pipe did not run); ``cats`` is ``doc.cats`` (luke_textcat's, or any
text classifier's; empty when none ran).

The JSON is strict (RFC 8259): a number that is not finite (a NaN score, or an input field such
as ``1e999``, which Python reads as infinity) is written as ``null``. Values of a Parquet input's
columns that JSON cannot hold are text: timestamps, dates and times in ISO 8601, decimals and
durations as ``str()`` writes them, bytes in base64.
"""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
from typing import Any, Dict, List, Optional

from spacy.tokens import Doc, Span

OWN_FIELDS = ("source", "line", "text", "entities", "relations", "cats")


def _extension(span: Span, name: str) -> Optional[Any]:
    return getattr(span._, name) if Span.has_extension(name) else None


def entity_records(doc: Doc) -> List[Dict[str, Any]]:
    out = []
    for ent in doc.ents:
        kb_scores = _extension(ent, "luke_kb_scores")
        types = _extension(ent, "luke_types")
        out.append(
            {
                "start": ent.start_char,
                "end": ent.end_char,
                "label": ent.label_,
                "text": ent.text,
                "score": _extension(ent, "luke_score"),
                "kb_id": ent.kb_id_,
                "kb_scores": None if kb_scores is None else [[str(k), float(p)] for k, p in kb_scores],
                "types": None if types is None else {str(k): float(v) for k, v in types.items()},
            }
        )
    return out


def relation_records(doc: Doc) -> List[Dict[str, Any]]:
    relations = doc._.luke_relations if Doc.has_extension("luke_relations") else None
    return [
        {"head": list(r["head"]), "tail": list(r["tail"]), "label": r["label"], "score": float(r["score"])}
        for r in relations or []
    ]


def doc_record(doc: Doc, source: str, line: int, fields: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The output record of ``doc`` (the input's other fields first, ours win on a clash)."""
    record: Dict[str, Any] = dict(fields or {})
    record.update(
        {
            "source": source, "line": line, "text": doc.text, "entities": entity_records(doc), "relations": relation_records(doc),
            "cats": {str(label): float(p) for label, p in doc.cats.items()},
        }
    )
    return record


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_value(value: Any) -> Any:
    """A value JSON cannot hold, as text (the ``default`` of annotate's ``json.dumps``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, datetime.timedelta)):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be written as JSON")


def json_line(record: Dict[str, Any]) -> str:
    """``record`` as one line of strict JSON (non-finite numbers as null), newline included."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False, default=json_value) + "\n"
    except ValueError:  # a NaN or infinity somewhere: the rare slow path
        return json.dumps(_finite(record), ensure_ascii=False, allow_nan=False, default=json_value) + "\n"
