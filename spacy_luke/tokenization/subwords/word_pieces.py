"""The interface shared by the word-piece models (byte-level BPE, sentencepiece).

A word-piece model turns plain text (no added tokens, no ``<s>``/``</s>``) into piece ids,
optionally with character offsets. Added tokens, special tokens and entities are handled
one layer up, in :mod:`spacy_luke.tokenization.hf_tokenizers.entity_tokenizer`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import List, Optional, Sequence, Tuple

Offsets = List[Tuple[int, int]]


class WordPieceModel(ABC):
    """Plain text to word-piece ids, backed by a fast library tokenizer."""

    #: Whether the first word of a text is encoded as if a space preceded it.
    prefix_at_start: bool = False

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids the model itself defines (added tokens come after)."""

    @abstractmethod
    def encode(self, text: str) -> List[int]:
        """The piece ids of ``text``."""

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """The piece ids of each text."""
        return [self.encode(text) for text in texts]

    @abstractmethod
    def encode_with_offsets(self, text: str) -> Tuple[List[int], Offsets]:
        """The piece ids of ``text`` and each piece's ``(start, end)`` character offsets."""

    @abstractmethod
    def encode_word(self, word: str, after_space: bool) -> List[int]:
        """The piece ids of one word, as it would be encoded inside running text.

        ``after_space`` says whether whitespace precedes the word in that text.
        """

    def encode_words(self, words: Sequence[str], after_spaces: Sequence[bool]) -> List[List[int]]:
        """:meth:`encode_word` of each word (the library models encode them in one batch call)."""
        return [self.encode_word(word, after_space) for word, after_space in zip(words, after_spaces)]

    @abstractmethod
    def token_to_id(self, token: str) -> Optional[int]:
        """The id of a piece string, or None when the model does not have it."""

    @abstractmethod
    def id_to_token(self, index: int) -> Optional[str]:
        """The piece string of an id, or None."""


class TokenizersLibraryPieces(WordPieceModel):
    """A :class:`WordPieceModel` over a ``tokenizers.Tokenizer`` (set ``self._tokenizer``)."""

    _tokenizer: "tokenizers.Tokenizer"  # noqa: F821 - set by subclasses

    def encode(self, text: str) -> List[int]:
        if not text:
            return []
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        if len(texts) < 8:
            return [self.encode(text) for text in texts]
        tokenizer = self._tokenizer
        # encode_batch_fast (tokenizers >= 0.20) skips the character offsets we do not need here.
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        # Empty texts give no pieces either way; the library is only asked for the others.
        out: List[List[int]] = [[] for _ in texts]
        wanted = [i for i, text in enumerate(texts) if text]
        for i, encoding in zip(wanted, encode([texts[i] for i in wanted], add_special_tokens=False)):
            out[i] = encoding.ids
        return out

    def encode_with_offsets(self, text: str) -> Tuple[List[int], Offsets]:
        if not text:
            return [], []
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return encoding.ids, [tuple(offset) for offset in encoding.offsets]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence of piece ids."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)
