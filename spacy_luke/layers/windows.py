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

Planning costs about ``(tokens + spans) * log`` for any input: numpy over all spans at once
(searchsorted over the piece offsets), never a loop over spans x windows or over the tokens a
window grows by. The results are those of the token-by-token rules above (``tests/
test_windows_cost.py`` keeps them as the reference). Piece offsets are contiguous
(``piece_starts[i + 1] == piece_ends[i]``), as :class:`TokenPieces` has them.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple, Union

import numpy as np

from ..tokenization.doc_inputs.token_pieces import TokenPieces


def _pieces(piece_starts: np.ndarray, piece_ends: np.ndarray, start: int, end: int) -> int:
    return int(piece_ends[end - 1] - piece_starts[start]) if end > start else 0


_PROBE_CELLS = 1 << 16  # cores x trial levels evaluated at once by centred_windows


def centred_window(piece_starts: np.ndarray, piece_ends: np.ndarray, core: Tuple[int, int], budget: int) -> Tuple[int, int]:
    """Extend ``core`` (token range) with context, balancing left and right, within ``budget`` pieces.

    Token by token, the side with less context so far (the left on a tie) takes its next token
    while the next tokens of both sides fit; then the side that still fits grows as far as it
    does. A core of more than ``budget`` pieces is returned as it is. One row of
    :func:`centred_windows`.
    """
    left, right = centred_windows(piece_starts, piece_ends, np.asarray([core], dtype=np.int64), budget)[0].tolist()
    return left, right


