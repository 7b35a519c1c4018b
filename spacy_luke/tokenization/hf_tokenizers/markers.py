"""Entity markers: inserting ``<ent>`` / ``<ent2>`` around spans, and where the marked entities
then sit (one rule for the HF-compatible tokenizer and the Doc encoder).

Entity (pair) classification inputs put a marker piece before and after the (head) span, and
``<ent2>`` pieces around the tail. The [MASK] (and [MASK2]) entity then covers its span from
the opening marker to the closing one: the span's piece range grows by 2, and a span after the
other one also moves right by the 2 markers of the first.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

PieceSpan = Tuple[int, int]


def marked_entity_spans(piece_spans: Sequence[PieceSpan]) -> List[PieceSpan]:
    """``[start, end)`` piece ranges (markers included) of one span or an ordered (head, tail) pair,
    given their ranges before the markers are inserted."""
    if len(piece_spans) == 1:
        (start, end), = piece_spans
        return [(start, end + 2)]
    (h0, h1), (t0, t1) = piece_spans
    if h0 < t0:
        return [(h0, h1 + 2), (t0 + 2, t1 + 4)]
    return [(h0 + 2, h1 + 4), (t0, t1 + 2)]


def insert_entity_markers(ids: List[int], piece_spans: Sequence[PieceSpan], markers: Sequence[int]) -> List[int]:
    """``ids`` with ``markers[k]`` inserted before and after ``piece_spans[k]``: one span, or an
    ordered (head, tail) pair.

    As transformers does, the later span is marked first (its end, then its start), so the
    earlier span's offsets still hold; where one span ends and the other starts, the closing
    marker comes first.
    """
    marked = list(zip(piece_spans, markers))
    if len(marked) == 2 and marked[0][0][0] < marked[1][0][0]:
        marked.reverse()
    for (start, end), marker in marked:
        ids = ids[:end] + [marker] + ids[end:]
        ids = ids[:start] + [marker] + ids[start:]
    return ids
