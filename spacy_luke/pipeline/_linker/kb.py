"""The spaCy KnowledgeBase a ``luke_entity_linker`` may hold (for ``KBCandidates``), saved with it.

Set with ``linker.set_kb(kb)`` (a KnowledgeBase, the folder of one, or a callable ``vocab -> KB``) or ``kb_loader`` in ``[initialize.components.NAME]`` (e.g.
``spacy.KBFromFile.v1``), as spaCy's own entity_linker does. A saved pipe keeps the KB in ``kb/``
(an ``InMemoryLookupKB``; other KB classes need their own ``to_disk`` / ``from_disk``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import srsly

KB_DIR = "kb"


class LinkerKB:
    def __init__(self, vocab):
        self.vocab = vocab
        self.kb: Optional[Any] = None

    def set(self, kb: Union[Any, str, Path, Callable]) -> None:
        """Hold ``kb``: a KnowledgeBase, the folder of one (``kb.to_disk``, e.g. ``build-kb``'s output,
        read as an ``InMemoryLookupKB``), or a callable ``vocab -> KnowledgeBase`` (spaCy's kb_loader)."""
        if isinstance(kb, (str, Path)):
            kb = load_kb(kb, self.vocab)
        elif callable(kb) and not _is_kb(kb):
            loader = kb
            kb = loader(self.vocab)
            if not _is_kb(kb):
                raise ValueError(f"set_kb: the kb_loader returned {type(kb).__name__}, not a spaCy KnowledgeBase.")
        if not _is_kb(kb):
            raise TypeError(
                f"set_kb takes a KnowledgeBase, the folder of one (build-kb's output) or a callable vocab -> "
                f"KnowledgeBase; got {type(kb).__name__}."
            )
        self.kb = kb

    def to_disk(self, path, exclude: Iterable[str]) -> None:
        if self.kb is not None and KB_DIR not in exclude:
            self.kb.to_disk(Path(path) / KB_DIR)

    def from_disk(self, path, exclude: Iterable[str]) -> None:
        folder = Path(path) / KB_DIR
        if folder.exists() and KB_DIR not in exclude:
            self.kb = load_kb(folder, self.vocab)

    def wrap_bytes(self, pipe_bytes: bytes, exclude: Iterable[str]) -> bytes:
        kb = self.kb.to_bytes() if self.kb is not None and KB_DIR not in exclude else b""
        return srsly.msgpack_dumps({"pipe": pipe_bytes, KB_DIR: kb})

    def unwrap_bytes(self, data: bytes, exclude: Iterable[str]) -> bytes:
        msg = srsly.msgpack_loads(data)
        if msg.get(KB_DIR) and KB_DIR not in exclude:
            self.kb = _empty_kb(self.vocab)
            self.kb.from_bytes(msg[KB_DIR])
        return msg["pipe"]


def _is_kb(kb: Any) -> bool:
    return hasattr(kb, "get_candidates") or hasattr(kb, "get_alias_candidates")


def load_kb(folder: Union[str, Path], vocab: Any):
    """The ``InMemoryLookupKB`` saved in ``folder`` (``kb.to_disk``, or ``build-kb``'s output)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such knowledge base folder; give the folder kb.to_disk or build-kb wrote "
            "(python -m spacy_luke build-kb ALIASES CHECKPOINT OUT)."
        )
    kb = _empty_kb(vocab)
    kb.from_disk(folder)
    return kb


def _empty_kb(vocab):
    from spacy.kb import InMemoryLookupKB

    return InMemoryLookupKB(vocab, entity_vector_length=1)  # the saved KB sets its vector length

