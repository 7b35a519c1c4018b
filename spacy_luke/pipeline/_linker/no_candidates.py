"""The warning of a linker call whose mentions found no candidate entity at all.

Every mention then keeps ``nil_id``: nothing fails, so without a word the user would see only
empty ``kb_id_`` values. The warning names the candidate source, what it searched and what to
check; a pipe gives it once.
"""
from __future__ import annotations

import warnings
from typing import Any, List, Sequence

from ...sources.entity_vocab import SPECIAL_ENTITIES
from .entity_candidates import LinkContext


class LukeNoCandidatesWarning(UserWarning):
    """No mention of a linker call had a candidate entity."""


def warn_no_candidates(pipe_name: str, source: Any, context: LinkContext, mention_texts: Sequence[str]) -> None:
    """Warn that none of ``mention_texts`` had a candidate from ``source``, and what to check."""
    examples = ", ".join(repr(text) for text in list(dict.fromkeys(mention_texts))[:3])
    warnings.warn(
        f"[{pipe_name}] no mention had a candidate entity (e.g. {examples}), so none was linked; the candidates "
        f"come from {_describe(source, context)}. {_what_to_check(source, context)}",
        LukeNoCandidatesWarning,
        stacklevel=3,
    )


def _titles(context: LinkContext) -> List[str]:
    return [title for title in context.entity_vocab if title not in SPECIAL_ENTITIES]


def _describe(source: Any, context: LinkContext) -> str:
    name = type(source).__name__
    if name == "KBCandidates":
        kb = context.kb
        size = "no knowledge base" if kb is None else f"a knowledge base of {kb.get_size_entities()} entities and {kb.get_size_aliases()} aliases"
        return f"spacy-luke.KBCandidates.v1 ({size})"
    aliases = getattr(source, "aliases_path", None)
    with_aliases = f" and the alias file {aliases}" if aliases is not None else ", no alias file"
    return f"spacy-luke.{name}.v1 (the entity vocabulary's {len(_titles(context))} titles{with_aliases})"


def _what_to_check(source: Any, context: LinkContext) -> str:
    if type(source).__name__ == "KBCandidates":
        return (
            "Check that the knowledge base's aliases are the mentions' texts and that its entity ids are titles of the "
            "checkpoint's entity vocabulary (or mapped to them by the mapping file)."
        )
    if not _titles(context):
        return (
            "The checkpoint has no entity titles (a converted encoder): convert it with its entities "
            "(python -m spacy_luke convert-encoder ENCODER OUT --entities TITLES_OR_ALIASES_FILE)."
        )
    language = f" (with the language prefix {context.language!r})" if context.language else ""
    return (
        f"Check that the mentions' texts are titles of the entity vocabulary{language} or aliases of the alias file "
        "(matched case- and punctuation-insensitively)."
    )
