"""Added (special) tokens: strings such as ``<s>``, ``<mask>`` or ``<ent>`` that are never split.

Text is cut around every added token before the word-piece model sees it, as Hugging Face
slow tokenizers do: the longest added token wins at the leftmost position, a token with
``lstrip`` eats the whitespace on its left, one with ``rstrip`` the whitespace on its right.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

#: The special word tokens of a tokenizer, by setting name (transformers' names).
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}


@dataclass(frozen=True)
class AddedToken:
    """An unsplittable token with its id and its whitespace-stripping behaviour."""

    content: str
    id: int
    lstrip: bool = False
    rstrip: bool = False


@dataclass(frozen=True)
class TextPiece:
    """A stretch of plain text (``token is None``) or one added token, with its char offset."""

    text: str
    start: int
    token: Optional[AddedToken] = None


class AddedTokenSplitter:
    """Cuts text into plain stretches and added tokens."""

    def __init__(self, tokens: Iterable[AddedToken]):
        self.tokens = {token.content: token for token in tokens if token.content}
        if self.tokens:
            ordered = sorted(self.tokens, key=len, reverse=True)
            self._pattern: Optional[re.Pattern] = re.compile("|".join(re.escape(t) for t in ordered))
        else:
            self._pattern = None

    def split(self, text: str) -> List[TextPiece]:
        """The plain stretches (possibly empty) and added tokens of ``text``, in order."""
        if self._pattern is None or not text:
            return [TextPiece(text, 0)]
        pieces: List[TextPiece] = []
        cursor = 0
        for match in self._pattern.finditer(text):
            pieces.append(TextPiece(text[cursor : match.start()], cursor))
            pieces.append(TextPiece(match.group(), match.start(), self.tokens[match.group()]))
            cursor = match.end()
        pieces.append(TextPiece(text[cursor:], cursor))
        for i, piece in enumerate(pieces):
            if piece.token is None:
                continue
            if piece.token.rstrip and i + 1 < len(pieces) and pieces[i + 1].token is None:
                right = pieces[i + 1]
                stripped = right.text.lstrip()
                pieces[i + 1] = TextPiece(stripped, right.start + len(right.text) - len(stripped))
            if piece.token.lstrip and i > 0 and pieces[i - 1].token is None:
                left = pieces[i - 1]
                pieces[i - 1] = TextPiece(left.text.rstrip(), left.start)
        return pieces


def token_content(value: Union[str, dict, None]) -> Optional[str]:
    """The token string of a config value (a string or a ``{"content": ...}`` dict)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value["content"])
    return str(value)


def strip_flags(value: Union[str, dict, None], lstrip: bool, rstrip: bool) -> Tuple[bool, bool]:
    """``(lstrip, rstrip)`` of a config value, falling back to the given defaults."""
    if isinstance(value, dict):
        return bool(value.get("lstrip", lstrip)), bool(value.get("rstrip", rstrip))
    return lstrip, rstrip
