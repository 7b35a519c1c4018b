"""The file names of checkpoints and saved pipelines: data only.

Shared by ``model/`` (what a hub download fetches), ``tokenization/`` (what a tokenizer reads),
``pipeline/`` (what a saved pipe copies) and :mod:`.names` (what a folder is).
"""
from .entity_vocab import ENTITY_VOCAB_FILES

#: A Hugging Face-layout checkpoint's config (LUKE, or an encoder to convert).
CONFIG_FILE = "config.json"
#: A saved spaCy pipeline's config (``nlp.to_disk``).
PIPELINE_CONFIG = "config.cfg"
#: The folder in a saved LUKE pipe's folder that holds its LUKE checkpoint.
PIPE_MODEL_DIR = "luke"

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
