"""Finding and reading Hugging Face-layout checkpoints: local folders or hub repos.

A checkpoint folder holds ``config.json`` and weights as ``model.safetensors`` (preferred),
``pytorch_model.bin``, or either sharded with a ``*.index.json``. Tensors are read one at a
time (safetensors: straight from the file; .bin: memory-mapped, ``weights_only=True``) so that
loading never holds two copies of the weights.

The mapping from checkpoint names to ours is data (``HF_LUKE_KEY_RULES``): regex rewrites
applied in order, plus patterns of keys that are ignored. Other encoders' rules (BERT, RoBERTa,
DistilBERT) are the conversion's data (``spacy_luke.convert.encoder_families``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SAFETENSORS_PATTERNS = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")
BIN_PATTERNS = ("pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json")

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


def resolve_checkpoint(
    name_or_path: Union[str, Path],
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
) -> Path:
    """A local folder holding the checkpoint: ``name_or_path`` itself, or the hub snapshot.

    From the hub, the config, tokenizer files and safetensors weights are fetched; the
    ``pytorch_model.bin`` weights only when the repo has no safetensors.
    """
    from ..sources.files import TOKENIZER_FILES
    from ..sources.hub import resolve_folder
    from ..sources.names import what_is

    source = what_is(name_or_path)
    settings = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, what="checkpoint")
    folder = resolve_folder(source, allow_patterns=("config.json",) + TOKENIZER_FILES + SAFETENSORS_PATTERNS, **settings)
    if not any(folder.glob("*.safetensors")) and (folder / "config.json").is_file() and source.on_hub:
        folder = resolve_folder(source, allow_patterns=BIN_PATTERNS, **settings)
    return folder


_INDEX_FIX = "download or save the checkpoint again (its index and shards together)"
# Checkpoint tensors of encoder layer N (our names, after HF_LUKE_KEY_RULES).
_ENCODER_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


def _shard_name_problem(name: object) -> Optional[str]:
    """Why ``name`` (a weight_map value) cannot be a shard inside the checkpoint folder, or None."""
    if not isinstance(name, str) or not name.strip():
        return "is not a file name"
    if "\x00" in name:
        return "holds a NUL character"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        return "is an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "leads outside the checkpoint folder"
    return None


def _read_index(path: Path) -> Dict[str, str]:
    """The weight_map of a ``*.index.json``: tensor name -> shard file name (inside the folder)."""
    try:
        with path.open(encoding="utf8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path}: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg}): {_INDEX_FIX}."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: cannot be read as a weights index ({err}): {_INDEX_FIX}.") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: expected a JSON object with a \"weight_map\" (tensor name -> shard file), got a JSON "
            f"{type(data).__name__}: {_INDEX_FIX}."
        )
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        if weight_map is None:
            what = 'has no "weight_map"'
        elif isinstance(weight_map, dict):
            what = 'has an empty "weight_map"'
        else:
            what = f'has a "weight_map" that is a JSON {type(weight_map).__name__}, not an object'
        raise CheckpointError(f"{path}: {what} (tensor name -> shard file): {_INDEX_FIX}.")
    for key, name in weight_map.items():
        problem = _shard_name_problem(name)
        if problem:
            raise CheckpointError(
                f"{path}: weight_map[{key!r}] = {name!r} {problem}; shard names must be files inside "
                f"{path.parent}, e.g. \"model-00001-of-00002.safetensors\". Refusing to read it: {_INDEX_FIX}."
            )
    return dict(weight_map)


def encoder_layers(keys: Sequence[str]) -> List[int]:
    """The encoder layer numbers (``encoder.layer.N``) that checkpoint ``keys`` hold, sorted."""
    found = set()
    for key in keys:
        match = _ENCODER_LAYER.match(rename_key(key))
        if match:
            found.add(int(match.group(1)))
    return sorted(found)


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


# Elements checked per step by check_finite's exact pass: bounds its boolean mask (64 MB).
_FINITE_CHUNK = 1 << 26


def check_finite(tensor: torch.Tensor, key: str, path: Union[str, Path]) -> None:
    """Raise CheckpointError if the floating tensor ``key`` (read from ``path``) holds NaN or Inf.

    The sum screens the tensor in one fast pass (NaN and Inf propagate into it); only a
    non-finite sum (NaN / Inf, or finite values that overflow) is checked element-wise.
    """
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return
    if bool(torch.isfinite(tensor.sum())):
        return
    flat = tensor.reshape(-1)
    if all(bool(torch.isfinite(flat[i : i + _FINITE_CHUNK]).all()) for i in range(0, flat.numel(), _FINITE_CHUNK)):
        return  # the sum overflowed; every value is finite
    n_nan = int(torch.isnan(flat).sum())
    n_inf = int(torch.isinf(flat).sum())
    raise CheckpointError(
        f"{path}: tensor {key!r} has NaN/Inf values ({n_nan} NaN, {n_inf} Inf of {flat.numel()}); "
        "the checkpoint is corrupted (or was saved from a diverged training run): download it again, "
        "or save it from a model whose weights are finite."
    )


def open_checkpoint(folder: Path) -> Iterator[Tuple[str, TensorSource]]:
    """(checkpoint key, source) for every tensor of the checkpoint in ``folder``."""
    for path in find_weight_files(folder):
        source = TensorSource(path)
        for key in source.keys():
            yield key, source
