"""The LUKE config and state dict of a model started from an encoder (see :mod:`spacy_luke.convert`)."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..sources.entity_vocab import MASK, MASK2, PAD, SPECIAL_ENTITIES, UNK
from ..model.checkpoint import CheckpointError, is_ignored, open_checkpoint, rename_key
from ..model.config import LukeConfig
from ..tokenization.subwords.word_pieces import WordPieceModel
from .source import EncoderSource, read_encoder_source, source_value

logger = logging.getLogger("spacy_luke")

ENTITY_MARKERS: Tuple[str, str] = ("<ent>", "<ent2>")
# Word pieces whose embeddings start the markers' rows (LUKE paper, relation classification).
MARKER_INIT_TOKENS: Tuple[str, str] = ("@", "#")
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


def _token_id(word_pieces: WordPieceModel, token: Optional[str]) -> Optional[int]:
    return None if token is None else word_pieces.token_to_id(token)


@dataclass
class Conversion:
    """A converted encoder: the LUKE config and state dict, and what the folder writer needs."""

    source: EncoderSource
    config: LukeConfig
    state: Dict[str, torch.Tensor]
    entity_vocab: Dict[str, int]
    markers: Dict[str, int]  # marker string -> word id
    new_markers: List[str]  # markers that got new embedding rows
    model_max_length: int


def convert_encoder(
    src_folder: Union[str, Path],
    *,
    entity_emb_size: Optional[int],
    extra_entities: Sequence[str],
    add_entity_markers: bool,
    seed: int,
) -> Conversion:
    """Read the encoder in ``src_folder`` and build the LUKE weights (see :mod:`spacy_luke.convert`)."""
    from ..model.luke import LukeModel

    source = read_encoder_source(src_folder)
    family, word_pieces, specials = source.family, source.word_pieces, source.special_tokens
    value = lambda field: source_value(source, field)  # noqa: E731

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
    return Conversion(source, config, state, entity_vocab, markers, new_markers, model_max_length)


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
    conversion = convert_encoder(
        src_folder, entity_emb_size=entity_emb_size, extra_entities=extra_entities,
        add_entity_markers=add_entity_markers, seed=seed,
    )
    return conversion.config, conversion.state
