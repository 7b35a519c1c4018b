"""Candidate span generators: spancat-style suggesters, ``(docs, *, ops) -> Ragged``.

The data of the Ragged is an ``(n, 2)`` int array of token ``[start, end)`` offsets and its
lengths the number of spans of each doc, so spaCy's own suggesters
(``spacy.ngram_range_suggester.v1`` ...) plug into the LUKE pipes unchanged.
"""

from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Ops, Ragged, get_current_ops

Suggester = Callable[..., Ragged]


def sentence_bounds(doc: Doc) -> List[tuple]:
    """Token ``(start, end)`` of each sentence; the whole doc when it has no sentence boundaries."""
    starts = _sentence_starts(doc)
    return list(zip(starts.tolist(), starts[1:].tolist() + [len(doc)]))


def _sentence_starts(doc: Doc, sent_start: Optional[np.ndarray] = None) -> np.ndarray:
    """Token index of each sentence start (``[0]`` without sentence boundaries; empty for an empty doc).

    The same sentences as ``doc.sents``: token 0, and every later token whose ``sent_start`` is 1,
    read with one ``doc.to_array`` call instead of iterating the Span objects.
    """
    if len(doc) == 0:
        return np.zeros(0, dtype=np.int64)
    if sent_start is None:
        from spacy.attrs import SENT_START

        sent_start = doc.to_array(SENT_START).reshape(-1).astype(np.int64)
    if len(doc) > 1 and not sent_start[1:].any():  # no sentence annotation: one sentence
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(sent_start == 1)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return starts.astype(np.int64)


def sentence_spans(doc: Doc, max_length: int) -> np.ndarray:
    """Every span of 1..max_length tokens inside one sentence, not starting or ending on whitespace.

    Ordered by sentence, then start, then length (the order LUKE's NER enumerates them in).
    """
    return sentence_spans_of_docs([doc], max_length)[0]


def sentence_spans_of_docs(docs: Sequence[Doc], max_length: int) -> List[np.ndarray]:
    """:func:`sentence_spans` of each doc, computed for all docs at once (no per-span Python)."""
    from spacy.attrs import IS_SPACE, SENT_START

    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")
    spaces, sentence_ends, positions, lengths = [], [], [], []
    for doc in docs:
        n = len(doc)
        lengths.append(n)
        if n == 0:
            continue
        columns = doc.to_array([IS_SPACE, SENT_START]).astype(np.int64)
        starts = _sentence_starts(doc, columns[:, 1])
        ends = np.append(starts[1:], n)
        spaces.append(columns[:, 0].astype(bool))
        sentence_ends.append(np.repeat(ends, ends - starts))
        positions.append(np.arange(n, dtype=np.int64))
    if not positions:
        return [np.zeros((0, 2), dtype=np.int64) for _ in docs]
    space = np.concatenate(spaces)
    token = np.concatenate(positions)  # index inside its doc
    flat = np.arange(len(token), dtype=np.int64)  # index over all docs
    doc_of_token = np.repeat(np.flatnonzero(np.asarray(lengths) > 0), [n for n in lengths if n > 0])
    per_start = np.minimum(max_length, np.concatenate(sentence_ends) - token)  # spans starting at each token
    first = np.repeat(flat, per_start)
    length = np.arange(len(first), dtype=np.int64) - np.repeat(np.cumsum(per_start) - per_start, per_start) + 1
    last = first + length - 1
    keep = ~space[first] & ~space[last]
    first, length = first[keep], length[keep]
    spans = np.stack([token[first], token[first] + length], axis=1)
    counts = np.bincount(doc_of_token[first], minlength=len(docs))
    return np.split(spans, np.cumsum(counts)[:-1])


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
        return _ragged(ops, sentence_spans_of_docs(list(docs), max_length))

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
