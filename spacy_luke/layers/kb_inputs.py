"""LUKE's knowledge-enhanced input: a span with a known entity goes in as that Wikipedia entity.

LUKE was pretrained with Wikipedia entities as inputs next to the words; a span whose
``kb_id_`` (set by ``luke_entity_linker``, an entity ruler, or the user) is a title of the
checkpoint's entity vocabulary can be fed as that entity instead of [MASK]. Then the entity's
pretrained embedding carries what Wikipedia knows about it into the pipe's decision. It helps
when the linking is reliable and the task depends on world knowledge of the entity (the type of
a well-known organisation, a relation between famous people); it hurts where links are wrong,
and it changes nothing for entities outside the vocabulary (they stay [MASK]).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from spacy.tokens import Doc


def check_kb_inputs(pipe_name: str, use_kb_ids: bool, lite: Optional[bool]) -> bool:
    """The ``lite`` setting of a pipe with ``use_kb_ids``: default (None) false when it uses them."""
    if use_kb_ids and lite:
        raise ValueError(
            f"[{pipe_name}] use_kb_ids = true needs the full entity vocabulary, but lite = true keeps only the "
            "special entities: set lite = false (or leave it unset)."
        )
    return (not use_kb_ids) if lite is None else lite


def doc_kb_ids(doc: Doc) -> Dict[Tuple[int, int], str]:
    """{(start, end): kb_id} of the doc's entities and span-group spans that have a kb_id."""
    found: Dict[Tuple[int, int], str] = {}
    for group in doc.spans.values():
        for span in group:
            if span.kb_id_:
                found.setdefault((span.start, span.end), span.kb_id_)
    for ent in doc.ents:  # the entities win over span groups
        if ent.kb_id_:
            found[(ent.start, ent.end)] = ent.kb_id_
    return found


def kb_entity_rows(kb_ids: Dict[Tuple[int, int], str], spans: np.ndarray, entity_vocab, language: Optional[str]) -> np.ndarray:
    """Per span (token [start, end) rows of ``spans``), the entity row of its kb_id (-1: none or
    not in the vocabulary). With ``language`` (mLUKE), ``"language:title"`` is tried first."""
    rows = np.full(len(spans), -1, dtype=np.int64)
    if not kb_ids:
        return rows
    for i, (start, end) in enumerate(np.asarray(spans).reshape(-1, 2).tolist()):
        title = kb_ids.get((start, end))
        if not title:
            continue
        if language and f"{language}:{title}" in entity_vocab:
            rows[i] = entity_vocab[f"{language}:{title}"]
        elif title in entity_vocab:
            rows[i] = entity_vocab[title]
    return rows
