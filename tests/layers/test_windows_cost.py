"""Window planning: the numpy planner gives exactly the token-by-token planner's windows, at a bounded cost.

The reference functions below are the straightforward loops the planner replaced (kept here
as the specification): random docs with zero-piece (whitespace) tokens and tokens longer than
the budget, random sentences and spans, must plan to the same windows, the same span-to-window
assignment (ties included) and the same dropped spans.
"""
import time
from typing import Dict, List, Tuple

import numpy as np
import pytest

from spacy_luke.layers.windows import centred_window, centred_windows, plan_windows, sliding_windows


# ---------------------------------------------------------------------------- the reference


def _ref_pieces(piece_starts, piece_ends, start, end):
    return int(piece_ends[end - 1] - piece_starts[start]) if end > start else 0


def ref_centred_window(piece_starts, piece_ends, core, budget):
    n = len(piece_starts)
    left, right = core
    total = _ref_pieces(piece_starts, piece_ends, left, right)
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


def ref_sliding_windows(piece_starts, piece_ends, core, budget):
    windows = []
    start = core[0]
    while True:
        end = start
        while end < core[1] and _ref_pieces(piece_starts, piece_ends, start, end + 1) <= budget:
            end += 1
        if end == start:
            end = start + 1
        windows.append((start, end))
        if end >= core[1]:
            return windows
        half = start
        while half < end and _ref_pieces(piece_starts, piece_ends, start, half + 1) <= budget // 2:
            half += 1
        start = max(half, start + 1)


def ref_plan_windows(piece_starts, piece_ends, sentences, spans, budget):
    n_tokens = len(piece_starts)
    if len(spans) == 0 or n_tokens == 0:
        return [], np.zeros(0, dtype=np.int64)
    if _ref_pieces(piece_starts, piece_ends, 0, n_tokens) <= budget:
        return [((0, n_tokens), np.arange(len(spans)))], np.zeros(0, dtype=np.int64)
    if callable(sentences):
        sentences = sentences()
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
            if _ref_pieces(piece_starts, piece_ends, *core) <= budget:
                windows = [ref_centred_window(piece_starts, piece_ends, core, budget)]
            else:
                windows = ref_sliding_windows(piece_starts, piece_ends, core, budget)
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
        if best is None or _ref_pieces(piece_starts, piece_ends, start, end) > budget:
            dropped.append(i)
            continue
        by_window.setdefault(best, []).append(i)
    planned = [(window, np.asarray(indices, dtype=np.int64)) for window, indices in by_window.items()]
    return planned, np.asarray(dropped, dtype=np.int64)


# ---------------------------------------------------------------------------- random inputs


def random_pieces(rng, n_tokens, budget):
    """Contiguous piece offsets, as DocEncoder makes them: some whitespace tokens (0 pieces), some longer than the budget."""
    lengths = rng.integers(1, 5, size=n_tokens)
    lengths[rng.random(n_tokens) < 0.15] = 0
    lengths[rng.random(n_tokens) < 0.03] = budget + rng.integers(1, 4)
    ends = np.cumsum(lengths).astype(np.int64)
    return ends - lengths, ends


def random_sentences(rng, n_tokens):
    cuts = np.flatnonzero(rng.random(n_tokens - 1) < rng.choice([0.0, 0.05, 0.2, 0.5])) + 1
    bounds = [0, *cuts.tolist(), n_tokens]
    return list(zip(bounds[:-1], bounds[1:]))


def random_spans(rng, n_tokens, n_spans, max_len):
    starts = rng.integers(0, n_tokens, size=n_spans)
    lengths = rng.integers(1, max_len + 1, size=n_spans)
    return np.stack([starts, np.minimum(starts + lengths, n_tokens)], axis=1).astype(np.int64)


def random_case(seed):
    rng = np.random.default_rng(seed)
    budget = int(rng.integers(1, 24))
    n_tokens = int(rng.integers(1, 80))
    starts, ends = random_pieces(rng, n_tokens, budget)
    return rng, budget, n_tokens, starts, ends


