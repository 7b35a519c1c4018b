"""A LUKE model that starts from a non-LUKE encoder: BERT, RoBERTa, XLM-R or DistilBERT.

This is how LUKE itself was built (from RoBERTa) and mLUKE (from XLM-R): the word encoder is
copied, and the entity side is initialized from it the way LUKE's pretraining did:

- entity-aware queries ``w2e_query`` / ``e2w_query`` / ``e2e_query`` = copies of ``query``
  (so before any training the model attends exactly like the encoder);
- the entity table's position embeddings, indexed by raw piece index ``i``, = the word
  position embedding the encoder gives piece ``i``; entity token types and LayerNorm = the
  word ones;
- the entity vocabulary holds the special entities ``[PAD]``, ``[UNK]``, ``[MASK]``,
  ``[MASK2]`` (then ``extra_entities``). With ``entity_emb_size == hidden_size`` (the default,
  no projection) ``[MASK]`` and ``[MASK2]`` start as the word embedding of the mask token
  (``[MASK]`` / ``<mask>``), as LUKE's fine-tuning code started ``[MASK2]`` as a copy of
  ``[MASK]``; ``[UNK]`` as the word embedding of the unknown token; ``[PAD]`` as zeros; extra
  entities (and everything, when a projection is needed) as N(0, initializer_range) with a
  fixed seed, so a conversion is reproducible;
- the entity markers ``<ent>`` / ``<ent2>`` (``add_entity_markers``) get two new word
  embedding rows, started as the embeddings of ``"@"`` and ``"#"`` as the LUKE paper did
  (the mean word embedding where the vocabulary lacks them), and are recorded in
  ``added_tokens.json`` (and in ``tokenizer.json`` when the ids line up) so the tokenizer
  finds them by string.

BERT numbers positions from 0, our word embeddings from ``padding_idx + 1`` (RoBERTa's
layout). The model code stays the same: for BERT and DistilBERT the position table is written
shifted, LUKE row ``pad + 1 + i`` = BERT row ``i`` (``max_position_embeddings`` grows by
``pad + 1``). RoBERTa and XLM-R already use our layout.

Checkpoint names are mapped with key-rule lists (``checkpoint.BERT_KEY_RULES``,
``checkpoint.DISTILBERT_KEY_RULES``); a family is data (:data:`ENCODER_FAMILIES`).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..tokenization.added_tokens import token_content
from ..tokenization.entity_vocab import MASK, MASK2, PAD, SPECIAL_ENTITIES, UNK
from ..tokenization.word_pieces import WordPieceModel
from .checkpoint import (
    BERT_IGNORED,
    BERT_KEY_RULES,
    DISTILBERT_IGNORED,
    DISTILBERT_KEY_RULES,
    WEIGHT_FILES,
    CheckpointError,
    is_ignored,
    open_checkpoint,
    rename_key,
)
from .config import LukeConfig

logger = logging.getLogger("spacy_luke")

ENTITY_MARKERS: Tuple[str, str] = ("<ent>", "<ent2>")
# Word pieces whose embeddings start the markers' rows (LUKE paper, relation classification).
MARKER_INIT_TOKENS: Tuple[str, str] = ("@", "#")
# Tokenizer files copied as they are (tokenizer.json is rewritten with the markers).
COPIED_TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model")
# Files a conversion writes (removed first with overwrite=True).
WRITTEN_FILES = (
    "config.json",
    "model.safetensors",
    "entity_vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
) + COPIED_TOKENIZER_FILES + WEIGHT_FILES

_BERT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
)
_BERT_DEFAULTS = dict(
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    pad_token_id=0,
    max_position_embeddings=512,
)
BERT_SPECIAL_TOKENS = dict(
    cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]"
)
ROBERTA_SPECIAL_TOKENS = dict(
    bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
    pad_token="<pad>", mask_token="<mask>", unk_token="<unk>",
)


@dataclass(frozen=True)
class EncoderFamily:
    """How to read one family of encoder checkpoints.

    Attributes:
        key_rules, ignored: checkpoint name -> our name rewrites, and names to skip.
        config_keys: LukeConfig field -> the source config.json key that gives it.
        defaults: LukeConfig values when the source config.json does not give them.
        zero_based_positions: BERT-style positions (0..n-1) that need the shifted table.
        special_tokens: the special word tokens when the tokenizer files do not name them.
    """

    key_rules: Tuple[Tuple[str, str], ...]
    ignored: Tuple[str, ...]
    config_keys: Mapping[str, str]
    defaults: Mapping[str, Any]
    zero_based_positions: bool
    special_tokens: Mapping[str, str]


_BERT = EncoderFamily(
    key_rules=BERT_KEY_RULES,
    ignored=BERT_IGNORED,
    config_keys={key: key for key in _BERT_CONFIG_KEYS},
    defaults=_BERT_DEFAULTS,
    zero_based_positions=True,
    special_tokens=BERT_SPECIAL_TOKENS,
)
_ROBERTA = EncoderFamily(
    key_rules=BERT_KEY_RULES,
    ignored=BERT_IGNORED,
    config_keys={key: key for key in _BERT_CONFIG_KEYS},
    defaults=dict(_BERT_DEFAULTS, pad_token_id=1, type_vocab_size=1, layer_norm_eps=1e-5, max_position_embeddings=514),
    zero_based_positions=False,
    special_tokens=ROBERTA_SPECIAL_TOKENS,
)
_DISTILBERT = EncoderFamily(
    key_rules=DISTILBERT_KEY_RULES,
    ignored=DISTILBERT_IGNORED,
    config_keys=dict(
        vocab_size="vocab_size",
        hidden_size="dim",
        num_hidden_layers="n_layers",
        num_attention_heads="n_heads",
        intermediate_size="hidden_dim",
        max_position_embeddings="max_position_embeddings",
        hidden_act="activation",
        hidden_dropout_prob="dropout",
        attention_probs_dropout_prob="attention_dropout",
        initializer_range="initializer_range",
        pad_token_id="pad_token_id",
    ),
    defaults=dict(_BERT_DEFAULTS, type_vocab_size=1, layer_norm_eps=1e-12),
    zero_based_positions=True,
    special_tokens=BERT_SPECIAL_TOKENS,
)
#: config.json ``model_type`` -> how to read that encoder.
ENCODER_FAMILIES: Dict[str, EncoderFamily] = {
    "bert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "distilbert": _DISTILBERT,
}

_SPECIAL_IDS = ("cls_token", "sep_token", "mask_token", "unk_token")
_ENTITY_AWARE_QUERY = re.compile(r"\.(w2e|e2w|e2e)_query\.(weight|bias)$")
# The MLM head LukeForMaskedLM takes from the encoder, with its shapes.
_LM_HEAD_SHAPES = {
    "lm_head.dense.weight": ("hidden", "hidden"),
    "lm_head.dense.bias": ("hidden",),
    "lm_head.layer_norm.weight": ("hidden",),
    "lm_head.layer_norm.bias": ("hidden",),
    "lm_head.bias": ("vocab",),
}


def special_entity_vocab(extra_entities: Sequence[str] = ()) -> Dict[str, int]:
    """``{"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}`` then ``extra_entities`` in order."""
    vocab = {name: i for i, name in enumerate(SPECIAL_ENTITIES)}
    for title in extra_entities:
        if not isinstance(title, str) or not title:
            raise ValueError(f"extra_entities must be non-empty strings; got {title!r}.")
        if title in vocab:
            raise ValueError(f"extra_entities repeats {title!r} (or names a special entity); give each title once.")
        vocab[title] = len(vocab)
    return vocab


# ---------------------------------------------------------------------------------- source


@dataclass
class _Source:
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


def _read_json(path: Path) -> Dict[str, Any]:
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


def _read_source(folder: Union[str, Path]) -> _Source:
    from ..tokenization.bpe import ByteLevelBPE
    from ..tokenization.sentencepiece_bpe import SentencePieceBPE
    from ..tokenization.tokenizer_json import TokenizerJsonPieces

    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a checkpoint folder (config.json, weights, tokenizer files).")
    config = _read_json(folder / "config.json")
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
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    special_map = _read_json(folder / "special_tokens_map.json")
    specials: Dict[str, Any] = dict(family.special_tokens)
    for key in list(ROBERTA_SPECIAL_TOKENS):
        value = special_map.get(key, tokenizer_config.get(key))
        if value is not None:
            specials[key] = token_content(value)
    # Our tokenizers always define bos / eos; BERT has none: use [CLS] / [SEP].
    specials.setdefault("bos_token", specials["cls_token"])
    specials.setdefault("eos_token", specials["sep_token"])
    added_tokens = {str(k): int(v) for k, v in _read_json(folder / "added_tokens.json").items()}

    tokenizer_json: Optional[Dict[str, Any]] = None
    if (folder / "tokenizer.json").is_file():
        tokenizer_json = _read_json(folder / "tokenizer.json")
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
    return _Source(
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


def _source_value(source: _Source, field: str) -> Any:
    key = source.family.config_keys.get(field)
    if key is not None and source.config.get(key) is not None:
        return source.config[key]
    if field in source.family.defaults:
        return source.family.defaults[field]
    raise ValueError(f"{source.folder}/config.json lacks {key or field!r}, which the conversion needs.")


def _token_id(word_pieces: WordPieceModel, token: Optional[str]) -> Optional[int]:
    return None if token is None else word_pieces.token_to_id(token)


# ---------------------------------------------------------------------------------- conversion


@dataclass
class _Conversion:
    source: _Source
    config: LukeConfig
    state: Dict[str, torch.Tensor]
    entity_vocab: Dict[str, int]
    markers: Dict[str, int]  # marker string -> word id
    new_markers: List[str]  # markers that got new embedding rows
    model_max_length: int


def _convert(
    src_folder: Union[str, Path],
    *,
    entity_emb_size: Optional[int],
    extra_entities: Sequence[str],
    add_entity_markers: bool,
    seed: int,
) -> _Conversion:
    from .luke import LukeModel

    source = _read_source(src_folder)
    family, word_pieces, specials = source.family, source.word_pieces, source.special_tokens
    value = lambda field: _source_value(source, field)  # noqa: E731

    # -- source tensors, in our names
    tensors: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    for key, tensor_source in open_checkpoint(source.folder):
        name = rename_key(key, family.key_rules)
        if is_ignored(name, family.ignored):
            continue
        if name in tensors:
            raise CheckpointError(f"{source.folder}: tensors {origin[name]!r} and {key!r} both map to {name!r}.")
        tensors[name] = tensor_source.get(key)
        origin[name] = key
    word = tensors.get("embeddings.word_embeddings.weight")
    positions = tensors.get("embeddings.position_embeddings.weight")
    if word is None or positions is None:
        raise CheckpointError(
            f"{source.folder}: no word / position embeddings found (expected e.g. "
            "'embeddings.word_embeddings.weight'); is this a complete encoder checkpoint?"
        )
    dtype = word.dtype
    hidden = int(value("hidden_size"))
    src_vocab = int(word.shape[0])
    if src_vocab != int(value("vocab_size")):
        raise CheckpointError(
            f"{source.folder}: the word embedding table has {src_vocab} rows but config.json says "
            f"vocab_size={value('vocab_size')}."
        )

    # -- special ids from the tokenizer
    pad_id = _token_id(word_pieces, specials.get("pad_token"))
    if pad_id is None:
        pad_id = int(value("pad_token_id"))
    if not family.zero_based_positions and pad_id != int(value("pad_token_id")):
        raise ValueError(
            f"{source.folder}: the tokenizer's pad token has id {pad_id} but config.json says pad_token_id="
            f"{value('pad_token_id')}; RoBERTa-style positions depend on it. The tokenizer and weights disagree."
        )
    ids = {key: _token_id(word_pieces, specials.get(key)) for key in _SPECIAL_IDS}
    for key in ("cls_token", "sep_token"):
        if ids[key] is None:
            raise ValueError(f"{source.folder}: the tokenizer has no {key} {specials.get(key)!r}.")
    tokenizer_size = max(word_pieces.vocab_size, max(source.added_tokens.values(), default=-1) + 1)
    if tokenizer_size > src_vocab:
        raise ValueError(
            f"{source.folder}: the tokenizer has {tokenizer_size} pieces but the model only {src_vocab} word "
            "embeddings; the tokenizer files and the weights do not belong together."
        )

    # -- word embeddings + marker rows
    markers: Dict[str, int] = {}
    new_markers: List[str] = []
    new_rows: List[torch.Tensor] = []
    if add_entity_markers:
        mean = word.float().mean(dim=0)
        for marker, init_token in zip(ENTITY_MARKERS, MARKER_INIT_TOKENS):
            existing = source.added_tokens.get(marker, word_pieces.token_to_id(marker))
            if existing is not None:
                markers[marker] = int(existing)
                continue
            init_id = word_pieces.token_to_id(init_token)
            new_rows.append(word[init_id].float() if init_id is not None else mean)
            markers[marker] = src_vocab + len(new_markers)
            new_markers.append(marker)
            if init_id is None:
                logger.info("%s: no %r piece; %s starts as the mean word embedding.", source.folder, init_token, marker)
    if new_rows:
        word = torch.cat([word, torch.stack(new_rows).to(dtype)])
    vocab_size = int(word.shape[0])

    # -- positions: our layout counts from pad + 1
    src_positions = int(positions.shape[0])
    if family.zero_based_positions:
        shifted = torch.zeros(pad_id + 1 + src_positions, hidden, dtype=positions.dtype)
        shifted[pad_id + 1 :] = positions
        positions = shifted
    max_positions = int(positions.shape[0])
    usable = max_positions - pad_id - 1
    if usable <= 0:
        raise ValueError(
            f"{source.folder}: {src_positions} positions leave none after the padding offset {pad_id + 1}."
        )

    entity_vocab = special_entity_vocab(extra_entities)
    emb_size = hidden if entity_emb_size is None else int(entity_emb_size)
    if emb_size <= 0:
        raise ValueError(f"entity_emb_size must be a positive integer, got {entity_emb_size!r}.")
    token_types = tensors.get("embeddings.token_type_embeddings.weight")
    if token_types is None:  # DistilBERT: no token types; one all-zero type keeps the sums unchanged
        token_types = torch.zeros(1, hidden, dtype=dtype)
    config = LukeConfig.from_dict(
        dict(
            vocab_size=vocab_size,
            entity_vocab_size=len(entity_vocab),
            hidden_size=hidden,
            num_hidden_layers=int(value("num_hidden_layers")),
            num_attention_heads=int(value("num_attention_heads")),
            intermediate_size=int(value("intermediate_size")),
            max_position_embeddings=max_positions,
            entity_emb_size=emb_size,
            hidden_act=str(value("hidden_act")),
            hidden_dropout_prob=float(value("hidden_dropout_prob")),
            attention_probs_dropout_prob=float(value("attention_probs_dropout_prob")),
            type_vocab_size=int(token_types.shape[0]),
            initializer_range=float(value("initializer_range")),
            layer_norm_eps=float(value("layer_norm_eps")),
            use_entity_aware_attention=True,
            pad_token_id=pad_id,
            bos_token_id=ids["cls_token"],
            eos_token_id=ids["sep_token"],
            tie_word_embeddings=True,
            architectures=["LukeModel"],
            model_type="luke",
            converted_from=source.model_type,
            source_name_or_path=str(source.config.get("_name_or_path") or source.folder.name),
            source_max_position_embeddings=src_positions,
            word_tokenizer=source.word_tokenizer,
            entity_markers=dict(markers),
        )
    )

    # -- assemble our state dict
    state: Dict[str, torch.Tensor] = {}
    used = set()

    def take(name: str) -> torch.Tensor:
        used.add(name)
        return tensors[name]

    state["embeddings.word_embeddings.weight"] = word
    state["embeddings.position_embeddings.weight"] = positions
    state["embeddings.token_type_embeddings.weight"] = token_types
    used.update(state)
    with torch.device("meta"):
        reference = LukeModel(config)
    expected = {name: tuple(p.shape) for name, p in reference.named_parameters()}
    missing: List[str] = []
    for name in expected:
        if name.startswith("entity_embeddings.") or name in state:
            continue
        if _ENTITY_AWARE_QUERY.search(name):
            continue
        if name in tensors:
            state[name] = take(name)
        elif not name.startswith("pooler."):
            missing.append(name)
    if missing:
        raise CheckpointError(
            f"{source.folder}: the encoder checkpoint lacks {len(missing)} tensor(s): {', '.join(missing[:8])}"
            f"{' ...' if len(missing) > 8 else ''}. It is incomplete, or not a {source.model_type} encoder."
        )
    pooler = [n for n in expected if n.startswith("pooler.")]
    if not all(n in state for n in pooler):
        for n in pooler:
            state.pop(n, None)
        logger.info("%s has no pooler; LUKE models that need one initialize it afresh.", source.folder)
    for layer in range(config.num_hidden_layers):
        prefix = f"encoder.layer.{layer}.attention.self."
        for kind in ("w2e", "e2w", "e2e"):
            for leaf in ("weight", "bias"):
                state[f"{prefix}{kind}_query.{leaf}"] = state[f"{prefix}query.{leaf}"].clone()

    # entity side
    gen = torch.Generator().manual_seed(seed)
    std = config.initializer_range
    entities = torch.randn(len(entity_vocab), emb_size, generator=gen) * std
    entities[entity_vocab[PAD]] = 0.0
    if emb_size == hidden:
        if ids["unk_token"] is not None:
            entities[entity_vocab[UNK]] = word[ids["unk_token"]].float()
        if ids["mask_token"] is not None:
            entities[entity_vocab[MASK]] = word[ids["mask_token"]].float()
            entities[entity_vocab[MASK2]] = word[ids["mask_token"]].float()
        else:
            entities[entity_vocab[MASK2]] = entities[entity_vocab[MASK]]
    else:
        entities[entity_vocab[MASK2]] = entities[entity_vocab[MASK]]
        dense = torch.randn(hidden, emb_size, generator=gen) * std
        state["entity_embeddings.entity_embedding_dense.weight"] = dense.to(dtype)
    state["entity_embeddings.entity_embeddings.weight"] = entities.to(dtype)
    entity_positions = torch.zeros(max_positions, hidden, dtype=positions.dtype)
    entity_positions[:usable] = positions[pad_id + 1 : pad_id + 1 + usable]
    state["entity_embeddings.position_embeddings.weight"] = entity_positions
    state["entity_embeddings.token_type_embeddings.weight"] = token_types.clone()
    state["entity_embeddings.LayerNorm.weight"] = state["embeddings.LayerNorm.weight"].clone()
    state["entity_embeddings.LayerNorm.bias"] = state["embeddings.LayerNorm.bias"].clone()

    # the encoder's MLM head becomes LukeForMaskedLM's word head (markers get a zero bias)
    head = tuple(_LM_HEAD_SHAPES)
    if all(n in tensors for n in head):
        for n in head:
            state[n] = take(n)
        bias = state["lm_head.bias"]
        state["lm_head.bias"] = torch.cat([bias, bias.new_zeros(vocab_size - bias.shape[0])])
        sizes = {"hidden": hidden, "vocab": vocab_size}
        expected.update({n: tuple(sizes[d] for d in dims) for n, dims in _LM_HEAD_SHAPES.items()})
    else:
        used.update(n for n in head if n in tensors)

    unexpected = sorted(origin[n] for n in tensors if n not in used)
    if unexpected:
        raise CheckpointError(
            f"{source.folder}: tensor(s) with no place in a LUKE model: {', '.join(unexpected[:8])}"
            f"{' ...' if len(unexpected) > 8 else ''}. This {source.model_type} checkpoint has parts LUKE does not "
            "have; convert the plain encoder."
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != expected[name]:
            raise CheckpointError(
                f"{source.folder}: tensor {origin.get(name, name)!r} has shape {tuple(tensor.shape)}, but config.json "
                f"implies {expected[name]}."
            )
    state = {name: tensor.contiguous() for name, tensor in state.items()}

    limit = source.tokenizer_config.get("model_max_length")
    model_max_length = usable if not isinstance(limit, int) or limit <= 0 else min(limit, usable)
    return _Conversion(source, config, state, entity_vocab, markers, new_markers, model_max_length)


def encoder_to_luke(
    src_folder: Union[str, Path],
    *,
    entity_emb_size: Optional[int] = None,
    extra_entities: Sequence[str] = (),
    add_entity_markers: bool = True,
    seed: int = 0,
) -> Tuple[LukeConfig, Dict[str, torch.Tensor]]:
    """The LukeConfig and state dict (our names) of a LUKE model started from an encoder.

    ``src_folder``: a local BERT / RoBERTa / XLM-R / DistilBERT checkpoint folder (config.json,
    weights, tokenizer files). The entity vocabulary is :func:`special_entity_vocab`
    ``(extra_entities)``; the marker ids are in ``config.extra["entity_markers"]``. Load the
    state into any LUKE class with ``load_state_dict(state, strict=False)`` (task heads and, for
    DistilBERT, the pooler are not in it), or write a folder with :func:`convert_encoder_to_luke`.
    """
    conversion = _convert(
        src_folder, entity_emb_size=entity_emb_size, extra_entities=extra_entities,
        add_entity_markers=add_entity_markers, seed=seed,
    )
    return conversion.config, conversion.state


# ---------------------------------------------------------------------------------- writing


def _tokenizer_json_with_markers(conversion: _Conversion) -> Optional[str]:
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


def _tokenizer_class_name(conversion: _Conversion, dest: Path) -> Optional[str]:
    """transformers' tokenizer class that can read the written folder (entities included where it can)."""
    if (dest / "vocab.json").is_file() and (dest / "merges.txt").is_file():
        return "LukeTokenizer"
    if (dest / "sentencepiece.bpe.model").is_file():
        return "MLukeTokenizer"
    if conversion.source.word_tokenizer == "wordpiece":
        return "BertTokenizer"  # word pieces only: transformers has no WordPiece LUKE tokenizer
    return None


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)


def convert_encoder_to_luke(
    src_folder: Union[str, Path],
    dest_folder: Union[str, Path],
    *,
    entity_emb_size: Optional[int] = None,
    extra_entities: Sequence[str] = (),
    add_entity_markers: bool = True,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a LUKE checkpoint folder started from a BERT / RoBERTa / XLM-R / DistilBERT encoder.

    Args:
        src_folder: the encoder's local checkpoint folder (config.json with ``model_type``,
            safetensors or .bin weights, tokenizer files).
        dest_folder: where to write the LUKE folder (config.json, model.safetensors,
            entity_vocab.json, the word tokenizer files, tokenizer_config.json,
            special_tokens_map.json, added_tokens.json).
        entity_emb_size: size of the entity embeddings; default ``hidden_size`` (no projection).
        extra_entities: entity titles after the four special entities (randomly initialized).
        add_entity_markers: add ``<ent>`` / ``<ent2>`` word tokens (for entity / relation
            classification with markers).
        seed: seed of the random initializations (extra entities, projection).
        overwrite: allow a non-empty ``dest_folder`` (the files a conversion writes are replaced).

    Returns the destination folder: ``LukeForEntitySpanClassification.from_pretrained(dest)``
    and ``spacy_luke.tokenization.load_tokenizer(dest)`` load it.
    """
    src = Path(src_folder)
    dest = Path(dest_folder)
    if dest.exists() and src.exists() and dest.resolve() == src.resolve():
        raise ValueError("dest_folder is the source folder; write the LUKE checkpoint to a new folder.")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dest} is not empty; pass overwrite=True to replace a previous conversion.")
        for name in WRITTEN_FILES:
            if (dest / name).is_file():
                (dest / name).unlink()
    conversion = _convert(
        src, entity_emb_size=entity_emb_size, extra_entities=extra_entities,
        add_entity_markers=add_entity_markers, seed=seed,
    )
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    conversion.config.to_json_file(dest / "config.json")
    save_file(conversion.state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    _write_json(dest / "entity_vocab.json", conversion.entity_vocab)

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
        _write_json(dest / "added_tokens.json", added)

    specials = {key: source.special_tokens[key] for key in ROBERTA_SPECIAL_TOKENS if source.special_tokens.get(key)}
    special_map: Dict[str, Any] = dict(specials)
    if conversion.markers:
        special_map["additional_special_tokens"] = list(conversion.markers)
    _write_json(dest / "special_tokens_map.json", special_map)
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
    _write_json(dest / "tokenizer_config.json", tokenizer_config)
    logger.info("Wrote a LUKE checkpoint started from %s (%s) to %s.", src, source.model_type, dest)
    return dest
