"""Tokenization for LUKE and mLUKE: word pieces with offsets, entity vocabulary, entity inputs.

- :class:`LukeTokenizer` / :class:`MLukeTokenizer`: ``from_pretrained(name_or_path, **settings)``
  and a transformers-compatible ``__call__`` (same keys and values as transformers' tokenizers).
- :class:`TokenizerJsonLukeTokenizer`: the same over a ``tokenizer.json`` (LUKE models built from
  BERT-family encoders); :func:`load_tokenizer` picks the right class for any LUKE folder.
- :class:`DocEncoder`: encodes spaCy-style token sequences (token strings + whitespace flags)
  with a per-token piece cache, and builds span-classification inputs from token offsets.
- :class:`EntityVocab` / :func:`load_entity_vocab`: entity titles to ids, special entities by name.
"""
from .bpe import ByteLevelBPE
from .doc_encoder import DocEncoder
from .encoding import LukeEncoding
from .entity_tokenizer import EntityAwareTokenizer
from .entity_vocab import EntityVocab, load_entity_vocab
from .luke_tokenizer import (
    LukeTokenizer,
    MLukeTokenizer,
    TokenizerJsonLukeTokenizer,
    load_tokenizer,
    tokenizer_class_for,
)
from .padded_batches import SpanPass
from .sentencepiece_bpe import SentencePieceBPE
from .task_examples import TASKS
from .token_pieces import TokenPieces
from .tokenizer_json import TokenizerJsonPieces
from .word_pieces import WordPieceModel

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
