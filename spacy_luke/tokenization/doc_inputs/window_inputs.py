"""Model inputs of one window of tokens: spans to classify, or one marked span (pair).

Built from the window's :class:`~.token_pieces.TokenPieces` and token offsets only (numpy, no
text), they hold what ``LukeTokenizer(task=...)`` gives for the window text and the spans'
character offsets. The checks and the entity position rule here also serve the padded batches
of :mod:`.padded_batches`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..hf_tokenizers.markers import insert_entity_markers, marked_entity_spans
from .token_pieces import TokenPieces

if TYPE_CHECKING:
    from ..hf_tokenizers.entity_tokenizer import EntityAwareTokenizer

TokenSpans = Union[np.ndarray, Sequence[Tuple[int, int]]]


def check_window_length(
    n_pieces: int, model_max_length: int, *, window: str = "The window", counted: str = "<s> and </s>"
) -> None:
    """A ValueError when ``window``, ``n_pieces`` word pieces long (``counted`` included), is longer
    than the model takes."""
    if n_pieces > model_max_length:
        raise ValueError(
            f"{window} is {n_pieces} word pieces long (with {counted}), more than "
            f"model_max_length={model_max_length}; encode fewer tokens per window."
        )


def first_bad_span(spans: np.ndarray, n_tokens: Union[int, np.ndarray]) -> Optional[int]:
    """The index of the first of ``spans`` (``(n, 2)`` token offsets) that is not a non-empty
    range ``[start, end)`` inside its window of ``n_tokens`` tokens (one count, or one per span);
    None when all are."""
    if not len(spans):
        return None
    bad = (spans[:, 0] < 0) | (spans[:, 1] > n_tokens) | (spans[:, 0] >= spans[:, 1])
    return int(np.argmax(bad)) if bad.any() else None


def check_window_spans(spans: np.ndarray, n_tokens: int) -> None:
    """A ValueError naming the first span that is not a non-empty token range inside the window."""
    bad = first_bad_span(spans, n_tokens)
    if bad is not None:
        raise ValueError(
            f"Span {spans[bad].tolist()} is not a non-empty token range [start, end) inside the "
            f"window of {n_tokens} tokens."
        )


def mention_position_ids(first: np.ndarray, last: np.ndarray, max_mention_length: int) -> np.ndarray:
    """``entity_position_ids``: the positions ``first .. last`` of each entity, -1 after the last,
    cut at ``max_mention_length``."""
    positions = first[:, None] + np.arange(max_mention_length, dtype=np.int64)
    positions[positions > last[:, None]] = -1
    return positions


def span_mentions(
    token_starts: np.ndarray,
    token_ends: np.ndarray,
    span_starts: np.ndarray,
    span_ends: np.ndarray,
    max_mention_length: int,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first piece, last piece and ``entity_position_ids`` of token spans ``[start, end)``.

    ``token_starts`` / ``token_ends`` are the piece ranges of the tokens; the positions count
    the ``<s>`` before the pieces.
    """
    first = token_starts[span_starts] + 1  # + 1 for <s>
    last = token_ends[span_ends - 1]  # the last piece, counting <s>
    return first, last, mention_position_ids(first, last, max_mention_length)


def framed_input_ids(body: np.ndarray, tokenizer: "EntityAwareTokenizer") -> np.ndarray:
    """``<s>`` ``body`` ``</s>`` as one int64 array."""
    input_ids = np.empty(len(body) + 2, dtype=np.int64)
    input_ids[0] = tokenizer.cls_token_id
    input_ids[1:-1] = body
    input_ids[-1] = tokenizer.sep_token_id
    return input_ids


