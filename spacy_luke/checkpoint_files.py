"""The file names of a Hugging Face-layout LUKE checkpoint folder besides config.json and weights.

Data only (no imports from the subpackages), shared by ``model/`` (what a hub download fetches),
``tokenization/`` (what a tokenizer reads) and ``pipeline/`` (what a saved pipe copies).
"""
from .entity_vocab import ENTITY_VOCAB_FILES

# The word tokenizer's files, then the entity vocabulary's (any of its three formats).
TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "tokenizer.json",
) + ENTITY_VOCAB_FILES
