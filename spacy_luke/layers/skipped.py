"""Spans a pipe cannot encode: found by one rule in every pipe, skipped with one warning per call.

A span cannot be encoded when it has no word pieces (it is only whitespace) or when it needs
more word pieces than the model's window holds. Such a span is skipped (it gets no
annotation); the rest of the batch runs as usual, and each call warns once, naming the pipe,
the first spans skipped and why. Filter the warnings with
``warnings.filterwarnings("ignore", category=LukeSkippedSpanWarning)``.
"""
from __future__ import annotations

import warnings
from typing import List, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc

NO_PIECES = "it is only whitespace (no word pieces)"
NO_WINDOW = "no word window of the model holds it whole"
SHOWN = 3  # spans named in one warning


class LukeSkippedSpanWarning(UserWarning):
    """A LUKE pipe skipped spans it cannot encode (whitespace only, or longer than the window)."""


def too_long(budget: int) -> str:
    return f"it needs more word pieces than the model's window of {budget}"


def piece_counts(piece_starts: np.ndarray, piece_ends: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """The number of word pieces of each span (token ``[start, end)`` rows of ``spans``)."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if len(spans) == 0:
        return np.zeros(0, dtype=np.int64)
    return piece_ends[spans[:, 1] - 1] - piece_starts[spans[:, 0]]


def unencodable(piece_starts: np.ndarray, piece_ends: np.ndarray, spans: np.ndarray, budget: int) -> List[Tuple[int, str]]:
    """``(index, reason)`` of the spans with no word pieces or more than ``budget`` of them."""
    counts = piece_counts(piece_starts, piece_ends, spans)
    return [(int(i), NO_PIECES if counts[i] <= 0 else too_long(budget)) for i in np.flatnonzero((counts <= 0) | (counts > budget))]


class SkipLog:
    """The spans one call of a pipe skipped; :meth:`warn` says so once."""

    def __init__(self, pipe_name: str):
        self.pipe_name = pipe_name
        self.skipped: List[Tuple[Doc, Tuple[Tuple[int, int], ...], str]] = []

    def add(self, doc: Doc, spans: Sequence[Tuple[int, int]], reason: str) -> None:
        """Record a skipped span (or pair: ``spans`` holds one or two token ranges)."""
        self.skipped.append((doc, tuple((int(s), int(e)) for s, e in spans), reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def warn(self) -> None:
        if not self.skipped:
            return
        shown = []
        for doc, spans, reason in self.skipped[:SHOWN]:
            what = " and ".join(f"{_excerpt(doc[s:e].text)} (tokens {s}-{e})" for s, e in spans)
            shown.append(f"{what} of the doc {_excerpt(doc.text)}: {reason}")
        more = f"; and {len(self.skipped) - SHOWN} more" if len(self.skipped) > SHOWN else ""
        kind = "pairs" if any(len(spans) == 2 for _, spans, _ in self.skipped) else "spans"
        warnings.warn(
            f"[{self.pipe_name}] skipped {len(self.skipped)} {kind} it cannot encode (they get no annotation): "
            + "; ".join(shown) + more,
            LukeSkippedSpanWarning,
            stacklevel=3,
        )


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
