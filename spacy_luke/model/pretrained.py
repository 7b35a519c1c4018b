"""``from_pretrained`` / ``save_pretrained`` for every LUKE model class.

The model is built on the ``meta`` device and each checkpoint tensor is read, cast and
assigned in turn, so peak memory stays near one copy of the weights. Loading rules:

- names are mapped with ``checkpoint.HF_LUKE_KEY_RULES`` (strip ``luke.``), buffers and tied
  copies are ignored (``HF_LUKE_IGNORED``);
- ``w2e_query`` / ``e2w_query`` / ``e2e_query`` absent from the checkpoint are copied from ``query``;
- a tensor whose shape differs from the config's is an error naming the file and key, and so
  is a floating tensor holding NaN or Inf (a corrupted file, or a diverged training run);
- encoder / embedding tensors missing from the checkpoint are an error; a task head the
  checkpoint lacks (fine-tuning from a pretrained encoder) is freshly initialized and reported
  in ``model.loading_info["newly_initialized"]`` (an error with ``strict=True``);
- unexpected tensors of other LUKE heads (``lm_head``, ``classifier``, ...) are skipped; any other
  unexpected tensor is an error;
- ``lite=True`` keeps only the special entities' rows of the entity table (for tasks that only
  feed [MASK] entities), reading just those rows from the file.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from ..sources.entity_vocab import EntityVocab, find_entity_vocab_file, load_entity_vocab
from .checkpoint import CheckpointError, check_finite, encoder_layers, is_ignored, open_checkpoint, rename_key, resolve_checkpoint
from .config import ConfigError, LukeConfig
from .span_pruner import CONFIG_KEY as PRUNER_CONFIG_KEY
from .span_pruner import mark_trained

logger = logging.getLogger("spacy_luke")

# Prefixes (in our naming, without "luke.") of head tensors any LUKE checkpoint may carry.
KNOWN_HEAD_PREFIXES = ("lm_head.", "entity_predictions.", "classifier.", "qa_outputs.", "pooler.", "span_pruner.")
# Tensors whose rows follow the entity vocabulary (pruned by lite=True).
ENTITY_ROW_KEYS = ("entity_embeddings.entity_embeddings.weight", "entity_predictions.bias")
_ENTITY_AWARE_QUERY = re.compile(r"^(encoder\.layer\.\d+\.attention\.self\.)(w2e|e2w|e2e)_query\.(weight|bias)$")


def _canonical(name: str) -> str:
    return rename_key(name)


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    old = owner._parameters[leaf]
    owner._parameters[leaf] = nn.Parameter(tensor, requires_grad=old.requires_grad)


def _fresh(model: nn.Module, name: str, like: torch.Tensor, device, dtype, std: float) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    tensor = torch.empty(like.shape, device=device, dtype=dtype)
    if isinstance(owner, nn.LayerNorm) and leaf == "weight":
        nn.init.ones_(tensor)
    elif leaf == "bias" or like.dim() == 1:
        nn.init.zeros_(tensor)
    else:
        nn.init.normal_(tensor, mean=0.0, std=std)
    _assign(model, name, tensor)


def _check_vocab_sizes(folder: Path, config: LukeConfig, entity_vocab: Optional[EntityVocab]) -> None:
    if entity_vocab is not None and entity_vocab.size > config.entity_vocab_size:
        raise CheckpointError(
            f"The entity vocabulary in {folder} has ids up to {entity_vocab.size - 1}, but config.json "
            f"says entity_vocab_size={config.entity_vocab_size}. The vocabulary and the weights come from "
            "different checkpoints: use the entity_vocab.json that came with these weights."
        )
    vocab_file = folder / "vocab.json"
    if vocab_file.is_file():
        try:
            with vocab_file.open(encoding="utf8") as f:
                size = len(json.load(f))
        except json.JSONDecodeError as err:
            raise CheckpointError(
                f"{vocab_file}: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg}). The file is "
                "corrupted or truncated (an interrupted download?): download or save the checkpoint again."
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{vocab_file}: cannot be read ({err}): download or save the checkpoint again.") from None
        if size > config.vocab_size:
            raise CheckpointError(
                f"{vocab_file} has {size} word pieces, but config.json says vocab_size={config.vocab_size}. "
                "The tokenizer files and the weights come from different checkpoints."
            )


def _layer_list(layers: List[int]) -> str:
    if not layers:
        return "no encoder layers"
    if layers == list(range(layers[-1] + 1)):
        return "layer 0" if len(layers) == 1 else f"layers 0-{layers[-1]}"
    return "layers " + ", ".join(map(str, layers[:10])) + (" ..." if len(layers) > 10 else "")


def _check_layer_count(config: LukeConfig, config_source: str, tensors) -> None:
    """num_hidden_layers against the encoder layers the checkpoint's tensor names hold (names only,
    before the model is built: a wrong count never builds thousands of layers)."""
    layers = encoder_layers([key for key, _ in tensors])
    if layers == list(range(config.num_hidden_layers)):
        return
    paths = sorted({str(source.path) for _, source in tensors})
    weights = Path(paths[0]).name if len(paths) == 1 else f"its {len(paths)} weight shards"
    if layers and layers == list(range(layers[-1] + 1)):
        fix = f"set num_hidden_layers to {len(layers)}, or use the config.json and weights of one checkpoint"
    elif layers:
        fix = "the weights are incomplete (a layer is missing)"
    else:
        fix = "these are not LUKE encoder weights, or they are incomplete"
    raise ConfigError(
        f"{config_source}: num_hidden_layers is {config.num_hidden_layers} but {weights} holds {_layer_list(layers)}: "
        f"{fix} (download or save the checkpoint again)."
    )


class PretrainedMixin:
    """Adds ``from_pretrained`` and ``save_pretrained`` to a LUKE ``nn.Module``."""

    config: LukeConfig

    @classmethod
    def _adapt_config(cls, config: LukeConfig, checkpoint_keys: List[str]) -> LukeConfig:
        if cls.__name__ == "LukeForEntityPairClassification" and config.classifier_bias is None:
            config.classifier_bias = "classifier.bias" in checkpoint_keys
        return config

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, Path],
        *,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
        revision: Optional[str] = None,
        lite: bool = False,
        strict: bool = False,
        cache_dir: Optional[Union[str, Path]] = None,
        local_files_only: Optional[bool] = None,
        config: Optional[LukeConfig] = None,
        **model_kwargs,
    ):
        """Load a checkpoint from a local HF-layout folder or a hub repo id.

        ``device``/``dtype``: where and in which float type the weights end up (default CPU,
        float32). ``lite``: keep only the special entities of the entity table. ``strict``: also
        refuse a checkpoint without this class's head. ``config``: use this config instead of
        the folder's config.json (e.g. with new labels; the head is then freshly initialized
        where its shape changes).
        """
        folder = resolve_checkpoint(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        relabeled = config is not None and _labels_changed(folder, config)
        config_source = "the given config" if config is not None else str(folder / "config.json")
        config = config if config is not None else LukeConfig.from_json_file(folder / "config.json")
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = dtype or torch.float32

        entity_vocab = load_entity_vocab(folder) if find_entity_vocab_file(folder) is not None else None
        _check_vocab_sizes(folder, config, entity_vocab)
        keep_rows = None
        if lite:
            if entity_vocab is None:
                raise CheckpointError(f"lite=True needs the checkpoint's entity vocabulary, and {folder} has none.")
            entity_vocab, keep_rows = entity_vocab.lite()
            config = LukeConfig.from_dict({**config.to_dict(), "entity_vocab_size": len(keep_rows)})

        tensors = list(open_checkpoint(folder))
        _check_layer_count(config, config_source, tensors)
        config = cls._adapt_config(config, [_canonical(k) for k, _ in tensors])
        with torch.device("meta"):
            model = cls(config, **model_kwargs)
        params: Dict[str, nn.Parameter] = dict(model.named_parameters())
        by_canonical = {_canonical(name): name for name in params}
        loaded: Dict[str, str] = {}
        unexpected: List[str] = []
        for key, source in tensors:
            canonical = _canonical(key)
            if is_ignored(canonical):
                continue
            name = by_canonical.get(canonical)
            if name is None:
                unexpected.append(key)
                continue
            if relabeled and canonical.startswith("classifier."):
                unexpected.append(key)  # new labels: the head is initialized afresh below
                continue
            rows = keep_rows if keep_rows is not None and canonical in ENTITY_ROW_KEYS else None
            shape = source.shape(key)
            if rows is not None:
                shape = (len(rows),) + tuple(shape[1:])
            expected = tuple(params[name].shape)
            if tuple(shape) != expected:
                raise CheckpointError(
                    f"{source.path}: tensor {key!r} has shape {tuple(shape)}, but config.json implies {expected} "
                    f"for {cls.__name__}.{name}. The weights do not match the config (or this model class): "
                    "use the config.json that came with the weights, or the class the checkpoint was trained as."
                )
            tensor = source.get(key, rows)
            if tensor.is_floating_point():
                check_finite(tensor, key, source.path)  # as stored, before any dtype cast
                tensor = tensor.to(dtype=dtype)
            _assign(model, name, tensor.to(device))
            loaded[name] = str(source.path)

        missing = [name for name in params if name not in loaded]
        # Entity-aware queries absent from the checkpoint start as copies of `query`.
        for name in list(missing):
            match = _ENTITY_AWARE_QUERY.match(_canonical(name))
            if match:
                source_name = by_canonical.get(f"{match.group(1)}query.{match.group(3)}")
                if source_name in loaded:
                    _assign(model, name, model.get_parameter(source_name).detach().clone())
                    missing.remove(name)

        head_missing = [n for n in missing if _canonical(n).startswith(KNOWN_HEAD_PREFIXES)]
        encoder_missing = [n for n in missing if n not in head_missing]
        if encoder_missing or (strict and head_missing):
            missing_all = encoder_missing + (head_missing if strict else [])
            shown = ", ".join(missing_all[:8]) + (" ..." if len(missing_all) > 8 else "")
            raise CheckpointError(
                f"{folder}: the checkpoint lacks {len(missing_all)} tensor(s) {cls.__name__} needs: {shown}. "
                "It is not a LUKE checkpoint of this shape, or its weights file is incomplete."
            )
        ignored, unknown = [], []
        for key in unexpected:
            (ignored if _canonical(key).startswith(KNOWN_HEAD_PREFIXES) else unknown).append(key)
        if unknown or (strict and ignored):
            bad = unknown + (ignored if strict else [])
            raise CheckpointError(
                f"{folder}: unexpected tensor(s) for {cls.__name__}: {', '.join(bad[:8])}"
                f"{' ...' if len(bad) > 8 else ''}. This is not a LUKE checkpoint (or not of this architecture)."
            )
        for name in head_missing:
            _fresh(model, name, params[name], device, dtype, config.initializer_range)
        if relabeled or any(_canonical(name).startswith("span_pruner.") for name in head_missing):
            # A span pruner made afresh here (or one that learned other labels' entities) has not learned.
            mark_trained(model, False)
        if head_missing:
            logger.warning(
                "%s: %s not in the checkpoint %s; initialized afresh (train before use).",
                cls.__name__,
                ", ".join(head_missing),
                folder,
            )
        if ignored:
            logger.info("%s: skipped checkpoint tensors of other heads: %s", cls.__name__, ", ".join(ignored))
        model.loading_info = {"newly_initialized": head_missing, "skipped": ignored}
        model.checkpoint_folder = folder
        model.entity_vocab = entity_vocab
        model.eval()
        model.detect_shared_queries()
        return model

    def save_pretrained(self, folder: Union[str, Path]) -> None:
        """Write ``config.json`` and ``model.safetensors`` in the Hugging Face layout."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = self.config.to_dict()
        if getattr(self, "span_pruner", None) is None:
            data.pop(PRUNER_CONFIG_KEY, None)  # e.g. an encoder loaded from a pruned NER folder
        data["architectures"] = [type(self).__name__]
        data["model_type"] = "luke"
        LukeConfig.from_dict(data).to_json_file(folder / "config.json")
        state = {name: param.detach().contiguous().cpu() for name, param in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def keep_entity_rows(model: nn.Module, rows: List[int], entity_vocab: Optional[EntityVocab] = None) -> None:
    """Keep only ``rows`` of ``model``'s entity table (and of the entity prediction bias), in that
    order: the model then scores an entity vocabulary pruned to those rows (the tokenizer's
    ``keep_entities`` gives them). ``config.entity_vocab_size`` follows, and so does the model's
    ``entity_vocab``: ``entity_vocab`` (the pruned vocabulary itself, the tokenizer's: one object,
    never a stale copy), else None when the rows are not the ones a vocabulary of the model names."""
    index = torch.as_tensor(list(rows), dtype=torch.long)
    for name, param in list(model.named_parameters()):
        if _canonical(name) in ENTITY_ROW_KEYS:
            kept = param.detach().index_select(0, index.to(param.device)).clone()
            _assign(model, name, kept)
            owner = model.get_submodule(name.rpartition(".")[0])
            if isinstance(owner, nn.Embedding):
                owner.num_embeddings = len(index)
    model.config.entity_vocab_size = len(index)
    if entity_vocab is not None and entity_vocab.size != len(index):
        raise ValueError(f"keep_entity_rows: {len(index)} rows kept, but the entity vocabulary given has ids up to {entity_vocab.size - 1}.")
    model.entity_vocab = entity_vocab


def _labels_changed(folder: Path, config: LukeConfig) -> bool:
    try:
        original = LukeConfig.from_json_file(folder / "config.json")
    except (OSError, ValueError):
        return False
    return original.id2label != config.id2label
