"""Word pieces of pre-tokenized (spaCy) text, one token at a time, with a piece cache.

The spaCy pipes hand over plain lists (``[t.text for t in doc]`` and
``[t.whitespace_ for t in doc]``; spaCy is not imported here). Each token is encoded on its
own, keyed by ``(token string, preceded by whitespace)``, and the result is cached, so a
repeated token is never tokenized twice. For whitespace-separated text this gives the same
pieces as encoding the whole text:

- byte-level BPE: a token preceded by whitespace is encoded as ``" " + text`` (``Ġ`` prefix),
  as RoBERTa/LUKE encode it inside running text; the first token gets no space unless the
  tokenizer has ``add_prefix_space``;
- sentencepiece: a token preceded by whitespace (or first) gets the ``▁`` prefix, a token glued
  to the previous one (``do`` + ``n't``) does not.

Whitespace-only tokens (spaCy's ``"\\n"`` or extra-space tokens) get no pieces: their piece
range is empty, and the next token counts as preceded by whitespace.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    from ..hf_tokenizers.entity_tokenizer import EntityAwareTokenizer

PieceKey = Tuple[str, bool]

@dataclass(frozen=True)
class TokenPieces:
    """Word pieces of a token sequence and the token -> piece alignment.

    Attributes:
        ids: the piece ids of all tokens, in order (int64, no ``<s>``/``</s>``).
        starts: for each token, the index of its first piece in ``ids``.
        ends: for each token, one past its last piece (``starts == ends`` for tokens
            without pieces, e.g. whitespace tokens).
    """

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_tokens(self) -> int:
        return len(self.starts)

    def alignment(self) -> List[Tuple[int, int]]:
        """``[(start, end), ...]``: the piece range of each token."""
        return list(zip(self.starts.tolist(), self.ends.tolist()))


class TokenPieceEncoder:
    """Encodes token sequences into word pieces, caching the pieces of each token.

    Args:
        tokenizer: a :class:`~spacy_luke.tokenization.LukeTokenizer` or
            :class:`~spacy_luke.tokenization.MLukeTokenizer`; its word pieces and
            ``add_prefix_space`` are used.
        max_cache_size: the cache is emptied when it holds this many token keys.
    """

    def __init__(self, tokenizer: "EntityAwareTokenizer", *, max_cache_size: int = 200_000):
        self.tokenizer = tokenizer
        self.word_pieces = tokenizer.word_pieces
        self.first_after_space = bool(
            tokenizer.add_prefix_space if hasattr(self.word_pieces, "add_prefix_space") else self.word_pieces.prefix_at_start
        )
        self.max_cache_size = max_cache_size
        self._cache: Dict[PieceKey, Tuple[int, ...]] = {}
        # (string key, preceded by whitespace) -> (pieces, the token ends with whitespace)
        self._keyed_cache: Dict[Tuple[int, bool], Tuple[Tuple[int, ...], bool]] = {}

    # ------------------------------------------------------------------ pieces

    def pieces(self, text: str, after_space: bool) -> Tuple[int, ...]:
        """The (cached) piece ids of one token string."""
        key = (text, after_space)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self.max_cache_size:
                self._cache.clear()
            found = () if not text or text.isspace() else tuple(self.word_pieces.encode_word(text, after_space))
            self._cache[key] = found
        return found

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._keyed_cache.clear()

    def encode_tokens(self, words: Sequence[str], spaces: Sequence[Union[bool, str]]) -> TokenPieces:
        """Piece ids of a token sequence and each token's ``[start, end)`` piece range.

        Args:
            words: the token strings (spaCy ``token.text``).
            spaces: for each token, its trailing whitespace (``token.whitespace_``) or a bool.
        """
        if len(words) != len(spaces):
            raise ValueError(
                f"words and spaces must have the same length (one whitespace flag per token); got "
                f"{len(words)} words and {len(spaces)} flags."
            )
        cache = self._cache
        piece_lists: List[Tuple[int, ...]] = []
        after_space = self.first_after_space
        for word, space in zip(words, spaces):
            found = cache.get((word, after_space))
            if found is None:
                found = self.pieces(word, after_space)
            piece_lists.append(found)
            after_space = bool(space) or (bool(word) and word[-1].isspace())
        return self._token_pieces(piece_lists)

    def encode_keyed_tokens(
        self, keys: Sequence[int], spaces: Sequence[bool], text_of: Callable[[int], str]
    ) -> TokenPieces:
        """:meth:`encode_tokens` for tokens given as string keys (spaCy's ``ORTH`` hashes).

        The pieces are cached per ``(key, preceded by whitespace)``; ``text_of(key)`` (e.g.
        ``vocab.strings.__getitem__``) is called only for keys not seen before, so a warm cache
        encodes a doc from two integer arrays (``doc.to_array([ORTH, SPACY])``) without touching
        its Token objects.
        """
        if len(keys) != len(spaces):
            raise ValueError(f"keys and spaces must have the same length; got {len(keys)} keys and {len(spaces)} flags.")
        # uint64, as spaCy's hashes: the keys come back from .tolist() unchanged.
        columns = np.zeros((len(keys), 2), dtype=np.uint64)
        if len(keys):
            columns[:, 0] = np.asarray(keys, dtype=np.uint64)
            columns[:, 1] = np.asarray(spaces, dtype=bool)
        return self.encode_keyed_docs([columns], text_of)[0]

    def encode_keyed_docs(
        self, columns: Sequence[np.ndarray], text_of: Callable[[int], str]
    ) -> List[TokenPieces]:
        """:meth:`encode_keyed_tokens` of many token sequences at once.

        ``columns``: one ``(n_tokens, 2)`` int array per sequence, string key and trailing
        whitespace flag (``doc.to_array([ORTH, SPACY])``). The piece ids of all sequences are
        built in one array; each :class:`TokenPieces` is a view of it.
        """
        cache = self._keyed_cache
        if len(cache) >= self.max_cache_size:
            cache.clear()
        first_after_space = self.first_after_space
        piece_lists: List[Tuple[int, ...]] = []
        n_tokens: List[int] = []
        missing: Dict[Tuple[int, bool], Tuple[str, List[int]]] = {}  # (key, after space) -> (text, slots)
        for array in columns:
            if array.ndim != 2 or array.shape[1] != 2:
                raise ValueError(f"Each columns array must be (n_tokens, 2): string key, whitespace flag; got shape {array.shape}.")
            n_tokens.append(len(array))
            after_space = first_after_space
            for key, space in array.tolist():
                found = cache.get((key, after_space))
                if found is None:
                    seen = missing.get((key, after_space))
                    if seen is None:
                        seen = missing[(key, after_space)] = (text_of(key), [])
                    seen[1].append(len(piece_lists))
                    piece_lists.append(())
                    text = seen[0]
                    after_space = bool(space) or (bool(text) and text[-1].isspace())
                else:
                    piece_lists.append(found[0])
                    after_space = bool(space) or found[1]
        if missing:
            self._fill_missing(missing, piece_lists)
        flat = self._token_pieces(piece_lists)
        out: List[TokenPieces] = []
        token = 0
        for n in n_tokens:
            first = int(flat.starts[token]) if n else 0
            last = int(flat.ends[token + n - 1]) if n else 0
            out.append(TokenPieces(ids=flat.ids[first:last], starts=flat.starts[token : token + n] - first,
                                   ends=flat.ends[token : token + n] - first))
            token += n
        return out

    def _fill_missing(self, missing: Dict[Tuple[int, bool], Tuple[str, List[int]]], piece_lists: List[Tuple[int, ...]]) -> None:
        """Encode the tokens not in the keyed cache (one batch call for all), cache and place them."""
        todo = [(text, after_space) for (_, after_space), (text, _) in missing.items()
                if text and not text.isspace() and (text, after_space) not in self._cache]
        todo = list(dict.fromkeys(todo))
        encoded = self.word_pieces.encode_words([t for t, _ in todo], [a for _, a in todo]) if todo else []
        if len(self._cache) + len(todo) > self.max_cache_size:
            self._cache.clear()
        for key, ids in zip(todo, encoded):
            self._cache[key] = tuple(ids)
        for (key, after_space), (text, slots) in missing.items():
            pieces = self.pieces(text, after_space)
            self._keyed_cache[(key, after_space)] = (pieces, bool(text) and text[-1].isspace())
            for slot in slots:
                piece_lists[slot] = pieces

    def _token_pieces(self, piece_lists: List[Tuple[int, ...]]) -> TokenPieces:
        n = len(piece_lists)
        lengths = np.fromiter(map(len, piece_lists), dtype=np.int64, count=n)
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if n else 0
        ids = np.fromiter(itertools.chain.from_iterable(piece_lists), dtype=np.int64, count=total)
        return TokenPieces(ids=ids, starts=ends - lengths, ends=ends)
