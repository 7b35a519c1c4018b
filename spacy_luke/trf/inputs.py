"""The encoder inputs of a batch of span windows: word pieces, token alignment, entity inputs.

What spacy-transformers' ``TransformerModel`` gets from a Hugging Face tokenizer and
``get_alignment``, built here from our Doc encoder instead (numpy only, no spaCy-transformers
import): each doc is encoded once from its tokens (pieces cached per token string), and each
window (a span from the ``get_spans`` getter) is a slice of the doc's pieces framed by
``<s>`` / ``</s>`` (``[CLS]`` / ``[SEP]``). A window longer than the model takes keeps its first
pieces (spacy-transformers' ``truncate_oversize_splits`` rule): the tokens past the cut align
to no piece.

The alignment follows spacy-transformers' convention: one row per token of every doc that has
windows, listing (sorted) the indices of its pieces in the flattened padded ``(windows, length)``
piece array; a token inside two overlapping windows lists the pieces of both.

Entities as context: the spans of ``doc.ents`` (or ``doc.spans[key]``) that lie inside a window
(and inside its cut) go in as entity inputs over their pieces, as the [MASK] entity or, with
``kb_ids``, as the Wikipedia entity named by ``span.kb_id_`` when the entity vocabulary has it
(``language:title`` first for mLUKE), else [MASK]; at most ``max_entities`` per window, in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..tokenization.doc_inputs.window_inputs import mention_position_ids

ENTITY_MODES = ("none", "mask", "kb_ids")


@dataclass
class WindowBatch:
    """The inputs of one forward pass over the windows of a batch of docs (doc-major order).

    Attributes:
        input_ids: ``(windows, length)`` int64, right-padded with the pad id.
        attention_mask: ``(windows, length)`` int64.
        lengths: the unpadded length of each window (with the special pieces).
        align_data / align_lengths: the token -> piece alignment (int32, a thinc Ragged's parts).
        entities: the entity inputs (``entity_ids``, ``entity_attention_mask``,
            ``entity_position_ids``), or None when no window has an entity.
        entity_token_spans: ``(windows, entities, 2)`` int64, the doc token ``[start, end)`` of
            each entity slot, ``-1`` in padded slots; None with ``entities``.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    lengths: List[int]
    align_data: np.ndarray
    align_lengths: np.ndarray
    entities: Optional[Dict[str, np.ndarray]] = None
    entity_token_spans: Optional[np.ndarray] = None

    def model_inputs(self) -> Dict[str, np.ndarray]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.entities is not None:
            inputs.update(self.entities)
        return inputs


def entity_source_spans(doc, spans_key: Optional[str]) -> Tuple[np.ndarray, List[str]]:
    """``(n, 2)`` token offsets and kb ids of ``doc.ents`` (``spans_key`` None) or ``doc.spans[key]``."""
    if spans_key is None:
        spans = list(doc.ents)
    else:
        spans = list(doc.spans[spans_key]) if spans_key in doc.spans else []
    offsets = np.asarray([(span.start, span.end) for span in spans], dtype=np.int64).reshape(-1, 2)
    return offsets, [span.kb_id_ for span in spans]


class WindowEncoder:
    """Builds :class:`WindowBatch` es with a LUKE ``tokenizer`` and its ``doc_encoder``.

    max_length: the longest window the encoder takes, special pieces included.
    entities: "none", "mask" or "kb_ids" (see the module docstring).
    spans_key: where the entity spans come from (None: ``doc.ents``).
    max_entities: entity inputs per window at most.
    """

    def __init__(self, tokenizer, doc_encoder, *, max_length: int, entities: str = "none",
                 spans_key: Optional[str] = None, max_entities: int = 64):
        if entities not in ENTITY_MODES:
            raise ValueError(f"entities={entities!r}: choose one of {ENTITY_MODES}.")
        if max_length < 3:
            raise ValueError(f"max_length={max_length}: a window needs room for a piece between the special pieces.")
        self.tokenizer = tokenizer
        self.doc_encoder = doc_encoder
        self.max_length = max_length
        self.entities = entities
        self.spans_key = spans_key
        self.max_entities = max_entities
        self._strings: Dict[int, str] = {}

    # ------------------------------------------------------------------ pieces

    def doc_pieces(self, docs: Sequence) -> list:
        """The :class:`~spacy_luke.tokenization.token_pieces.TokenPieces` of each doc."""
        from spacy.attrs import ORTH, SPACY

        vocabs = list(dict.fromkeys(doc.vocab for doc in docs))  # each Vocab once (hashed as itself)

        def text_of(key: int) -> str:
            for vocab in vocabs:  # docs of one batch may come from different vocabs
                if key in vocab.strings:
                    return vocab.strings[key]
            raise KeyError(key)

        columns = [doc.to_array([ORTH, SPACY]).reshape(-1, 2) if len(doc) else np.zeros((0, 2), dtype=np.uint64) for doc in docs]
        return self.doc_encoder.encode_keyed_docs(columns, text_of)

    def piece_strings(self, ids: np.ndarray) -> List[List[str]]:
        """The piece strings of each row of ``ids`` (cached per id)."""
        cache = self._strings
        out = []
        for row in ids.tolist():
            strings = []
            for index in row:
                found = cache.get(index)
                if found is None:
                    found = cache[index] = self.tokenizer.convert_ids_to_tokens(index) or ""
                strings.append(found)
            out.append(strings)
        return out

    # ------------------------------------------------------------------ windows

    def encode(self, docs: Sequence, nested_spans: Sequence[Sequence]) -> WindowBatch:
        """The inputs of the windows ``nested_spans`` (per doc, spaCy Spans of that doc)."""
        tok = self.tokenizer
        budget = self.max_length - 2
        pieces = self.doc_pieces(docs)
        rows: List[np.ndarray] = []
        windows: List[Tuple[int, int, int, int, int]] = []  # (doc, start token, end token, first piece, end piece)
        for d, doc_spans in enumerate(nested_spans):
            p = pieces[d]
            for span in doc_spans:
                s, e = span.start, span.end
                p0 = int(p.starts[s]) if e > s else 0
                p1 = int(p.ends[e - 1]) if e > s else 0
                p1 = min(p1, p0 + budget)
                rows.append(p.ids[p0:p1])
                windows.append((d, s, e, p0, p1))
        lengths = [len(row) + 2 for row in rows]
        width = max(lengths, default=2)
        input_ids = np.full((len(rows), width), tok.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            input_ids[r, 0] = tok.cls_token_id
            input_ids[r, 1 : len(row) + 1] = row
            input_ids[r, len(row) + 1] = tok.sep_token_id
            attention_mask[r, : len(row) + 2] = 1
        align_data, align_lengths = self._alignment(docs, nested_spans, pieces, windows, width)
        batch = WindowBatch(input_ids, attention_mask, lengths, align_data, align_lengths)
        if self.entities != "none":
            self._add_entities(batch, docs, pieces, windows)
        return batch

    def _alignment(self, docs, nested_spans, pieces, windows, width: int) -> Tuple[np.ndarray, np.ndarray]:
        # Token positions: every token of each doc that has windows, docs in order.
        offsets = {}
        n_positions = 0
        for d, doc_spans in enumerate(nested_spans):
            if len(doc_spans):
                offsets[d] = n_positions
                n_positions += len(docs[d])
        tokens, indices = [], []
        for r, (d, s, e, p0, p1) in enumerate(windows):
            if e <= s:
                continue
            p = pieces[d]
            first = np.clip(p.starts[s:e], p0, p1)
            last = np.clip(p.ends[s:e], p0, p1)
            counts = last - first
            total = int(counts.sum())
            if not total:
                continue
            run_starts = np.cumsum(counts) - counts
            within = np.arange(total, dtype=np.int64) - np.repeat(run_starts, counts)
            indices.append(r * width + 1 + np.repeat(first - p0, counts) + within)  # + 1: <s>
            tokens.append(offsets[d] + np.repeat(np.arange(s, e, dtype=np.int64), counts))
        if not tokens:
            return np.zeros((0,), dtype="i"), np.zeros((n_positions,), dtype="i")
        token = np.concatenate(tokens)
        index = np.concatenate(indices)
        order = np.lexsort((index, token))
        data = index[order].astype("i")
        lengths = np.bincount(token, minlength=n_positions).astype("i")
        return data, lengths

    def _add_entities(self, batch: WindowBatch, docs, pieces, windows) -> None:
        tok = self.tokenizer
        sources = [entity_source_spans(doc, self.spans_key) for doc in docs]
        rows = [self._entity_rows(docs[d], sources[d]) for d in range(len(docs))]
        chosen = []
        for d, s, e, p0, p1 in windows:
            spans = sources[d][0]
            if not len(spans) or e <= s:
                chosen.append(np.zeros((0,), dtype=np.int64))
                continue
            p = pieces[d]
            inside = (spans[:, 0] >= s) & (spans[:, 1] <= e)
            first = p.starts[np.minimum(spans[:, 0], len(p.starts) - 1)]
            last = p.ends[np.maximum(spans[:, 1] - 1, 0)]
            keep = inside & (first >= p0) & (last <= p1) & (first < last)
            chosen.append(np.flatnonzero(keep)[: self.max_entities])
        n_entities = max((len(c) for c in chosen), default=0)
        if n_entities == 0:
            return
        n, mml = len(windows), tok.max_mention_length
        entity_ids = np.full((n, n_entities), tok.entity_pad_token_id, dtype=np.int64)
        entity_mask = np.zeros((n, n_entities), dtype=np.int64)
        positions = np.full((n, n_entities, mml), -1, dtype=np.int64)
        token_spans = np.full((n, n_entities, 2), -1, dtype=np.int64)
        for r, ((d, s, e, p0, p1), picked) in enumerate(zip(windows, chosen)):
            if not len(picked):
                continue
            spans = sources[d][0][picked]
            p = pieces[d]
            k = len(picked)
            first = p.starts[spans[:, 0]] - p0 + 1  # + 1: <s>
            last = p.ends[spans[:, 1] - 1] - p0  # the last piece, counting <s>
            positions[r, :k] = mention_position_ids(first, last, mml)
            entity_ids[r, :k] = rows[d][picked]
            entity_mask[r, :k] = 1
            token_spans[r, :k] = spans
        batch.entities = {"entity_ids": entity_ids, "entity_attention_mask": entity_mask, "entity_position_ids": positions}
        batch.entity_token_spans = token_spans

    def _entity_rows(self, doc, source: Tuple[np.ndarray, List[str]]) -> np.ndarray:
        """The entity id of each source span: [MASK], or its kb_id's entity with ``kb_ids``."""
        spans, kb_ids = source
        mask = np.full(len(spans), self.tokenizer.entity_mask_token_id, dtype=np.int64)
        if self.entities != "kb_ids" or not len(spans):
            return mask
        from ..layers.kb_inputs import kb_entity_rows

        found = kb_entity_rows(
            {(int(a), int(b)): kb for (a, b), kb in zip(spans.tolist(), kb_ids) if kb},
            spans,
            self.tokenizer.entity_vocab,
            doc.lang_ or None,
        )
        return np.where(found >= 0, found, mask)
