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


def sentence_spans(doc: Doc, max_length: int) -> np.ndarray:
    """Every span of 1..max_length tokens inside one sentence, not starting or ending on whitespace.

    Ordered by sentence, then start, then length (the order LUKE's NER enumerates them in).
    """
    return sentence_spans_of_docs([doc], max_length)[0]


def sentence_spans_of_docs(docs: Sequence[Doc], max_length: int) -> List[np.ndarray]:
    """:func:`sentence_spans` of each doc, computed for all docs at once (no per-span Python).

    One ``doc.to_array`` per doc; the sentences, spans and whitespace filter are numpy over the
    tokens of all docs together.
    """
    from spacy.attrs import IS_SPACE, SENT_START

    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")
    lengths = np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))
    if not lengths.any():
        return [np.zeros((0, 2), dtype=np.int64) for _ in docs]
    columns = np.concatenate([doc.to_array([IS_SPACE, SENT_START]) for doc in docs if len(doc)]).astype(np.int64)
    n_all = len(columns)
    space = columns[:, 0].astype(bool)
    # A sentence starts at each doc's first token and at every token whose sent_start is 1
    # (0 "unknown" and -1 "not a start" continue the sentence, as in doc.sents).
    doc_first = np.cumsum(lengths) - lengths
    doc_first_nonempty = doc_first[lengths > 0]
    is_start = columns[:, 1] == 1
    is_start[doc_first_nonempty] = True
    sent_first = np.flatnonzero(is_start)
    sent_end = np.append(sent_first[1:], n_all)  # flat index one past each sentence
    sentence_end = np.repeat(sent_end, sent_end - sent_first)  # for each token
    flat = np.arange(n_all, dtype=np.int64)  # index over all docs
    per_start = np.minimum(max_length, sentence_end - flat)  # spans starting at each token
    first = np.repeat(flat, per_start)
    length = np.arange(len(first), dtype=np.int64) - np.repeat(np.cumsum(per_start) - per_start, per_start) + 1
    keep = ~space[first] & ~space[first + length - 1]
    first, length = first[keep], length[keep]
    doc_of_token = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    doc_of_span = doc_of_token[first]
    token = first - doc_first[doc_of_span]  # index inside its doc
    spans = np.stack([token, token + length], axis=1)
    counts = np.bincount(doc_of_span, minlength=len(docs))
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
