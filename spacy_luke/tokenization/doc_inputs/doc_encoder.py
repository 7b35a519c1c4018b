"""Encoding pre-tokenized (spaCy) text for LUKE: cached token pieces, window inputs, padded batches.

:class:`DocEncoder` is what the spaCy pipes hold. It encodes token sequences with a per-token
piece cache (:mod:`.token_pieces`), builds the inputs of one window from token offsets
(:mod:`.window_inputs`: what ``LukeTokenizer(task="entity_span_classification")`` and the
marker tasks give for the same text and spans) and pads them into batches
(:mod:`.padded_batches`), from numpy arrays only.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional, Sequence, Union

import numpy as np

from ..hf_tokenizers.encoding import LukeEncoding
from .padded_batches import SpanPass, pad_window_inputs, padded_span_batches
from .token_pieces import TokenPieceEncoder, TokenPieces
from .window_inputs import TokenSpans, marker_inputs_from_pieces, span_inputs_from_pieces


class DocEncoder(TokenPieceEncoder):
    """Encodes token sequences with a LUKE/mLUKE tokenizer, caching pieces per token.

    Args:
        tokenizer: a :class:`~spacy_luke.tokenization.LukeTokenizer` or
            :class:`~spacy_luke.tokenization.MLukeTokenizer`; its special ids, [MASK]
            entity id, ``max_mention_length`` and ``model_max_length`` are used.
        max_cache_size: the cache is emptied when it holds this many token keys.
    """

    # ------------------------------------------------------------------ model inputs

    def span_inputs(
        self,
        words: Sequence[str],
        spaces: Sequence[Union[bool, str]],
        spans: TokenSpans,
    ) -> Dict[str, np.ndarray]:
        """Span-classification inputs for a window of tokens; see :meth:`span_inputs_from_pieces`."""
        return self.span_inputs_from_pieces(self.encode_tokens(words, spaces), spans)

    def span_inputs_from_pieces(self, pieces: TokenPieces, spans: TokenSpans) -> Dict[str, np.ndarray]:
        """Model inputs for entity span classification of ``spans`` (token ``[start, end)`` offsets).

        What ``LukeTokenizer(task="entity_span_classification")`` gives on the window text (no
        padding; see :func:`~.window_inputs.span_inputs_from_pieces`); pad several with :meth:`pad`.
        """
        return span_inputs_from_pieces(self.tokenizer, pieces, spans)

    def marker_inputs_from_pieces(self, pieces: TokenPieces, spans: TokenSpans) -> Dict[str, np.ndarray]:
        """Entity (pair) classification inputs: one span, or an ordered (head, tail) pair, marked.

        What ``LukeTokenizer(task="entity_classification")`` / ``"entity_pair_classification"``
        gives on the window text (no padding; see :func:`~.window_inputs.marker_inputs_from_pieces`);
        pad several with :meth:`pad`.
        """
        return marker_inputs_from_pieces(self.tokenizer, pieces, spans)

    # ------------------------------------------------------------------ padded batches

    def pad(
        self,
        batch: Sequence[Dict[str, np.ndarray]],
        *,
        return_tensors: Optional[str] = "np",
        pad_to_multiple_of: Optional[int] = None,
    ) -> LukeEncoding:
        """Right-pad and stack :meth:`span_inputs_from_pieces` / :meth:`marker_inputs_from_pieces`
        outputs to the longest (see :func:`~.padded_batches.pad_window_inputs`)."""
        return pad_window_inputs(
            self.tokenizer, batch, return_tensors=return_tensors, pad_to_multiple_of=pad_to_multiple_of
        )

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

        Every batch gets the arrays :meth:`pad_span_passes` would give it, computed once for all
        passes (see :func:`~.padded_batches.padded_span_batches`).
        """
        return padded_span_batches(self.tokenizer, passes, batches)
