"""Reading an encoder checkpoint folder: its config, family, word tokenizer and special tokens."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..tokenization.subwords.added_tokens import token_content
from ..tokenization.subwords.word_pieces import WordPieceModel
from .encoder_families import BERT_SPECIAL_TOKENS, ENCODER_FAMILIES, ROBERTA_SPECIAL_TOKENS, EncoderFamily


@dataclass
class EncoderSource:
    """What the conversion reads from an encoder's folder (:func:`read_encoder_source`)."""

    folder: Path
    model_type: str
    family: EncoderFamily
    config: Dict[str, Any]
    word_pieces: WordPieceModel
    word_tokenizer: str
    tokenizer_json: Optional[Dict[str, Any]]  # tokenizer.json content (read, or built from vocab.txt)
    special_tokens: Dict[str, Any]
    tokenizer_config: Dict[str, Any]
    added_tokens: Dict[str, int]


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        with path.open(encoding="utf8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object.")
    return data


def _wordpiece_json_from_vocab(folder: Path, tokenizer_config: Dict[str, Any]) -> Dict[str, Any]:
    """A BERT tokenizer.json built from ``vocab.txt`` and the tokenizer_config.json flags."""
    from tokenizers import BertWordPieceTokenizer

    lowercase = bool(tokenizer_config.get("do_lower_case", True))
    tokenizer = BertWordPieceTokenizer(
        str(folder / "vocab.txt"),
        lowercase=lowercase,
        strip_accents=tokenizer_config.get("strip_accents"),
        handle_chinese_chars=bool(tokenizer_config.get("tokenize_chinese_chars", True)),
        unk_token=token_content(tokenizer_config.get("unk_token")) or "[UNK]",
    )
    return json.loads(tokenizer.to_str())


def read_encoder_source(folder: Union[str, Path]) -> EncoderSource:
    """The encoder checkpoint in ``folder``: a clear error when it is not one a LUKE model can start from."""
    from ..tokenization.subwords.byte_level_bpe import ByteLevelBPE
    from ..tokenization.subwords.sentencepiece_bpe import SentencePieceBPE
    from ..tokenization.subwords.tokenizer_json import TokenizerJsonPieces

    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a checkpoint folder (config.json, weights, tokenizer files).")
    config = read_json(folder / "config.json")
    if not config:
        raise FileNotFoundError(f"No config.json in {folder}: the encoder checkpoint folder needs one.")
    model_type = str(config.get("model_type", ""))
    if model_type == "luke":
        raise ValueError(f"{folder} is already a LUKE checkpoint: load it with from_pretrained, no conversion needed.")
    family = ENCODER_FAMILIES.get(model_type)
    if family is None:
        raise ValueError(
            f"{folder}/config.json has model_type={model_type!r}; a LUKE model can start from "
            f"{sorted(ENCODER_FAMILIES)} encoders."
        )
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(
            f"{folder}: position_embedding_type={position_type!r}; LUKE needs absolute position embeddings."
        )
    tokenizer_config = read_json(folder / "tokenizer_config.json")
    special_map = read_json(folder / "special_tokens_map.json")
    specials: Dict[str, Any] = dict(family.special_tokens)
    for key in list(ROBERTA_SPECIAL_TOKENS):
        value = special_map.get(key, tokenizer_config.get(key))
        if value is not None:
            specials[key] = token_content(value)
    # Our tokenizers always define bos / eos; BERT has none: use [CLS] / [SEP].
    specials.setdefault("bos_token", specials["cls_token"])
    specials.setdefault("eos_token", specials["sep_token"])
    added_tokens = {str(k): int(v) for k, v in read_json(folder / "added_tokens.json").items()}

    tokenizer_json: Optional[Dict[str, Any]] = None
    if (folder / "tokenizer.json").is_file():
        tokenizer_json = read_json(folder / "tokenizer.json")
    elif (folder / "vocab.txt").is_file() and family.special_tokens is BERT_SPECIAL_TOKENS:
        tokenizer_json = _wordpiece_json_from_vocab(folder, tokenizer_config)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        word_pieces: WordPieceModel = ByteLevelBPE(
            folder / "vocab.json", folder / "merges.txt", unk_token=specials["unk_token"]
        )
        word_tokenizer = "byte_level_bpe"
    elif (folder / "sentencepiece.bpe.model").is_file():
        word_pieces = SentencePieceBPE(folder / "sentencepiece.bpe.model")
        word_tokenizer = "sentencepiece_bpe"
    elif tokenizer_json is not None:
        word_pieces = TokenizerJsonPieces(tokenizer_json)
        word_tokenizer = word_pieces.model_type.lower() or "tokenizer_json"
    else:
        present = sorted(p.name for p in folder.iterdir())
        raise FileNotFoundError(
            f"{folder} has no word tokenizer: expected tokenizer.json, vocab.txt (BERT), vocab.json + merges.txt "
            f"(RoBERTa) or sentencepiece.bpe.model (XLM-R); it holds {present}."
        )
    return EncoderSource(
        folder=folder,
        model_type=model_type,
        family=family,
        config=config,
        word_pieces=word_pieces,
        word_tokenizer=word_tokenizer,
        tokenizer_json=tokenizer_json,
        special_tokens=specials,
        tokenizer_config=tokenizer_config,
        added_tokens=added_tokens,
    )


def source_value(source: EncoderSource, field: str) -> Any:
    """The LukeConfig ``field`` from the source config.json (its family's key), or the family default."""
    key = source.family.config_keys.get(field)
    if key is not None and source.config.get(key) is not None:
        return source.config[key]
    if field in source.family.defaults:
        return source.family.defaults[field]
    raise ValueError(f"{source.folder}/config.json lacks {key or field!r}, which the conversion needs.")
