"""The spaCy KnowledgeBase a ``luke_entity_linker`` may hold (for ``KBCandidates``), saved with it.

Set with ``linker.set_kb(kb_loader)`` or ``kb_loader`` in ``[initialize.components.NAME]`` (e.g.
``spacy.KBFromFile.v1``), as spaCy's own entity_linker does. A saved pipe keeps the KB in ``kb/``
(an ``InMemoryLookupKB``; other KB classes need their own ``to_disk`` / ``from_disk``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import srsly

KB_DIR = "kb"


class LinkerKB:
    def __init__(self, vocab):
        self.vocab = vocab
        self.kb: Optional[Any] = None

    def set(self, kb_loader: Callable) -> None:
        kb = kb_loader(self.vocab)
        if not hasattr(kb, "get_candidates") and not hasattr(kb, "get_alias_candidates"):
            raise ValueError(f"kb_loader returned {type(kb).__name__}, not a spaCy KnowledgeBase.")
        self.kb = kb

    def to_disk(self, path, exclude: Iterable[str]) -> None:
        if self.kb is not None and KB_DIR not in exclude:
            self.kb.to_disk(Path(path) / KB_DIR)

    def from_disk(self, path, exclude: Iterable[str]) -> None:
        folder = Path(path) / KB_DIR
        if folder.exists() and KB_DIR not in exclude:
            self.kb = _empty_kb(self.vocab)
            self.kb.from_disk(folder)

    def wrap_bytes(self, pipe_bytes: bytes, exclude: Iterable[str]) -> bytes:
        kb = self.kb.to_bytes() if self.kb is not None and KB_DIR not in exclude else b""
        return srsly.msgpack_dumps({"pipe": pipe_bytes, KB_DIR: kb})

    def unwrap_bytes(self, data: bytes, exclude: Iterable[str]) -> bytes:
        msg = srsly.msgpack_loads(data)
        if msg.get(KB_DIR) and KB_DIR not in exclude:
            self.kb = _empty_kb(self.vocab)
            self.kb.from_bytes(msg[KB_DIR])
        return msg["pipe"]


def _empty_kb(vocab):
    from spacy.kb import InMemoryLookupKB

    return InMemoryLookupKB(vocab, entity_vector_length=1)  # the saved KB sets its vector length

