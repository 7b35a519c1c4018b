"""Candidate span generators: spancat-style suggesters, ``(docs, *, ops) -> Ragged``.

The data of the Ragged is an ``(n, 2)`` int array of token ``[start, end)`` offsets and its
lengths the number of spans of each doc, so spaCy's own suggesters
(``spacy.ngram_range_suggester.v1`` ...) plug into the LUKE pipes unchanged.
"""

from typing import Callable, Iterable, List, Optional

import numpy as np
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Ops, Ragged, get_current_ops

Suggester = Callable[..., Ragged]


def sentence_bounds(doc: Doc) -> List[tuple]:
    """Token ``(start, end)`` of each sentence; the whole doc when it has no sentence boundaries."""
    if len(doc) == 0:
        return []
    if doc.has_annotation("SENT_START"):
        return [(sent.start, sent.end) for sent in doc.sents]
    return [(0, len(doc))]


def _space_mask(doc: Doc) -> np.ndarray:
    from spacy.attrs import IS_SPACE

    return doc.to_array(IS_SPACE).astype(bool).reshape(-1)


def sentence_spans(doc: Doc, max_length: int) -> np.ndarray:
    """Every span of 1..max_length tokens inside one sentence, not starting or ending on whitespace.

    Ordered by sentence, then start, then length (the order LUKE's NER enumerates them in).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")
    spaces = _space_mask(doc)
    out = []
    for start, end in sentence_bounds(doc):
        n = end - start
        if n <= 0:
            continue
        starts = np.repeat(np.arange(start, end), min(max_length, n))
        lengths = np.tile(np.arange(1, min(max_length, n) + 1), n)
        ends = starts + lengths
        keep = ends <= end
        starts, ends = starts[keep], ends[keep]
        keep = ~spaces[starts] & ~spaces[ends - 1]
        out.append(np.stack([starts[keep], ends[keep]], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(out).astype(np.int64)


def _ragged(ops: Ops, per_doc: List[np.ndarray]) -> Ragged:
    lengths = np.array([len(spans) for spans in per_doc], dtype=np.int32)
    data = np.concatenate(per_doc) if per_doc and lengths.sum() else np.zeros((0, 2), dtype=np.int64)
    return Ragged(ops.asarray2i(data.astype(np.int32)), ops.asarray1i(lengths))


@registry.misc("spacy-luke.sentence_spans_candidates.v1")
def make_sentence_spans_candidates(max_length: int = 16) -> Suggester:
    """All spans of up to max_length tokens within a sentence (whole doc without sentence boundaries).

    max_length (int): the longest candidate, in tokens.
    """

    def suggest(docs: Iterable[Doc], *, ops: Optional[Ops] = None) -> Ragged:
        ops = ops or get_current_ops()
        return _ragged(ops, [sentence_spans(doc, max_length) for doc in docs])

    return suggest


@registry.misc("spacy-luke.ents_candidates.v1")
def make_ents_candidates() -> Suggester:
    """The spans of ``doc.ents``."""

    def suggest(docs: Iterable[Doc], *, ops: Optional[Ops] = None) -> Ragged:
        ops = ops or get_current_ops()
        return _ragged(ops, [np.array([(e.start, e.end) for e in doc.ents], dtype=np.int64).reshape(-1, 2) for doc in docs])

    return suggest


@registry.misc("spacy-luke.span_group_candidates.v1")
def make_span_group_candidates(spans_key: str = "sc") -> Suggester:
    """The spans of ``doc.spans[spans_key]`` (no spans for docs without that group).

    spans_key (str): the span group to read.
    """

    def suggest(docs: Iterable[Doc], *, ops: Optional[Ops] = None) -> Ragged:
        ops = ops or get_current_ops()
        per_doc = []
        for doc in docs:
            group = doc.spans[spans_key] if spans_key in doc.spans else []
            per_doc.append(np.array([(s.start, s.end) for s in group], dtype=np.int64).reshape(-1, 2))
        return _ragged(ops, per_doc)

    return suggest


def split_ragged(ragged: Ragged) -> List[np.ndarray]:
    """Per-doc ``(n, 2)`` int64 numpy arrays from a suggester's Ragged."""
    from thinc.api import get_array_module

    data = ragged.dataXd
    xp = get_array_module(data)
    data = data.get() if xp is not np else data
    lengths = ragged.lengths
    lengths = lengths.get() if get_array_module(lengths) is not np else lengths
    out, start = [], 0
    for n in np.asarray(lengths).tolist():
        out.append(np.asarray(data[start : start + n], dtype=np.int64).reshape(-1, 2))
        start += n
    return out
