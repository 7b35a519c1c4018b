"""The transformers-compatible tokenizers: ``LukeTokenizer``, ``MLukeTokenizer`` and the rest.

Built on :mod:`..subwords` (word pieces, added tokens, tokenizer files); imports nothing from
:mod:`..doc_inputs`.

- :mod:`.luke_tokenizer`: one class per word-piece model, and :func:`load_tokenizer` picking one;
- :mod:`.entity_tokenizer`: :class:`EntityAwareTokenizer`, what they share (settings, special
  tokens, entity ids, text cut at spans, ``from_pretrained``);
- :mod:`.transformers_call`: its ``__call__`` (batching, special tokens, truncation, padding);
- :mod:`.task_examples`: one example laid out for its task (the task names live here);
- :mod:`.encoding`: :class:`LukeEncoding` and transformers' padding / truncation / tensor rules;
- :mod:`.markers`: ``<ent>`` / ``<ent2>`` around spans (the Doc encoder uses the same rule);
- :mod:`.entity_vocab`: the entity vocabulary, as the tokenizers use it.
"""
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
from .task_examples import TASKS

__all__ = [
    "EntityAwareTokenizer",
    "EntityVocab",
    "LukeEncoding",
    "LukeTokenizer",
    "MLukeTokenizer",
    "TASKS",
    "TokenizerJsonLukeTokenizer",
    "load_entity_vocab",
    "load_tokenizer",
    "tokenizer_class_for",
]