def span_inputs_from_pieces(
    tokenizer: "EntityAwareTokenizer", pieces: TokenPieces, spans: TokenSpans
) -> Dict[str, np.ndarray]:
    """Model inputs for entity span classification of ``spans`` (token ``[start, end)`` offsets).

    The same values as ``LukeTokenizer(task="entity_span_classification")`` on the window
    text with the spans' character offsets (no padding): ``input_ids`` (``<s>`` pieces
    ``</s>``), ``attention_mask``, ``entity_ids`` ([MASK]), ``entity_attention_mask``,
    ``entity_position_ids`` (piece positions, -1 padded to ``max_mention_length``),
    ``entity_start_positions`` / ``entity_end_positions`` (first / last piece). All int64
    numpy arrays.
    """
    n_pieces = len(pieces.ids) + 2
    check_window_length(n_pieces, tokenizer.model_max_length)
    spans = np.asarray(spans, dtype=np.int64)
    if spans.size == 0:
        spans = spans.reshape(0, 2)
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise ValueError(f"spans must be an (n, 2) array of token [start, end) offsets, got shape {spans.shape}.")
    check_window_spans(spans, pieces.n_tokens)
    n_spans = len(spans)
    starts, last, positions = span_mentions(
        pieces.starts, pieces.ends, spans[:, 0], spans[:, 1], tokenizer.max_mention_length
    )
    return {
        "input_ids": framed_input_ids(pieces.ids, tokenizer),
        "attention_mask": np.ones(n_pieces, dtype=np.int64),
        "entity_ids": np.full(n_spans, tokenizer.entity_mask_token_id, dtype=np.int64),
        "entity_attention_mask": np.ones(n_spans, dtype=np.int64),
        "entity_position_ids": positions,
        "entity_start_positions": starts,
        "entity_end_positions": last,
    }


def marker_inputs_from_pieces(
    tokenizer: "EntityAwareTokenizer", pieces: TokenPieces, spans: TokenSpans
) -> Dict[str, np.ndarray]:
    """Entity (pair) classification inputs: one span, or an ordered (head, tail) pair, marked.

    The same values as ``LukeTokenizer(task="entity_classification")`` (one span) or
    ``task="entity_pair_classification"`` (two spans, head then tail) on the window text
    with the spans' character offsets (no padding): ``<ent>`` pieces around the (head)
    span, ``<ent2>`` around the tail, the [MASK] (and [MASK2]) entity over the
    marker-to-marker positions, ``-1``-padded to ``max_mention_length``. No
    ``entity_start_positions``: these heads read the entity states only.
    """
    tok = tokenizer
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if len(spans) not in (1, 2):
        raise ValueError(f"Marker inputs take one span (entity classification) or two (head, tail); got {len(spans)}.")
    check_window_spans(spans, pieces.n_tokens)
    markers = [tok.entity_token_1_id, tok.entity_token_2_id][: len(spans)]
    declared = getattr(tok, "_declared_tokens", None)
    needed = [tok.entity_token_1, tok.entity_token_2][: len(spans)]
    if declared is not None and any(token not in declared for token in needed):
        raise ValueError(
            f"Entity {'pair ' if len(spans) == 2 else ''}classification marks spans with {needed}, but the "
            "tokenizer's vocabulary (vocab / added_tokens.json / special_tokens_map.json) lacks them: use the "
            "tokenizer files of a LUKE checkpoint fine-tuned for this task."
        )
    piece_spans = [(int(pieces.starts[s]), int(pieces.ends[e - 1])) for s, e in spans.tolist()]
    for p_start, p_end in piece_spans:
        if p_start >= p_end:
            raise ValueError("A marked span must have word pieces (it is only whitespace).")
    if len(piece_spans) == 2:
        (h0, h1), (t0, t1) = piece_spans
        if h0 < t1 and t0 < h1:
            raise ValueError(f"The head and tail spans {spans.tolist()} overlap; a pair needs two disjoint spans.")
    entity_spans = marked_entity_spans(piece_spans)
    body = np.asarray(insert_entity_markers(pieces.ids.tolist(), piece_spans, markers), dtype=np.int64)
    n_pieces = len(body) + 2
    check_window_length(n_pieces, tok.model_max_length, counted="<s>, </s> and markers")
    first = np.asarray([s for s, _ in entity_spans], dtype=np.int64) + 1  # + 1 for <s>
    last = np.asarray([e for _, e in entity_spans], dtype=np.int64)  # end exclusive, + 1 for <s>
    entity_ids = [tok.entity_mask_token_id, tok.entity_mask2_token_id][: len(spans)]
    return {
        "input_ids": framed_input_ids(body, tok),
        "attention_mask": np.ones(n_pieces, dtype=np.int64),
        "entity_ids": np.asarray(entity_ids, dtype=np.int64),
        "entity_attention_mask": np.ones(len(spans), dtype=np.int64),
        "entity_position_ids": mention_position_ids(first, last, tok.max_mention_length),
    }
