"""The entity vocabulary, as the tokenizers use it (defined in :mod:`spacy_luke.sources.entity_vocab`).

It lives below ``model/`` and ``tokenization/`` because both read it: the model loader for the
entity table's size and the rows ``lite`` keeps, the tokenizers for entity ids.
"""
from ...sources.entity_vocab import (
    ENTITY_VOCAB_FILES,
    MASK,
    MASK2,
    PAD,
    SPECIAL_ENTITIES,
    UNK,
    EntityVocab,
    EntityVocabError,
    find_entity_vocab_file,
    load_entity_vocab,
)

__all__ = [
    "ENTITY_VOCAB_FILES",
    "MASK",
    "MASK2",
    "PAD",
    "SPECIAL_ENTITIES",
    "UNK",
    "EntityVocab",
    "EntityVocabError",
    "find_entity_vocab_file",
    "load_entity_vocab",
]
