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

from ...sources.files import TOKENIZER_FILES


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
    from ...sources.hub import resolve_folder

    return resolve_folder(
        name_or_path,
        allow_patterns=TOKENIZER_FILES,
        what="tokenizer",
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
    )


REDOWNLOAD = "download or save the checkpoint's tokenizer files again"


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be read: the message names the file, what is wrong and the fix."""


def bad_file(path: Union[str, Path], what: str) -> TokenizerFileError:
    """The error for tokenizer file ``path``: ``"PATH: WHAT. The file is corrupted ...: FIX."``."""
    return TokenizerFileError(
        f"{path}: {what}. The file is corrupted, truncated (an interrupted download?) or not this "
        f"tokenizer's: {REDOWNLOAD}."
    )


def json_error(path: Union[str, Path], err: Exception) -> TokenizerFileError:
    """:func:`bad_file` for a JSON file that failed to parse (or to decode as UTF-8)."""
    if isinstance(err, json.JSONDecodeError):
        return bad_file(path, f"invalid JSON at line {err.lineno}, column {err.colno} ({err.msg})")
    return bad_file(path, f"not UTF-8 text ({err})")


def load_json_object(path: Union[str, Path], example: str = '{"key": value, ...}') -> Dict[str, Any]:
    """The JSON object in ``path``; a TokenizerFileError naming the file if it does not parse or is
    not an object (``example`` shows what it should hold)."""
    try:
        with open(path, encoding="utf8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise json_error(path, err) from None
    if not isinstance(data, dict):
        raise bad_file(path, f"expected a JSON object ({example}), got a JSON {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    return load_json_object(path)


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
    added_token_ids: Dict[str, int] = {}
    for token, token_id in read_json(folder / "added_tokens.json").items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise bad_file(folder / "added_tokens.json", f"token {token!r} has id {token_id!r}; ids must be non-negative integers")
        added_token_ids[str(token)] = token_id
    strip_defaults: Dict[str, dict] = {}
    decoder = config.get("added_tokens_decoder") or {}
    for token_id, spec in (decoder.items() if isinstance(decoder, dict) else [(None, decoder)]):
        if not isinstance(spec, dict) or not isinstance(spec.get("content"), str) or not str(token_id).isdigit():
            raise bad_file(
                folder / "tokenizer_config.json",
                f"added_tokens_decoder entry {token_id!r}: {spec!r} is not an id -> {{\"content\": token, ...}} pair",
            )
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
