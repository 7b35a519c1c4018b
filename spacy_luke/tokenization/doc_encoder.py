"""Encoding pre-tokenized (spaCy) text for LUKE, one token at a time, with a piece cache.

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

:meth:`DocEncoder.span_inputs` then builds what ``LukeTokenizer(task="entity_span_classification")``
gives for the same text and spans, from token offsets and numpy arrays only.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .markers import marked_entity_spans
from .encoding import LukeEncoding, to_tensors
from .luke_tokenizer import EntityAwareTokenizer

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


@dataclass(frozen=True)
class SpanPass:
    """One span-classification pass before padding: a window's pieces and spans to classify.

    :meth:`DocEncoder.pad_span_passes` turns many of them into one padded batch, the same
    arrays as :meth:`DocEncoder.pad` over :meth:`DocEncoder.span_inputs_from_pieces` of each.

    Attributes:
        pieces: the window's pieces (token offsets relative to the window).
        spans: ``(n, 2)`` int64 token ``[start, end)`` offsets inside the window.
    """

    pieces: TokenPieces
    spans: np.ndarray

    @property
    def n_words(self) -> int:
        """Word slots, with ``<s>`` and ``</s>``."""
        return len(self.pieces.ids) + 2

    @property
    def n_entities(self) -> int:
        return len(self.spans)


class DocEncoder:
    """Encodes token sequences with a LUKE/mLUKE tokenizer, caching pieces per token.

    Args:
        tokenizer: a :class:`~spacy_luke.tokenization.LukeTokenizer` or
            :class:`~spacy_luke.tokenization.MLukeTokenizer`; its special ids, [MASK]
            entity id, ``max_mention_length`` and ``model_max_length`` are used.
        max_cache_size: the cache is emptied when it holds this many token keys.
    """

    def __init__(self, tokenizer: EntityAwareTokenizer, *, max_cache_size: int = 200_000):
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

    # ------------------------------------------------------------------ model inputs

    def span_inputs(
        self,
        words: Sequence[str],
        spaces: Sequence[Union[bool, str]],
        spans: Union[np.ndarray, Sequence[Tuple[int, int]]],
    ) -> Dict[str, np.ndarray]:
        """Span-classification inputs for a window of tokens; see :meth:`span_inputs_from_pieces`."""
        return self.span_inputs_from_pieces(self.encode_tokens(words, spaces), spans)

    def span_inputs_from_pieces(
        self, pieces: TokenPieces, spans: Union[np.ndarray, Sequence[Tuple[int, int]]]
    ) -> Dict[str, np.ndarray]:
        """Model inputs for entity span classification of ``spans`` (token ``[start, end)`` offsets).

        The same values as ``LukeTokenizer(task="entity_span_classification")`` on the window
        text with the spans' character offsets (no padding): ``input_ids`` (``<s>`` pieces
        ``</s>``), ``attention_mask``, ``entity_ids`` ([MASK]), ``entity_attention_mask``,
        ``entity_position_ids`` (piece positions, -1 padded to ``max_mention_length``),
        ``entity_start_positions`` / ``entity_end_positions`` (first / last piece). All int64
        numpy arrays; pad and stack several with :meth:`pad`.
        """
        tok = self.tokenizer
        n_pieces = len(pieces.ids) + 2
        if n_pieces > tok.model_max_length:
            raise ValueError(
                f"The window is {n_pieces} word pieces long (with <s> and </s>), more than "
                f"model_max_length={tok.model_max_length}; encode fewer tokens per window."
            )
        spans = np.asarray(spans, dtype=np.int64)
        if spans.size == 0:
            spans = spans.reshape(0, 2)
        if spans.ndim != 2 or spans.shape[1] != 2:
            raise ValueError(f"spans must be an (n, 2) array of token [start, end) offsets, got shape {spans.shape}.")
        n_spans = len(spans)
        span_starts, span_ends = spans[:, 0], spans[:, 1]
        if n_spans and (span_starts.min() < 0 or span_ends.max() > pieces.n_tokens or (span_starts >= span_ends).any()):
            bad = (span_starts < 0) | (span_ends > pieces.n_tokens) | (span_starts >= span_ends)
            raise ValueError(
                f"Span {spans[np.argmax(bad)].tolist()} is not a non-empty token range [start, end) inside the "
                f"window of {pieces.n_tokens} tokens."
            )
        starts = pieces.starts[span_starts] + 1  # + 1 for <s>
        last = pieces.ends[span_ends - 1]  # the last piece, counting <s>
        offsets = np.arange(tok.max_mention_length, dtype=np.int64)
        positions = starts[:, None] + offsets
        positions[positions > last[:, None]] = -1
        input_ids = np.empty(n_pieces, dtype=np.int64)
        input_ids[0] = tok.cls_token_id
        input_ids[1:-1] = pieces.ids
        input_ids[-1] = tok.sep_token_id
        return {
            "input_ids": input_ids,
            "attention_mask": np.ones(n_pieces, dtype=np.int64),
            "entity_ids": np.full(n_spans, tok.entity_mask_token_id, dtype=np.int64),
            "entity_attention_mask": np.ones(n_spans, dtype=np.int64),
            "entity_position_ids": positions,
            "entity_start_positions": starts,
            "entity_end_positions": last,
        }

    def marker_inputs_from_pieces(
        self, pieces: TokenPieces, spans: Union[np.ndarray, Sequence[Tuple[int, int]]]
    ) -> Dict[str, np.ndarray]:
        """Entity (pair) classification inputs: one span, or an ordered (head, tail) pair, marked.

        The same values as ``LukeTokenizer(task="entity_classification")`` (one span) or
        ``task="entity_pair_classification"`` (two spans, head then tail) on the window text
        with the spans' character offsets (no padding): ``<ent>`` pieces around the (head)
        span, ``<ent2>`` around the tail, the [MASK] (and [MASK2]) entity over the
        marker-to-marker positions, ``-1``-padded to ``max_mention_length``. No
        ``entity_start_positions``: these heads read the entity states only. Pad with :meth:`pad`.
        """
        tok = self.tokenizer
        spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        if len(spans) not in (1, 2):
            raise ValueError(f"Marker inputs take one span (entity classification) or two (head, tail); got {len(spans)}.")
        for start, end in spans.tolist():
            if start < 0 or end > pieces.n_tokens or start >= end:
                raise ValueError(
                    f"Span {[start, end]} is not a non-empty token range [start, end) inside the window of "
                    f"{pieces.n_tokens} tokens."
                )
        markers = [tok.entity_token_1_id, tok.entity_token_2_id][: len(spans)]
        declared = getattr(tok, "_declared_tokens", None)
        needed = [tok.entity_token_1, tok.entity_token_2][: len(spans)]
        if declared is not None and any(token not in declared for token in needed):
            raise ValueError(
                f"Entity {'pair ' if len(spans) == 2 else ''}classification marks spans with {needed}, but the "
                "tokenizer's vocabulary (vocab / added_tokens.json / special_tokens_map.json) lacks them: use the "
                "tokenizer files of a LUKE checkpoint fine-tuned for this task."
            )
        piece_spans = [(int(pieces.starts[s]), int(pieces.ends[e - 1])) for s, e in spans.tolist()]
        for p_start, p_end in piece_spans:
            if p_start >= p_end:
                raise ValueError("A marked span must have word pieces (it is only whitespace).")
        if len(piece_spans) == 2:
            (h0, h1), (t0, t1) = piece_spans
            if h0 < t1 and t0 < h1:
                raise ValueError(f"The head and tail spans {spans.tolist()} overlap; a pair needs two disjoint spans.")
        entity_spans = marked_entity_spans(piece_spans)
        # Insert the markers (np.insert keeps the given order at equal indices: head end, then tail start).
        where, values = [], []
        for (p_start, p_end), marker in sorted(zip(piece_spans, markers)):
            where += [p_start, p_end]
            values += [marker, marker]
        body = np.insert(pieces.ids, where, values)
        n_pieces = len(body) + 2
        if n_pieces > tok.model_max_length:
            raise ValueError(
                f"The window is {n_pieces} word pieces long (with <s>, </s> and markers), more than "
                f"model_max_length={tok.model_max_length}; encode fewer tokens per window."
            )
        input_ids = np.empty(n_pieces, dtype=np.int64)
        input_ids[0] = tok.cls_token_id
        input_ids[1:-1] = body
        input_ids[-1] = tok.sep_token_id
        mml = tok.max_mention_length
        offsets = np.arange(mml, dtype=np.int64)
        starts = np.asarray([s for s, _ in entity_spans], dtype=np.int64) + 1  # + 1 for <s>
        ends = np.asarray([e for _, e in entity_spans], dtype=np.int64) + 1
        positions = starts[:, None] + offsets[None, :]
        positions[offsets[None, :] >= (ends - starts)[:, None]] = -1
        entity_ids = [tok.entity_mask_token_id, tok.entity_mask2_token_id][: len(spans)]
        return {
            "input_ids": input_ids,
            "attention_mask": np.ones(n_pieces, dtype=np.int64),
            "entity_ids": np.asarray(entity_ids, dtype=np.int64),
            "entity_attention_mask": np.ones(len(spans), dtype=np.int64),
            "entity_position_ids": positions,
        }

    def pad(
        self,
        batch: Sequence[Dict[str, np.ndarray]],
        *,
        return_tensors: Optional[str] = "np",
        pad_to_multiple_of: Optional[int] = None,
    ) -> LukeEncoding:
        """Right-pad and stack :meth:`span_inputs_from_pieces` outputs (to the longest).

        Words are padded with the pad token, entities with the [PAD] entity, positions with -1;
        both attention masks mark padding with 0 explicitly.
        """
        if not batch:
            raise ValueError("pad() needs at least one example.")
        tok = self.tokenizer
        word_len = max(len(x["input_ids"]) for x in batch)
        entity_len = max(len(x["entity_ids"]) for x in batch)
        if pad_to_multiple_of:
            word_len = -(-word_len // pad_to_multiple_of) * pad_to_multiple_of
            entity_len = -(-entity_len // pad_to_multiple_of) * pad_to_multiple_of
        fills = {
            "input_ids": tok.pad_token_id,
            "attention_mask": 0,
            "entity_ids": tok.entity_pad_token_id,
            "entity_attention_mask": 0,
            "entity_position_ids": -1,
            "entity_start_positions": 0,
            "entity_end_positions": 0,
        }
        out: Dict[str, np.ndarray] = {}
        for key, fill in fills.items():
            if key not in batch[0]:  # e.g. no span positions for the entity (pair) classification heads
                continue
            length = word_len if key in ("input_ids", "attention_mask") else entity_len
            shape = (len(batch), length) + ((tok.max_mention_length,) if key == "entity_position_ids" else ())
            array = np.full(shape, fill, dtype=np.int64)
            for row, example in enumerate(batch):
                value = example[key]
                array[row, : len(value)] = value
            out[key] = array
        if return_tensors == "np":
            return LukeEncoding(out)
        if return_tensors == "pt":
            import torch

            return LukeEncoding({k: torch.from_numpy(v) for k, v in out.items()})
        return to_tensors({k: v.tolist() for k, v in out.items()}, return_tensors, prepend_batch_axis=False)

    def pad_span_passes(self, passes: Sequence[SpanPass]) -> Dict[str, np.ndarray]:
        """One padded batch of span-classification inputs, built directly from the passes.

        The same arrays as ``pad([span_inputs_from_pieces(p.pieces, p.spans) for p in passes])``
        (numpy, int64); see :meth:`padded_span_batches`.
        """
        if not passes:
            raise ValueError("pad_span_passes() needs at least one pass.")
        return next(self.padded_span_batches(passes, [range(len(passes))]))

    def padded_span_batches(
        self, passes: Sequence[SpanPass], batches: Sequence[Sequence[int]]
    ) -> Iterator[Dict[str, np.ndarray]]:
        """The padded inputs of each batch of ``passes`` (``batches``: lists of pass indices).

        Every batch gets the arrays :meth:`pad_span_passes` would give it, but the work is done
        once for all passes: the pieces and span positions of all batches are computed in one
        vectorized pass (in batch order), and each batch is then two fills and a few scatters.
        """
        tok = self.tokenizer
        order = np.fromiter(itertools.chain.from_iterable(batches), dtype=np.int64)
        batch_sizes = np.fromiter(map(len, batches), dtype=np.int64, count=len(batches))
        if (batch_sizes == 0).any():
            raise ValueError("Every batch needs at least one pass.")
        ordered = [passes[i] for i in order.tolist()]
        n_rows = len(ordered)
        n_ids = np.fromiter((len(p.pieces.ids) for p in ordered), dtype=np.int64, count=n_rows)
        n_words = n_ids + 2
        if n_rows and n_words.max() > tok.model_max_length:
            row = int(np.argmax(n_words))
            raise ValueError(
                f"Pass {int(order[row])} is {int(n_words[row])} word pieces long (with <s> and </s>), more than "
                f"model_max_length={tok.model_max_length}; encode fewer tokens per window."
            )
        n_tokens = np.fromiter((p.pieces.n_tokens for p in ordered), dtype=np.int64, count=n_rows)
        n_spans = np.fromiter((len(p.spans) for p in ordered), dtype=np.int64, count=n_rows)
        spans = np.concatenate([np.asarray(p.spans, dtype=np.int64).reshape(-1, 2) for p in ordered]) if n_rows else np.zeros((0, 2), np.int64)
        rows = np.arange(n_rows, dtype=np.int64)
        span_row = np.repeat(rows, n_spans)
        if len(spans):
            bad = (spans[:, 0] < 0) | (spans[:, 1] > n_tokens[span_row]) | (spans[:, 0] >= spans[:, 1])
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"Span {spans[i].tolist()} of pass {int(order[span_row[i]])} is not a non-empty token range "
                    f"[start, end) inside its window of {int(n_tokens[span_row[i]])} tokens."
                )
        # Words of all rows, flat: <s> pieces </s>, with each slot's row and column.
        word_first = np.cumsum(n_words) - n_words
        words = np.full(int(n_words.sum()), tok.sep_token_id, dtype=np.int64)
        words[word_first] = tok.cls_token_id
        body = np.ones(len(words), dtype=bool)
        body[word_first] = False
        body[word_first + n_words - 1] = False
        if n_rows:
            words[body] = np.concatenate([p.pieces.ids for p in ordered])
        word_row = np.repeat(rows, n_words)
        word_col = np.arange(len(words), dtype=np.int64) - np.repeat(word_first, n_words)
        # Entities of all rows, flat: first and last piece (counting <s>), the pieces in between.
        token_offset = np.repeat(np.cumsum(n_tokens) - n_tokens, n_spans)
        token_starts = np.concatenate([p.pieces.starts for p in ordered]) if n_rows else np.zeros(0, np.int64)
        token_ends = np.concatenate([p.pieces.ends for p in ordered]) if n_rows else np.zeros(0, np.int64)
        starts = token_starts[spans[:, 0] + token_offset] + 1
        last = token_ends[spans[:, 1] - 1 + token_offset]
        mml = tok.max_mention_length
        positions = starts[:, None] + np.arange(mml, dtype=np.int64)
        positions[positions > last[:, None]] = -1
        entity_col = np.arange(len(spans), dtype=np.int64) - np.repeat(np.cumsum(n_spans) - n_spans, n_spans)
        # Each batch: a contiguous slice of rows, words and entities.
        row_bounds = np.concatenate([[0], np.cumsum(batch_sizes)])
        word_bounds = np.concatenate([[0], np.cumsum(n_words)])[row_bounds]
        entity_bounds = np.concatenate([[0], np.cumsum(n_spans)])[row_bounds]
        word_len = np.maximum.reduceat(n_words, row_bounds[:-1]) if n_rows else np.zeros(0, np.int64)
        entity_len = np.maximum.reduceat(n_spans, row_bounds[:-1]) if n_rows else np.zeros(0, np.int64)
        for b in range(len(batch_sizes)):
            r0, r1 = int(row_bounds[b]), int(row_bounds[b + 1])
            w0, w1 = int(word_bounds[b]), int(word_bounds[b + 1])
            e0, e1 = int(entity_bounds[b]), int(entity_bounds[b + 1])
            size, width, n_entities = r1 - r0, int(word_len[b]), int(entity_len[b])
            input_ids = np.full((size, width), tok.pad_token_id, dtype=np.int64)
            input_ids[word_row[w0:w1] - r0, word_col[w0:w1]] = words[w0:w1]
            entity_rows, entity_cols = span_row[e0:e1] - r0, entity_col[e0:e1]
            entity_position_ids = np.full((size, n_entities, mml), -1, dtype=np.int64)
            entity_position_ids[entity_rows, entity_cols] = positions[e0:e1]
            entity_start_positions = np.zeros((size, n_entities), dtype=np.int64)
            entity_start_positions[entity_rows, entity_cols] = starts[e0:e1]
            entity_end_positions = np.zeros((size, n_entities), dtype=np.int64)
            entity_end_positions[entity_rows, entity_cols] = last[e0:e1]
            entity_mask = np.arange(n_entities) < n_spans[r0:r1, None]
            yield {
                "input_ids": input_ids,
                "attention_mask": (np.arange(width) < n_words[r0:r1, None]).astype(np.int64),
                "entity_ids": np.where(entity_mask, tok.entity_mask_token_id, tok.entity_pad_token_id),
                "entity_attention_mask": entity_mask.astype(np.int64),
                "entity_position_ids": entity_position_ids,
                "entity_start_positions": entity_start_positions,
                "entity_end_positions": entity_end_positions,
            }
