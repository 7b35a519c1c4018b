"""The Doc encoder: spaCy tokens to LUKE model inputs, from numpy arrays only (spaCy not imported).

Built on a tokenizer of :mod:`..hf_tokenizers` (its word pieces, special ids and settings) and
on its marker and tensor rules, so that its inputs are what that tokenizer gives for the same
text and spans; nothing below imports this subpackage.

- :mod:`.doc_encoder`: :class:`DocEncoder`, what the spaCy pipes hold;
- :mod:`.token_pieces`: word pieces of a token sequence, cached per token string
  (:class:`TokenPieces`, :class:`TokenPieceEncoder`);
- :mod:`.window_inputs`: the span / marker inputs of one window of tokens;
- :mod:`.padded_batches`: padded batches of them (:class:`SpanPass`).
"""
from .doc_encoder import DocEncoder
from .padded_batches import SpanPass
from .token_pieces import TokenPieceEncoder, TokenPieces

__all__ = ["DocEncoder", "SpanPass", "TokenPieceEncoder", "TokenPieces"]
