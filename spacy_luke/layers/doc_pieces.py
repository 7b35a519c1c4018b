"""What the input layers read of a Doc: its tokens' word pieces, its sentences, and the word
budget of one model input.

- :func:`docs_token_pieces`: the word pieces (``TokenPieces``) of each doc's tokens, encoded
  together from their ORTH/SPACY arrays (the Doc encoder caches pieces per token string);
- :func:`sentence_bounds` / :func:`sentence_starts`: the token offsets of the sentences, read
  with one ``doc.to_array`` call (the same sentences as ``doc.sents``);
- :func:`word_budget`: the word pieces one model input holds;
- :func:`input_pieces`, :func:`input_layer_forward`: what every input layer starts from.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from spacy.attrs import ORTH, SPACY
from spacy.tokens import Doc


def docs_token_pieces(doc_encoder, docs: Sequence[Doc]) -> List:
    """The word pieces (``TokenPieces``) of each doc's tokens, encoded together from their
    ORTH/SPACY arrays by ``doc_encoder`` (a ``TokenPieceEncoder``).

    The docs of one batch may come from different vocabs (``nlp.pipe`` takes Docs made
    elsewhere): a token's string is read from the first of the docs' vocabs that holds its key.
    """
    if not docs:
        return []
    stores = list({id(doc.vocab): doc.vocab.strings for doc in docs}.values())
    if len(stores) == 1:
        text_of = stores[0].__getitem__
    else:

        def text_of(key: int) -> str:
            for strings in stores:
                if key in strings:
                    return strings[key]
            raise KeyError(f"No vocab of the batch's docs has the string of token key {key}: make each doc with its own vocab's strings.")

    columns = [doc.to_array([ORTH, SPACY]).reshape(-1, 2) for doc in docs]
    return doc_encoder.encode_keyed_docs(columns, text_of)


def sentence_bounds(doc: Doc) -> List[tuple]:
    """Token ``(start, end)`` of each sentence; the whole doc when it has no sentence boundaries."""
    starts = sentence_starts(doc)
    return list(zip(starts.tolist(), starts[1:].tolist() + [len(doc)]))


def sentence_starts(doc: Doc, sent_start: Optional[np.ndarray] = None) -> np.ndarray:
    """Token index of each sentence start (``[0]`` without sentence boundaries; empty for an empty doc).

    The same sentences as ``doc.sents``: token 0, and every later token whose ``sent_start`` is 1,
    read with one ``doc.to_array`` call instead of iterating the Span objects.
    """
    if len(doc) == 0:
        return np.zeros(0, dtype=np.int64)
    if sent_start is None:
        from spacy.attrs import SENT_START

        sent_start = doc.to_array(SENT_START).reshape(-1).astype(np.int64)
    if len(doc) > 1 and not sent_start[1:].any():  # no sentence annotation: one sentence
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(sent_start == 1)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return starts.astype(np.int64)


def word_budget(config, tokenizer, n_markers: int = 0) -> int:
    """Word pieces one model input holds: the model's positions (and the tokenizer's limit), less
    ``<s>``, ``</s>`` and ``n_markers`` pairs of marker pieces (``<ent>`` ... ``<ent>``)."""
    positions = config.max_position_embeddings - config.pad_token_id - 1
    return min(tokenizer.model_max_length, positions) - 2 - 2 * n_markers


def input_pieces(model, n_markers: int = 0):
    """``(tokenizer, Doc encoder, word budget)`` of the LUKE head an input layer ``model`` refers to."""
    from .head_layer import luke_shim

    shim = luke_shim(model)
    tokenizer = shim.pieces.tokenizer
    return tokenizer, shim.pieces.doc_encoder, word_budget(shim.head_model.config, tokenizer, n_markers)


def input_layer_forward(plan_of):
    """The forward of an input layer whose plan is ``plan_of(model, docs, items)`` (no gradient
    reaches the docs)."""

    def forward(model, X, is_train: bool):
        docs, items = X
        return plan_of(model, docs, items), lambda d_plan: X

    return forward