def assert_same_plan(got, expected):
    (windows, dropped), (ref_windows, ref_dropped) = got, expected
    assert [w for w, _ in windows] == [w for w, _ in ref_windows]
    assert all(type(x) is int for w, _ in windows for x in w)
    for (_, idx), (_, ref_idx) in zip(windows, ref_windows):
        assert idx.dtype == np.int64 and idx.tolist() == ref_idx.tolist()
    assert dropped.dtype == np.int64 and dropped.tolist() == ref_dropped.tolist()


# ---------------------------------------------------------------------------- the properties


@pytest.mark.parametrize("seed", range(300))
def test_plan_windows_matches_reference(seed):
    rng, budget, n_tokens, starts, ends = random_case(seed)
    sentences = random_sentences(rng, n_tokens)
    spans = random_spans(rng, n_tokens, int(rng.integers(0, 60)), int(rng.integers(1, 12)))
    expected = ref_plan_windows(starts, ends, sentences, spans, budget)
    assert_same_plan(plan_windows(starts, ends, sentences, spans, budget), expected)
    assert_same_plan(plan_windows(starts, ends, lambda: sentences, spans, budget), expected)


@pytest.mark.parametrize("seed", range(300))
def test_centred_and_sliding_windows_match_reference(seed):
    rng, budget, n_tokens, starts, ends = random_case(1000 + seed)
    cores = random_spans(rng, n_tokens, 20, n_tokens)
    for core in cores.tolist():
        assert centred_window(starts, ends, tuple(core), budget) == ref_centred_window(starts, ends, tuple(core), budget)
        assert sliding_windows(starts, ends, tuple(core), budget) == ref_sliding_windows(starts, ends, tuple(core), budget)
    batched = centred_windows(starts, ends, cores, budget)
    assert [tuple(w) for w in batched.tolist()] == [ref_centred_window(starts, ends, tuple(c), budget) for c in cores.tolist()]


def test_plan_windows_matches_reference_on_long_sentences_and_ties():
    """Uniform one-piece tokens make many equal contexts (ties); sentences longer than the budget."""
    for budget in (4, 7, 10, 31):
        starts = np.arange(300, dtype=np.int64)
        ends = starts + 1
        sentences = [(0, 5), (5, 140), (140, 141), (141, 300)]
        spans = np.array([(s, s + k) for s in range(300) for k in range(1, 6) if s + k <= 300], dtype=np.int64)
        expected = ref_plan_windows(starts, ends, sentences, spans, budget)
        assert_same_plan(plan_windows(starts, ends, sentences, spans, budget), expected)


def test_plan_windows_cost_on_one_long_sentence():
    """20,000 tokens in one sentence with every span up to 16 tokens (~320,000 candidates)."""
    rng = np.random.default_rng(0)
    n_tokens = 20_000
    lengths = rng.integers(1, 3, size=n_tokens)
    lengths[rng.random(n_tokens) < 0.05] = 0
    ends = np.cumsum(lengths).astype(np.int64)
    starts = ends - lengths
    spans = np.array([(s, s + k) for s in range(n_tokens) for k in range(1, 17) if s + k <= n_tokens], dtype=np.int64)
    began = time.perf_counter()
    windows, dropped = plan_windows(starts, ends, [(0, n_tokens)], spans, 510)
    elapsed = time.perf_counter() - began
    assert elapsed < 10.0, f"plan_windows took {elapsed:.1f} s"
    placed = np.concatenate([idx for _, idx in windows])
    assert len(placed) + len(dropped) == len(spans)
    assert all(ends[w[1] - 1] - starts[w[0]] <= 510 for w, _ in windows)


def test_centred_windows_cost_on_many_cores():
    """One call for 100,000 cores (a suggester's spans across sentence boundaries) stays cheap."""
    rng = np.random.default_rng(1)
    n_tokens = 20_000
    lengths = rng.integers(0, 4, size=n_tokens)
    ends = np.cumsum(lengths).astype(np.int64)
    starts = ends - lengths
    cores = random_spans(rng, n_tokens, 100_000, 16)
    began = time.perf_counter()
    windows = centred_windows(starts, ends, cores, 510)
    assert time.perf_counter() - began < 10.0
    for i in rng.choice(len(cores), 50, replace=False).tolist():
        assert tuple(windows[i].tolist()) == ref_centred_window(starts, ends, tuple(cores[i].tolist()), 510)
