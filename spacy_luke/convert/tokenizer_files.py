"""Writing a converted model's tokenizer files, so that our tokenizers and transformers' read them.

The encoder's word tokenizer files are copied; ``tokenizer.json`` is rewritten with the entity
markers as special added tokens (when their ids line up); ``added_tokens.json``,
``special_tokens_map.json`` and ``tokenizer_config.json`` record the markers, the special word
tokens and LUKE's entity settings.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from ..sources.entity_vocab import MASK, MASK2, PAD, UNK
from .encoder_families import ROBERTA_SPECIAL_TOKENS
from .weights import ENTITY_MARKERS, Conversion

logger = logging.getLogger("spacy_luke")

# Tokenizer files copied as they are (tokenizer.json is rewritten with the markers).
COPIED_TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model")


def write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)


def _tokenizer_json_with_markers(conversion: Conversion) -> Optional[str]:
    """The source tokenizer.json with the new markers as special added tokens, when their ids line up."""
    from tokenizers import AddedToken, Tokenizer

    data = conversion.source.tokenizer_json
    if data is None:
        return None
    tokenizer = Tokenizer.from_str(json.dumps(data))
    if not conversion.new_markers:
        return tokenizer.to_str(pretty=True)
    first = conversion.markers[conversion.new_markers[0]]
    if tokenizer.get_vocab_size(with_added_tokens=True) != first:
        logger.warning(
            "%s: tokenizer.json defines %d ids but the markers start at %d; the markers are recorded in "
            "added_tokens.json only (transformers' fast tokenizer on this folder will not know them).",
            conversion.source.folder, tokenizer.get_vocab_size(with_added_tokens=True), first,
        )
        return tokenizer.to_str(pretty=True)
    tokenizer.add_special_tokens([AddedToken(m, normalized=False, special=True) for m in conversion.new_markers])
    for marker in conversion.new_markers:
        if tokenizer.token_to_id(marker) != conversion.markers[marker]:
            raise AssertionError(f"tokenizer.json gave {marker} id {tokenizer.token_to_id(marker)}")
    return tokenizer.to_str(pretty=True)


def _tokenizer_class_name(conversion: Conversion, dest: Path) -> Optional[str]:
    """transformers' tokenizer class that can read the written folder (entities included where it can)."""
    if (dest / "vocab.json").is_file() and (dest / "merges.txt").is_file():
        return "LukeTokenizer"
    if (dest / "sentencepiece.bpe.model").is_file():
        return "MLukeTokenizer"
    if conversion.source.word_tokenizer == "wordpiece":
        return "BertTokenizer"  # word pieces only: transformers has no WordPiece LUKE tokenizer
    return None


def write_tokenizer_files(conversion: Conversion, dest: Path) -> None:
    """The word tokenizer files, added tokens, special tokens map and tokenizer_config.json in ``dest``."""
    source = conversion.source
    for name in COPIED_TOKENIZER_FILES:
        if (source.folder / name).is_file():
            shutil.copyfile(source.folder / name, dest / name)
    tokenizer_json = _tokenizer_json_with_markers(conversion)
    if tokenizer_json is not None:
        (dest / "tokenizer.json").write_text(tokenizer_json, encoding="utf8")
    added = dict(source.added_tokens)
    added.update(conversion.markers)
    if added:
        write_json(dest / "added_tokens.json", added)

    specials = {key: source.special_tokens[key] for key in ROBERTA_SPECIAL_TOKENS if source.special_tokens.get(key)}
    special_map: Dict[str, Any] = dict(specials)
    if conversion.markers:
        special_map["additional_special_tokens"] = list(conversion.markers)
    write_json(dest / "special_tokens_map.json", special_map)
    tokenizer_config: Dict[str, Any] = dict(specials)
    for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "do_basic_tokenize"):
        if key in source.tokenizer_config:
            tokenizer_config[key] = source.tokenizer_config[key]
    tokenizer_config.update(
        model_max_length=conversion.model_max_length,
        task=None,
        max_entity_length=32,
        max_mention_length=30,
        entity_token_1=ENTITY_MARKERS[0],
        entity_token_2=ENTITY_MARKERS[1],
        entity_pad_token=PAD,
        entity_unk_token=UNK,
        entity_mask_token=MASK,
        entity_mask2_token=MASK2,
    )
    if conversion.markers:
        tokenizer_config["additional_special_tokens"] = list(conversion.markers)
    class_name = _tokenizer_class_name(conversion, dest)
    if class_name:
        tokenizer_config["tokenizer_class"] = class_name
    write_json(dest / "tokenizer_config.json", tokenizer_config)
