"""Custom attributes the LUKE pipes write (``luke_``-prefixed, installed once, never forced)."""
from __future__ import annotations

from spacy.tokens import Doc, Span


def install_extensions() -> None:
    if not Span.has_extension("luke_score"):
        Span.set_extension("luke_score", default=None)