def centred_windows(piece_starts: np.ndarray, piece_ends: np.ndarray, cores: np.ndarray, budget: int) -> np.ndarray:
    """:func:`centred_window` of each non-empty row of ``cores`` (token ``[start, end)``), all at once.

    The token-by-token growth is a merge of the two sides' tokens by the context before each
    (ties to the left), so the state once every token with context below ``v`` has joined is two
    searchsorted calls. The last level ``v`` at which both sides still fit is searched for (many
    trial levels per step), the equal-context tokens at that level are resolved in closed form,
    and the side that still fits then grows as far as it does. Pieces must be contiguous
    (``piece_starts[i + 1] == piece_ends[i]``, as :class:`TokenPieces` has them).
    """
    starts, ends = np.asarray(piece_starts, dtype=np.int64), np.asarray(piece_ends, dtype=np.int64)
    cores = np.asarray(cores, dtype=np.int64).reshape(-1, 2)
    n, m = len(starts), len(cores)
    if m == 0:
        return np.zeros((0, 2), dtype=np.int64)
    c0, c1 = cores[:, :1], cores[:, 1:]  # columns, to broadcast against trial levels
    a, b = starts[c0], ends[c1 - 1]

    def state(v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        left = np.minimum(np.maximum(np.searchsorted(starts, a - v, "right") - 1, 0), c0)
        return left, np.minimum(np.maximum(np.searchsorted(ends, b + v, "left") + 1, c1), n)

    def growable(left: np.ndarray, right: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        grow_left = (left > 0) & (ends[right - 1] - starts[np.maximum(left - 1, 0)] <= budget)
        grow_right = (right < n) & (ends[np.minimum(right, n - 1)] - starts[left] <= budget)
        return grow_left, grow_right

    # Both sides fit at level lo (-1: not even at the start) and not at level hi.
    lo = np.full((m, 1), -1, dtype=np.int64)
    hi = np.maximum(budget - (b - a) + 1, 0)
    while True:
        gap = hi - lo - 1
        widest = int(gap.max())
        if widest <= 0:
            break
        k = min(widest, max(4, _PROBE_CELLS // m))
        v = lo + 1 + (gap * np.arange(k)) // k
        ok = np.logical_and(*growable(*state(v)))
        lo = np.maximum(lo, np.where(ok, v, -1).max(axis=1, keepdims=True))
        hi = np.minimum(hi, np.where(ok, hi, v).min(axis=1, keepdims=True))
    v = np.maximum(lo, 0)
    (_, right0), (left1, _) = state(v), state(v + 1)
    # Left tokens with context v join first: the first left where a side stops fitting ...
    need = np.maximum(
        np.searchsorted(starts, ends[right0 - 1] - budget, "left") + 1,
        np.searchsorted(starts, ends[np.minimum(right0, n - 1)] - budget, "left"),
    )
    stop_left = need - 1 >= left1
    # ... else the right tokens with context v, beside left1.
    right_fit = np.minimum(
        np.searchsorted(ends, starts[np.maximum(left1 - 1, 0)] + budget, "right"),
        np.searchsorted(ends, starts[left1] + budget, "right") - 1,
    )
    left = np.where(lo < 0, c0, np.where(stop_left, need - 1, left1))
    right = np.where(lo < 0, c1, np.where(stop_left, right0, right_fit + 1))
    grow_left, grow_right = growable(left, right)  # at most one side still fits: it takes all it can
    left = np.where(grow_left, np.searchsorted(starts, ends[right - 1] - budget, "left"), left)
    right = np.where(grow_right, np.searchsorted(ends, starts[left] + budget, "right"), right)
    return np.concatenate([left, right], axis=1)


def sliding_windows(piece_starts: np.ndarray, piece_ends: np.ndarray, core: Tuple[int, int], budget: int) -> List[Tuple[int, int]]:
    """Windows of at most ``budget`` pieces over a long core, each starting half a window after the last.

    A window takes tokens from its start while they fit (a token longer than the budget is a
    window by itself); the next one starts at the first token past half the budget from the last
    start, and at least one token later.
    """
    starts, ends = np.asarray(piece_starts, dtype=np.int64), np.asarray(piece_ends, dtype=np.int64)
    first, last = core
    own = np.arange(first, last)
    full = np.minimum(last, np.maximum(np.searchsorted(ends, starts[first:last] + budget, "right"), own + 1)).tolist()
    half = np.maximum(np.searchsorted(ends, starts[first:last] + budget // 2, "right"), own).tolist()
    windows = []
    start = first
    while True:
        end = full[start - first]
        windows.append((start, end))
        if end >= last:
            return windows
        start = max(min(half[start - first], end), start + 1)


def _best_windows(starts: np.ndarray, ends: np.ndarray, windows: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """For each span, the index of the window of ``windows`` (from :func:`sliding_windows`) that
    holds it with the most context on its shorter side, the first on a tie; -1 when none holds it.

    The windows holding a span are a run ``first..last``; along it the left context shrinks and
    the right one grows, so the best is just before or at the window where they cross.
    """
    left_edge, right_edge = starts[windows[:, 0]], ends[windows[:, 1] - 1]
    span_left, span_right = starts[spans[:, 0]], ends[spans[:, 1] - 1]
    first = np.searchsorted(windows[:, 1], spans[:, 1], "left")
    last = np.searchsorted(windows[:, 0], spans[:, 0], "right") - 1
    cross = np.clip(np.searchsorted(left_edge + right_edge, span_left + span_right, "left"), first, last + 1)
    before = np.maximum(cross - 1, 0)
    at = np.minimum(cross, len(windows) - 1)
    take_before = (cross > first) & ((cross > last) | (right_edge[before] - span_right >= span_left - left_edge[at]))
    earliest = np.maximum(first, np.searchsorted(right_edge, right_edge[before], "left"))  # same right context
    return np.where(first > last, -1, np.where(take_before, earliest, cross))


def plan_windows(
    piece_starts: np.ndarray,
    piece_ends: np.ndarray,
    sentences: Union[Sequence[Tuple[int, int]], Callable[[], Sequence[Tuple[int, int]]]],
    spans: np.ndarray,
    budget: int,
) -> Tuple[List[Tuple[Tuple[int, int], np.ndarray]], np.ndarray]:
    """Group ``spans`` (non-empty token ``[start, end)``) into word windows of at most ``budget`` pieces.

    ``sentences``: the token ``(start, end)`` of each sentence, or a function giving them (called
    only when the doc does not fit one window). Returns ``[(window, span indices), ...]`` (windows
    in the order of their first span) and the indices of spans that fit no window (a span longer
    than the budget by itself, or none of its core's windows holds it whole). Numpy over all
    spans: the windows of each distinct core are computed once, short cores all together.
    """
    n_tokens = len(piece_starts)
    if len(spans) == 0 or n_tokens == 0:
        return [], np.zeros(0, dtype=np.int64)
    if _pieces(piece_starts, piece_ends, 0, n_tokens) <= budget:
        return [((0, n_tokens), np.arange(len(spans)))], np.zeros(0, dtype=np.int64)
    if callable(sentences):
        sentences = sentences()
    starts, ends = np.asarray(piece_starts, dtype=np.int64), np.asarray(piece_ends, dtype=np.int64)
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    # The core of each span: its sentence when the span lies inside one, else the span itself.
    sent_arr = np.asarray(sentences, dtype=np.int64).reshape(-1, 2)
    cores = spans.copy()
    if len(sent_arr):
        s = np.searchsorted(sent_arr[:, 1], spans[:, 0], side="right")
        sent = sent_arr[np.minimum(s, len(sent_arr) - 1)]
        inside = (s < len(sent_arr)) & (spans[:, 1] <= sent[:, 1]) & (spans[:, 0] >= sent[:, 0])
        cores[inside] = sent[inside]
    # A span of more pieces than the budget fits no window; the others take one of their core's.
    kept = np.flatnonzero(ends[spans[:, 1] - 1] - starts[spans[:, 0]] <= budget)
    core_keys, core_of = np.unique(cores[kept, 0] * (n_tokens + 1) + cores[kept, 1], return_inverse=True)
    core_of = core_of.reshape(-1)
    unique_cores = np.stack([core_keys // (n_tokens + 1), core_keys % (n_tokens + 1)], axis=1)
    short = ends[unique_cores[:, 1] - 1] - starts[unique_cores[:, 0]] <= budget
    core_window = np.full((len(unique_cores), 2), -1, dtype=np.int64)
    core_window[short] = centred_windows(starts, ends, unique_cores[short], budget)
    window = core_window[core_of]
    by_core = np.argsort(core_of, kind="stable")
    bounds = np.searchsorted(core_of[by_core], np.arange(len(unique_cores) + 1))
    for c in np.flatnonzero(~short).tolist():
        members = by_core[bounds[c] : bounds[c + 1]]
        windows = np.asarray(sliding_windows(starts, ends, tuple(unique_cores[c].tolist()), budget), dtype=np.int64)
        best = _best_windows(starts, ends, windows, spans[kept[members]])
        window[members] = np.where(best[:, None] >= 0, windows[np.maximum(best, 0)], -1)
    placed = window[:, 0] >= 0
    dropped = np.ones(len(spans), dtype=bool)
    dropped[kept[placed]] = False
    indices, window = kept[placed], window[placed]
    keys, first_at, group = np.unique(window[:, 0] * (n_tokens + 1) + window[:, 1], return_index=True, return_inverse=True)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(first_at)] = np.arange(len(keys))
    group = rank[group.reshape(-1)]
    grouped = np.split(indices[np.argsort(group, kind="stable")], np.cumsum(np.bincount(group, minlength=len(keys)))[:-1])
    order = np.argsort(first_at).tolist()
    planned = [((int(keys[g] // (n_tokens + 1)), int(keys[g] % (n_tokens + 1))), grouped[r]) for r, g in enumerate(order)]
    return planned, np.flatnonzero(dropped).astype(np.int64)


def encodable_windows(
    pieces: TokenPieces,
    spans: np.ndarray,
    sentences: Callable[[], Sequence[Tuple[int, int]]],
    budget: int,
    on_skip: Callable[[int, str], None],
) -> List[Tuple[Tuple[int, int], np.ndarray]]:
    """:func:`plan_windows` of the ``spans`` that can be encoded; ``on_skip(index, reason)`` for the others.

    A span is skipped when it has no word pieces (only whitespace), more than ``budget``, or no
    window holds it whole (see :mod:`spacy_luke.layers.skipped`).
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


def split_passes(windows: List[Tuple[Tuple[int, int], np.ndarray]], max_entities: int) -> List[Tuple[Tuple[int, int], np.ndarray]]:
    """Each window's span indices cut into groups of at most ``max_entities``: ``[(window, indices), ...]``.

    Every group is one model input: the same words, other spans.
    """
    return [
        (window, indices[start : start + max_entities]) for window, indices in windows for start in range(0, len(indices), max_entities)
    ]
