"""Custom attributes the LUKE pipes write (``luke_``-prefixed, installed once, never forced)."""
from __future__ import annotations

from spacy.tokens import Doc, Span


def install_extensions() -> None:
    if not Span.has_extension("luke_score"):
        Span.set_extension("luke_score", default=None)


def install_typer_extensions() -> None:
    """``Span._.luke_types``: {label: probability} of the predicted types (None: not typed)."""
    if not Span.has_extension("luke_types"):
        Span.set_extension("luke_types", default=None)


def install_relation_extensions() -> None:
    """``Doc._.luke_relations``: list of {"head": [start_char, end_char], "tail": [...], "label", "score"}."""
    if not Doc.has_extension("luke_relations"):
        Doc.set_extension("luke_relations", default=None)


def install_vector_extensions() -> None:
    """``Span._.luke_vector``: the entity's contextual vector (float32 numpy; None: not encoded)."""
    if not Span.has_extension("luke_vector"):
        Span.set_extension("luke_vector", default=None)


def install_linker_extensions() -> None:
    """``Span._.luke_kb_scores``: [(kb_id, probability), ...] of the linked mention, best first (None: not linked)."""
    if not Span.has_extension("luke_kb_scores"):
        Span.set_extension("luke_kb_scores", default=None)


def install_all_extensions() -> None:
    """Every extension the LUKE pipes write (to read their docs back, e.g. from a DocBin, with no pipe loaded)."""
    for install in (install_extensions, install_typer_extensions, install_relation_extensions, install_vector_extensions, install_linker_extensions):
        install()
