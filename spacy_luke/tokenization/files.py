"""Finding tokenizer files (a local Hugging Face layout folder, or a hub repo id) and reading
their settings.

Only the tokenizer files are fetched from the hub (never the weights). ``HF_HUB_OFFLINE``
is honoured: offline, a repo that is not in the local cache is a clear error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .added_tokens import DEFAULT_SPECIAL_TOKENS, SPECIAL_TOKEN_KEYS, token_content

from ..checkpoint_files import TOKENIZER_FILES


def resolve_tokenizer_folder(
    name_or_path: Union[str, Path],
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
) -> Path:
    """A local folder holding the tokenizer files of ``name_or_path`` (a folder or a hub repo id).

    Raises:
        OSError: the repo cannot be had (offline and not cached, unknown repo, no network);
            the message names the repo id and the fix.
    """
    from ..hub import resolve_folder

    return resolve_folder(
        name_or_path,
        allow_patterns=TOKENIZER_FILES,
        what="tokenizer",
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
    )


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object.")
    return data


def require_file(folder: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` that exists in ``folder``; a FileNotFoundError naming them if none."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise FileNotFoundError(
        f"{what}: {' or '.join(names)} is missing from {folder} (it holds {present}). "
        "Copy the file from the checkpoint's tokenizer, or point to the folder that has it."
    )


def read_tokenizer_settings(
    folder: Path, allowed: Collection[str], overrides: Mapping[str, Any]
) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """The tokenizer settings of ``folder`` and the explicit ids of its added tokens.

    Settings named in ``allowed`` come from ``tokenizer_config.json``, special tokens from
    ``special_tokens_map.json`` (additional special tokens from both, once each), then
    ``overrides``; ids come from ``added_tokens.json`` and ``added_tokens_decoder``, whose
    strip flags apply where a token is given as a bare string. A ``model_max_length`` of None
    or transformers' "no limit" sentinel is left out (the tokenizer's default applies).
    """
    config = read_json(folder / "tokenizer_config.json")
    special_map = read_json(folder / "special_tokens_map.json")
    added_token_ids = {str(k): int(v) for k, v in read_json(folder / "added_tokens.json").items()}
    strip_defaults: Dict[str, dict] = {}
    for token_id, spec in (config.get("added_tokens_decoder") or {}).items():
        added_token_ids.setdefault(spec["content"], int(token_id))
        strip_defaults[spec["content"]] = spec

    values: Dict[str, Any] = {k: config[k] for k in allowed if k in config and k != "additional_special_tokens"}
    for key in SPECIAL_TOKEN_KEYS:
        if key in special_map:
            values[key] = special_map[key]
    additional: List[Union[str, dict]] = []
    for value in list(config.get("additional_special_tokens") or []) + list(
        special_map.get("additional_special_tokens") or []
    ):
        if token_content(value) not in {token_content(v) for v in additional}:
            additional.append(value)
    values["additional_special_tokens"] = additional
    values.update(overrides)
    # flags recorded in added_tokens_decoder apply where a token is given as a bare string
    for key in SPECIAL_TOKEN_KEYS + ("entity_token_1", "entity_token_2"):
        value = values.get(key, DEFAULT_SPECIAL_TOKENS.get(key, "<ent>" if key == "entity_token_1" else "<ent2>"))
        if isinstance(value, str) and value in strip_defaults:
            values[key] = strip_defaults[value]
    if "model_max_length" in values and (
        values["model_max_length"] is None or values["model_max_length"] > 10**12
    ):
        values.pop("model_max_length")
    return values, added_token_ids
