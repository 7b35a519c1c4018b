"""Tokenization for LUKE and mLUKE: word pieces with offsets, entity vocabulary, entity inputs.

- :class:`LukeTokenizer` / :class:`MLukeTokenizer`: ``from_pretrained(name_or_path, **settings)``
  and a transformers-compatible ``__call__`` (same keys and values as transformers' tokenizers).
- :class:`DocEncoder`: encodes spaCy-style token sequences (token strings + whitespace flags)
  with a per-token piece cache, and builds span-classification inputs from token offsets.
- :class:`EntityVocab` / :func:`load_entity_vocab`: entity titles to ids, special entities by name.
"""
from .bpe import ByteLevelBPE
from .doc_encoder import DocEncoder, TokenPieces
from .encoding import LukeEncoding
from .entity_vocab import EntityVocab, load_entity_vocab
from .luke_tokenizer import TASKS, EntityAwareTokenizer, LukeTokenizer, MLukeTokenizer
from .sentencepiece_bpe import SentencePieceBPE
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
    "TASKS",
    "TokenPieces",
    "WordPieceModel",
    "load_entity_vocab",
]
