"""Finding and reading Hugging Face-layout checkpoints: local folders or hub repos.

A checkpoint folder holds ``config.json`` and weights as ``model.safetensors`` (preferred),
``pytorch_model.bin``, or either sharded with a ``*.index.json``. Tensors are read one at a
time (safetensors: straight from the file; .bin: memory-mapped, ``weights_only=True``) so that
loading never holds two copies of the weights.

The mapping from checkpoint names to ours is data (``HF_LUKE_KEY_RULES``): regex rewrites
applied in order, plus patterns of keys that are ignored.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "entity_vocab.json",
    "entity_vocab.tsv",
    "entity_vocab.jsonl",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "tokenizer.json",
)

# (pattern, replacement) rewrites from a Hugging Face LUKE checkpoint name to our name.
# Our module tree mirrors transformers' names below the `luke.` prefix, so the base-model
# keys only lose that prefix; old TF-style LayerNorm names are renamed.
HF_LUKE_KEY_RULES: Tuple[Tuple[str, str], ...] = (
    (r"^luke\.", ""),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
)
# Checkpoint keys that carry nothing we need (buffers, tied copies).
HF_LUKE_IGNORED: Tuple[str, ...] = (
    r"(^|\.)position_ids$",
    r"^lm_head\.decoder\.(weight|bias)$",
    r"^entity_predictions\.decoder\.weight$",
)


def rename_key(key: str, rules: Sequence[Tuple[str, str]] = HF_LUKE_KEY_RULES) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def is_ignored(key: str, patterns: Sequence[str] = HF_LUKE_IGNORED) -> bool:
    return any(re.search(p, key) for p in patterns)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: the message names the file and the fix."""


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(name: str) -> bool:
    """A name that cannot be a hub repo id (``org/name``) is a local path."""
    return not _REPO_ID.match(name) or ".." in name


def resolve_checkpoint(
    name_or_path: Union[str, Path],
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    weights: bool = True,
) -> Path:
    """A local folder holding the checkpoint: ``name_or_path`` itself, or the hub snapshot.

    Hub downloads go through ``huggingface_hub``, which honours ``HF_HUB_OFFLINE`` and the
    local cache (``HF_HOME`` / ``cache_dir``).
    """
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(
            f"{path} is a file; pass the checkpoint *folder* (with config.json and the weights)."
        )
    name = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise FileNotFoundError(f"Checkpoint folder not found: {path}")
    return _download(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, weights=weights)


def _download(repo_id, *, revision, cache_dir, local_files_only, weights) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:  # older huggingface_hub
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    offline = local_files_only or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")

    def get(filename: str) -> Optional[Path]:
        try:
            return Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    revision=revision,
                    cache_dir=cache_dir,
                    local_files_only=bool(local_files_only),
                )
            )
        except LocalEntryNotFoundError:
            return None
        except EntryNotFoundError:
            return None

    try:
        config = get("config.json")
    except Exception as err:  # network errors, unknown repo, bad revision, auth
        raise OSError(
            f"Could not download {repo_id!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Check the repo id and revision, your network, or pass a local checkpoint folder instead."
        ) from None
    if config is None:
        if offline:
            raise OSError(
                f"{repo_id!r} is not in the local Hugging Face cache and the hub is offline "
                "(HF_HUB_OFFLINE=1 or local_files_only). Download it once with network access, "
                "or pass a local checkpoint folder."
            )
        raise OSError(
            f"{repo_id!r} could not be fetched (no config.json found, or no network). "
            "Check the repo id, or pass a local checkpoint folder."
        )
    folder = config.parent
    if weights:
        found = False
        for filename in (WEIGHT_FILES[0], INDEX_FILES[0], WEIGHT_FILES[1], INDEX_FILES[1]):
            got = get(filename)
            if got is None:
                continue
            if filename.endswith(".index.json"):
                for shard in sorted(set(_read_index(got).values())):
                    if get(shard) is None:
                        raise OSError(f"{repo_id!r}: could not fetch weight shard {shard} (offline or missing).")
            found = True
            break
        if not found:
            raise OSError(
                f"{repo_id!r} has no weights in the {'local cache' if offline else 'hub repo'} "
                f"(looked for {list(INDEX_FILES + WEIGHT_FILES)})."
            )
    for filename in TOKENIZER_FILES:
        get(filename)
    return folder


def _read_index(path: Path) -> Dict[str, str]:
    try:
        with path.open(encoding="utf8") as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid weights index file ({err}).") from None
    return dict(weight_map)


def find_weight_files(folder: Path) -> List[Path]:
    """The weight files of a checkpoint folder, safetensors first, shards in index order."""
    folder = Path(folder)
    for index, single in zip(INDEX_FILES, WEIGHT_FILES):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            shards = sorted(set(_read_index(folder / index).values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(f"{folder / index} lists shards that are missing from {folder}: {missing}.")
            return [folder / s for s in shards]
    raise CheckpointError(
        f"No weights in {folder}: expected one of {list(WEIGHT_FILES + INDEX_FILES)}. "
        "Save the model with save_pretrained, or download the whole checkpoint folder."
    )


class TensorSource:
    """Lazy access to the tensors of one weights file: names, shapes, and one tensor at a time."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._safe = None
        self._state: Optional[Dict[str, torch.Tensor]] = None
        try:
            if self.path.suffix == ".safetensors":
                from safetensors import safe_open

                self._safe = safe_open(str(self.path), framework="pt", device="cpu")
            else:
                try:
                    self._state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError as err:
                    if "mmap" not in str(err):
                        raise
                    self._state = torch.load(self.path, map_location="cpu", weights_only=True)
                if not isinstance(self._state, dict):
                    raise CheckpointError(f"{self.path} does not hold a state dict (got {type(self._state).__name__}).")
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(
                f"Could not read weights file {self.path} ({type(err).__name__}: {err}). "
                "The file is corrupted or truncated (an interrupted download?): download or save it again."
            ) from None

    def keys(self) -> List[str]:
        return list(self._safe.keys()) if self._safe is not None else list(self._state.keys())

    def shape(self, key: str) -> Tuple[int, ...]:
        if self._safe is not None:
            return tuple(self._safe.get_slice(key).get_shape())
        return tuple(self._state[key].shape)

    def get(self, key: str, rows: Optional[Sequence[int]] = None) -> torch.Tensor:
        """The tensor ``key``; with ``rows``, only those rows (without reading the rest)."""
        try:
            if self._safe is not None:
                if rows is None:
                    return self._safe.get_tensor(key)
                sl = self._safe.get_slice(key)
                return torch.stack([sl[r : r + 1][0] for r in rows])
            tensor = self._state[key]
            return tensor if rows is None else tensor[list(rows)].clone()
        except Exception as err:
            raise CheckpointError(
                f"Could not read tensor {key!r} from {self.path} ({type(err).__name__}: {err}). "
                "The file is corrupted or truncated: download or save it again."
            ) from None


def open_checkpoint(folder: Path) -> Iterator[Tuple[str, TensorSource]]:
    """(checkpoint key, source) for every tensor of the checkpoint in ``folder``."""
    for path in find_weight_files(folder):
        source = TensorSource(path)
        for key in source.keys():
            yield key, source
