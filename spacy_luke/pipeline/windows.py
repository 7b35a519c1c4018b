"""Word windows and passes: which word pieces each candidate span is scored with.

LUKE was fine-tuned with document context: a sentence's words plus the words around it, up to
the model's limit. Here:

- a doc whose word pieces fit the budget is one window shared by all its candidates;
- otherwise each *core* (a sentence, or the span itself when it crosses sentences) gets the
  window that centres it, extended token by token on the side with less context so far;
- a core longer than the budget is covered by overlapping windows, and each span goes to the
  window where it has the most context on its shorter side;
- identical windows are merged, and each window's spans are cut into passes of at most
  ``max_entities_per_pass`` that reuse the same words.

Passes from many docs are then grouped into batches by padded cost (word pieces + entity
slots), not by doc count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple, Union

import numpy as np

from ..tokenization.doc_encoder import TokenPieces


@dataclass
class Pass:
    """One model input: a word window of one doc and some of its candidate spans."""

    doc_index: int
    window: Tuple[int, int]  # token [start, end)
    span_indices: np.ndarray  # indices into the doc's candidate array

    def cost(self, n_pieces: int) -> int:
        return n_pieces + 2 + len(self.span_indices)


def _pieces(piece_starts: np.ndarray, piece_ends: np.ndarray, start: int, end: int) -> int:
    return int(piece_ends[end - 1] - piece_starts[start]) if end > start else 0


def centred_window(piece_starts: np.ndarray, piece_ends: np.ndarray, core: Tuple[int, int], budget: int) -> Tuple[int, int]:
    """Extend ``core`` (token range) with context, balancing left and right, within ``budget`` pieces."""
    n = len(piece_starts)
    left, right = core
    total = _pieces(piece_starts, piece_ends, left, right)
    while True:
        left_ctx = int(piece_starts[core[0]] - piece_starts[left]) if left < core[0] else 0
        right_ctx = int(piece_ends[right - 1] - piece_ends[core[1] - 1]) if right > core[1] else 0
        grow_left = left > 0 and total + int(piece_ends[left - 1] - piece_starts[left - 1]) <= budget
        grow_right = right < n and total + int(piece_ends[right] - piece_starts[right]) <= budget
        if not grow_left and not grow_right:
            return left, right
        if grow_left and (not grow_right or left_ctx <= right_ctx):
            left -= 1
            total += int(piece_ends[left] - piece_starts[left])
        else:
            total += int(piece_ends[right] - piece_starts[right])
            right += 1


def sliding_windows(piece_starts: np.ndarray, piece_ends: np.ndarray, core: Tuple[int, int], budget: int) -> List[Tuple[int, int]]:
    """Windows of at most ``budget`` pieces over a long core, each starting half a window after the last."""
    windows = []
    start = core[0]
    while True:
        end = start
        while end < core[1] and _pieces(piece_starts, piece_ends, start, end + 1) <= budget:
            end += 1
        if end == start:  # a single token longer than the budget
            end = start + 1
        windows.append((start, end))
        if end >= core[1]:
            return windows
        half = start
        while half < end and _pieces(piece_starts, piece_ends, start, half + 1) <= budget // 2:
            half += 1
        start = max(half, start + 1)


def plan_windows(
    piece_starts: np.ndarray,
    piece_ends: np.ndarray,
    sentences: Union[Sequence[Tuple[int, int]], Callable[[], Sequence[Tuple[int, int]]]],
    spans: np.ndarray,
    budget: int,
) -> Tuple[List[Tuple[Tuple[int, int], np.ndarray]], np.ndarray]:
    """Group ``spans`` (token ``[start, end)``) into word windows of at most ``budget`` pieces.

    ``sentences``: the token ``(start, end)`` of each sentence, or a function giving them (called
    only when the doc does not fit one window). Returns ``[(window, span indices), ...]`` and
    the indices of spans that fit no window (a span longer than the budget by itself).
    """
    n_tokens = len(piece_starts)
    if len(spans) == 0 or n_tokens == 0:
        return [], np.zeros(0, dtype=np.int64)
    if _pieces(piece_starts, piece_ends, 0, n_tokens) <= budget:
        return [((0, n_tokens), np.arange(len(spans)))], np.zeros(0, dtype=np.int64)
    if callable(sentences):
        sentences = sentences()
    # The core of each span: its sentence when the span lies inside one, else the span itself.
    sent_arr = np.asarray(sentences, dtype=np.int64).reshape(-1, 2)
    sent_of_start = np.searchsorted(sent_arr[:, 1], spans[:, 0], side="right")
    by_window: Dict[Tuple[int, int], List[int]] = {}
    dropped: List[int] = []
    core_windows: Dict[Tuple[int, int], List[Tuple[int, int]]] = {}
    for i, (start, end) in enumerate(spans.tolist()):
        s = int(sent_of_start[i])
        core = tuple(sent_arr[s]) if s < len(sent_arr) and end <= sent_arr[s][1] and start >= sent_arr[s][0] else (start, end)
        core = (int(core[0]), int(core[1]))
        windows = core_windows.get(core)
        if windows is None:
            if _pieces(piece_starts, piece_ends, *core) <= budget:
                windows = [centred_window(piece_starts, piece_ends, core, budget)]
            else:
                windows = sliding_windows(piece_starts, piece_ends, core, budget)
            core_windows[core] = windows
        best, best_ctx = None, -1
        for window in windows:
            if window[0] <= start and end <= window[1]:
                ctx = min(
                    int(piece_starts[start] - piece_starts[window[0]]),
                    int(piece_ends[window[1] - 1] - piece_ends[end - 1]),
                )
                if ctx > best_ctx:
                    best, best_ctx = window, ctx
        if best is None or _pieces(piece_starts, piece_ends, start, end) > budget:
            dropped.append(i)
            continue
        by_window.setdefault(best, []).append(i)
    planned = [(window, np.asarray(indices, dtype=np.int64)) for window, indices in by_window.items()]
    return planned, np.asarray(dropped, dtype=np.int64)


def encodable_windows(
    pieces: TokenPieces,
    spans: np.ndarray,
    sentences: Callable[[], Sequence[Tuple[int, int]]],
    budget: int,
    on_skip: Callable[[int, str], None],
) -> List[Tuple[Tuple[int, int], np.ndarray]]:
    """:func:`plan_windows` of the ``spans`` that can be encoded; ``on_skip(index, reason)`` for the others.

    A span is skipped when it has no word pieces (only whitespace), more than ``budget``, or no
    window holds it whole (see :mod:`spacy_luke.pipeline.skipped`).
    """
    from .skipped import NO_WINDOW, unencodable

    keep = np.arange(len(spans))
    bad = unencodable(pieces.starts, pieces.ends, spans, budget)
    if bad:
        for i, reason in bad:
            on_skip(i, reason)
        keep = np.setdiff1d(keep, [i for i, _ in bad])
    windows, lost = plan_windows(pieces.starts, pieces.ends, sentences, spans[keep], budget)
    for i in lost.tolist():
        on_skip(int(keep[i]), NO_WINDOW)
    return [(window, keep[indices]) for window, indices in windows]


def window_pieces(pieces: TokenPieces, window: Tuple[int, int]) -> TokenPieces:
    """The pieces of the tokens ``window`` (token ``[start, end)``), offsets relative to the window."""
    start, end = window
    if start == 0 and end == pieces.n_tokens:
        return pieces
    first, last = int(pieces.starts[start]), int(pieces.ends[end - 1])
    return TokenPieces(ids=pieces.ids[first:last], starts=pieces.starts[start:end] - first, ends=pieces.ends[start:end] - first)


def split_passes(doc_index: int, windows: List[Tuple[Tuple[int, int], np.ndarray]], max_entities: int) -> List[Pass]:
    passes = []
    for window, indices in windows:
        for start in range(0, len(indices), max_entities):
            passes.append(Pass(doc_index, window, indices[start : start + max_entities]))
    return passes


def batch_by_cost(costs: Sequence[Tuple[int, int]], max_cost: int) -> List[List[int]]:
    """Group items ``(n_pieces, n_entities)`` so each batch's padded cost stays within ``max_cost``.

    The padded cost of a batch is ``len(batch) * (max pieces + max entities)``. Items are sorted
    by size first so that similar lengths share a batch; a single item over the limit gets a
    batch of its own. Returns lists of item indices.
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i][0] + costs[i][1], costs[i]))
    batches: List[List[int]] = []
    current: List[int] = []
    max_words = max_entities = 0
    for i in order:
        words, entities = costs[i]
        new_words, new_entities = max(max_words, words), max(max_entities, entities)
        if current and (len(current) + 1) * (new_words + new_entities) > max_cost:
            batches.append(current)
            current, new_words, new_entities = [], words, entities
        current.append(i)
        max_words, max_entities = new_words, new_entities
    if current:
        batches.append(current)
    return batches
