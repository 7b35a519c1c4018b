"""Tokenization for LUKE and mLUKE: word pieces with offsets, entity vocabulary, entity inputs.

- :class:`LukeTokenizer` / :class:`MLukeTokenizer`: ``from_pretrained(name_or_path, **settings)``
  and a transformers-compatible ``__call__`` (same keys and values as transformers' tokenizers).
- :class:`TokenizerJsonLukeTokenizer`: the same over a ``tokenizer.json`` (LUKE models built from
  BERT-family encoders); :func:`load_tokenizer` picks the right class for any LUKE folder.
- :class:`DocEncoder`: encodes spaCy-style token sequences (token strings + whitespace flags)
  with a per-token piece cache, and builds span-classification inputs from token offsets.
- :class:`EntityVocab` / :func:`load_entity_vocab`: entity titles to ids, special entities by name.

Three subsystems, each importing only the ones below it (``tests/test_layering.py`` checks it):

- :mod:`.subwords` (the bottom): word-piece models (byte-level BPE, sentencepiece,
  ``tokenizer.json``), added tokens, the tokenizer files;
- :mod:`.hf_tokenizers`: the transformers-compatible tokenizers, over the subword models;
- :mod:`.doc_inputs`: the Doc encoder, over a tokenizer of :mod:`.hf_tokenizers`.
"""
from .doc_inputs import DocEncoder, SpanPass, TokenPieces
from .hf_tokenizers import (
    TASKS,
    EntityAwareTokenizer,
    EntityVocab,
    LukeEncoding,
    LukeTokenizer,
    MLukeTokenizer,
    TokenizerJsonLukeTokenizer,
    load_entity_vocab,
    load_tokenizer,
    tokenizer_class_for,
)
from .subwords import ByteLevelBPE, SentencePieceBPE, TokenizerJsonPieces, WordPieceModel

__all__ = [
    "ByteLevelBPE",
    "DocEncoder",
    "EntityAwareTokenizer",
    "EntityVocab",
    "LukeEncoding",
    "LukeTokenizer",
    "MLukeTokenizer",
    "SentencePieceBPE",
    "SpanPass",
    "TASKS",
    "TokenPieces",
    "TokenizerJsonLukeTokenizer",
    "TokenizerJsonPieces",
    "WordPieceModel",
    "load_entity_vocab",
    "load_tokenizer",
    "tokenizer_class_for",
]
