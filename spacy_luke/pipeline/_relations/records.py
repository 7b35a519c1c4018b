"""``Doc._.luke_relations`` helpers (no torch, no model: safe to import anywhere).

The stored value is msgpack-safe: a list of
``{"head": [start_char, end_char], "tail": [start_char, end_char], "label": str, "score": float}``
sorted by head then tail position. :func:`get_relations` resolves the offsets to Spans.
"""

from typing import Any, Dict, List, Optional, Tuple

from spacy.tokens import Doc, Span

Relation = Dict[str, Any]


def relation_record(head: Span, tail: Span, label: str, score: float) -> Relation:
    return {"head": [head.start_char, head.end_char], "tail": [tail.start_char, tail.end_char], "label": label, "score": float(score)}


def sort_relations(relations: List[Relation]) -> List[Relation]:
    return sorted(relations, key=lambda r: (tuple(r["head"]), tuple(r["tail"]), r["label"]))


def _span_at(doc: Doc, offsets, by_offsets: Dict[Tuple[int, int], Span]) -> Optional[Span]:
    key = (int(offsets[0]), int(offsets[1]))
    found = by_offsets.get(key)
    if found is not None:
        return found
    return doc.char_span(key[0], key[1], alignment_mode="expand")


def get_relations(doc: Doc) -> List[Tuple[Span, Span, str, float]]:
    """``(head Span, tail Span, label, score)`` for each relation in ``doc._.luke_relations``.

    The Spans are the doc's entities when they cover the same characters (so they carry the
    entity labels), else new Spans over those characters.
    """
    relations = doc._.luke_relations if Doc.has_extension("luke_relations") else None
    if not relations:
        return []
    by_offsets = {(e.start_char, e.end_char): e for e in doc.ents}
    out = []
    for rel in relations:
        head = _span_at(doc, rel["head"], by_offsets)
        tail = _span_at(doc, rel["tail"], by_offsets)
        if head is None or tail is None:
            raise ValueError(f"The relation {rel} points outside the doc of {len(doc.text)} characters.")
        out.append((head, tail, rel["label"], float(rel["score"])))
    return out
