"""Padded batches of window inputs: stacking ready inputs, or building span batches in one go.

:func:`pad_window_inputs` right-pads and stacks the inputs of :mod:`.window_inputs`;
:func:`padded_span_batches` builds the same padded span-classification arrays straight from
:class:`SpanPass` es (a window's pieces and spans), for many batches at once.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Iterator, Optional, Sequence

import numpy as np

from ..hf_tokenizers.encoding import LukeEncoding, to_tensors
from .token_pieces import TokenPieces
from .window_inputs import check_window_length, first_bad_span, span_mentions

if TYPE_CHECKING:
    from ..hf_tokenizers.entity_tokenizer import EntityAwareTokenizer


@dataclass(frozen=True)
class SpanPass:
    """One span-classification pass before padding: a window's pieces and spans to classify.

    :meth:`DocEncoder.pad_span_passes` turns many of them into one padded batch, the same
    arrays as :meth:`DocEncoder.pad` over :meth:`DocEncoder.span_inputs_from_pieces` of each.

    Attributes:
        pieces: the window's pieces (token offsets relative to the window).
        spans: ``(n, 2)`` int64 token ``[start, end)`` offsets inside the window.
    """

    pieces: TokenPieces
    spans: np.ndarray

    @property
    def n_words(self) -> int:
        """Word slots, with ``<s>`` and ``</s>``."""
        return len(self.pieces.ids) + 2

    @property
    def n_entities(self) -> int:
        return len(self.spans)


def pad_window_inputs(
    tokenizer: "EntityAwareTokenizer",
    batch: Sequence[Dict[str, np.ndarray]],
    *,
    return_tensors: Optional[str] = "np",
    pad_to_multiple_of: Optional[int] = None,
) -> LukeEncoding:
    """Right-pad and stack window inputs (span or marker inputs) to the longest.

    Words are padded with the pad token, entities with the [PAD] entity, positions with -1;
    both attention masks mark padding with 0 explicitly.
    """
    if not batch:
        raise ValueError("pad() needs at least one example.")
    tok = tokenizer
    word_len = max(len(x["input_ids"]) for x in batch)
    entity_len = max((len(x["entity_ids"]) for x in batch if "entity_ids" in x), default=0)  # 0: words only
    if pad_to_multiple_of:
        word_len = -(-word_len // pad_to_multiple_of) * pad_to_multiple_of
        entity_len = -(-entity_len // pad_to_multiple_of) * pad_to_multiple_of
    fills = {
        "input_ids": tok.pad_token_id,
        "attention_mask": 0,
        "entity_ids": tok.entity_pad_token_id,
        "entity_attention_mask": 0,
        "entity_position_ids": -1,
        "entity_start_positions": 0,
        "entity_end_positions": 0,
    }
    out: Dict[str, np.ndarray] = {}
    for key, fill in fills.items():
        if key not in batch[0]:  # e.g. no span positions for the entity (pair) classification heads
            continue
        length = word_len if key in ("input_ids", "attention_mask") else entity_len
        shape = (len(batch), length) + ((tok.max_mention_length,) if key == "entity_position_ids" else ())
        array = np.full(shape, fill, dtype=np.int64)
        for row, example in enumerate(batch):
            value = example[key]
            array[row, : len(value)] = value
        out[key] = array
    if return_tensors == "np":
        return LukeEncoding(out)
    if return_tensors == "pt":
        import torch

        return LukeEncoding({k: torch.from_numpy(v) for k, v in out.items()})
    return to_tensors({k: v.tolist() for k, v in out.items()}, return_tensors, prepend_batch_axis=False)


def padded_span_batches(
    tokenizer: "EntityAwareTokenizer", passes: Sequence[SpanPass], batches: Sequence[Sequence[int]]
) -> Iterator[Dict[str, np.ndarray]]:
    """The padded span-classification inputs of each batch of ``passes`` (``batches``: lists of
    pass indices).

    Every batch gets the arrays :func:`pad_window_inputs` gives over the span inputs of its
    passes, but the work is done once for all passes: the pieces and span positions of all
    batches are computed in one vectorized pass (in batch order), and each batch is then two
    fills and a few scatters.
    """
    tok = tokenizer
    order = np.fromiter(itertools.chain.from_iterable(batches), dtype=np.int64)
    batch_sizes = np.fromiter(map(len, batches), dtype=np.int64, count=len(batches))
    if (batch_sizes == 0).any():
        raise ValueError("Every batch needs at least one pass.")
    ordered = [passes[i] for i in order.tolist()]
    n_rows = len(ordered)
    n_ids = np.fromiter((len(p.pieces.ids) for p in ordered), dtype=np.int64, count=n_rows)
    n_words = n_ids + 2
    if n_rows:
        row = int(np.argmax(n_words))
        check_window_length(int(n_words[row]), tok.model_max_length, window=f"Pass {int(order[row])}")
    n_tokens = np.fromiter((p.pieces.n_tokens for p in ordered), dtype=np.int64, count=n_rows)
    n_spans = np.fromiter((len(p.spans) for p in ordered), dtype=np.int64, count=n_rows)
    spans = np.concatenate([np.asarray(p.spans, dtype=np.int64).reshape(-1, 2) for p in ordered]) if n_rows else np.zeros((0, 2), np.int64)
    rows = np.arange(n_rows, dtype=np.int64)
    span_row = np.repeat(rows, n_spans)
    bad = first_bad_span(spans, n_tokens[span_row])
    if bad is not None:
        raise ValueError(
            f"Span {spans[bad].tolist()} of pass {int(order[span_row[bad]])} is not a non-empty token range "
            f"[start, end) inside its window of {int(n_tokens[span_row[bad]])} tokens."
        )
    # Words of all rows, flat: <s> pieces </s>, with each slot's row and column.
    word_first = np.cumsum(n_words) - n_words
    words = np.full(int(n_words.sum()), tok.sep_token_id, dtype=np.int64)
    words[word_first] = tok.cls_token_id
    body = np.ones(len(words), dtype=bool)
    body[word_first] = False
    body[word_first + n_words - 1] = False
    if n_rows:
        words[body] = np.concatenate([p.pieces.ids for p in ordered])
    word_row = np.repeat(rows, n_words)
    word_col = np.arange(len(words), dtype=np.int64) - np.repeat(word_first, n_words)
    # Entities of all rows, flat: first and last piece (counting <s>), the pieces in between.
    token_offset = np.repeat(np.cumsum(n_tokens) - n_tokens, n_spans)
    token_starts = np.concatenate([p.pieces.starts for p in ordered]) if n_rows else np.zeros(0, np.int64)
    token_ends = np.concatenate([p.pieces.ends for p in ordered]) if n_rows else np.zeros(0, np.int64)
    mml = tok.max_mention_length
    starts, last, positions = span_mentions(
        token_starts, token_ends, spans[:, 0] + token_offset, spans[:, 1] + token_offset, mml
    )
    entity_col = np.arange(len(spans), dtype=np.int64) - np.repeat(np.cumsum(n_spans) - n_spans, n_spans)
    # Each batch: a contiguous slice of rows, words and entities.
    row_bounds = np.concatenate([[0], np.cumsum(batch_sizes)])
    word_bounds = np.concatenate([[0], np.cumsum(n_words)])[row_bounds]
    entity_bounds = np.concatenate([[0], np.cumsum(n_spans)])[row_bounds]
    word_len = np.maximum.reduceat(n_words, row_bounds[:-1]) if n_rows else np.zeros(0, np.int64)
    entity_len = np.maximum.reduceat(n_spans, row_bounds[:-1]) if n_rows else np.zeros(0, np.int64)
    for b in range(len(batch_sizes)):
        r0, r1 = int(row_bounds[b]), int(row_bounds[b + 1])
        w0, w1 = int(word_bounds[b]), int(word_bounds[b + 1])
        e0, e1 = int(entity_bounds[b]), int(entity_bounds[b + 1])
        size, width, n_entities = r1 - r0, int(word_len[b]), int(entity_len[b])
        input_ids = np.full((size, width), tok.pad_token_id, dtype=np.int64)
        input_ids[word_row[w0:w1] - r0, word_col[w0:w1]] = words[w0:w1]
        entity_rows, entity_cols = span_row[e0:e1] - r0, entity_col[e0:e1]
        entity_position_ids = np.full((size, n_entities, mml), -1, dtype=np.int64)
        entity_position_ids[entity_rows, entity_cols] = positions[e0:e1]
        entity_start_positions = np.zeros((size, n_entities), dtype=np.int64)
        entity_start_positions[entity_rows, entity_cols] = starts[e0:e1]
        entity_end_positions = np.zeros((size, n_entities), dtype=np.int64)
        entity_end_positions[entity_rows, entity_cols] = last[e0:e1]
        entity_mask = np.arange(n_entities) < n_spans[r0:r1, None]
        yield {
            "input_ids": input_ids,
            "attention_mask": (np.arange(width) < n_words[r0:r1, None]).astype(np.int64),
            "entity_ids": np.where(entity_mask, tok.entity_mask_token_id, tok.entity_pad_token_id),
            "entity_attention_mask": entity_mask.astype(np.int64),
            "entity_position_ids": entity_position_ids,
            "entity_start_positions": entity_start_positions,
            "entity_end_positions": entity_end_positions,
        }
