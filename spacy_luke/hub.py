"""One place that turns a name into a local folder: a folder path, or a Hugging Face hub repo id.

Downloads go through ``huggingface_hub.snapshot_download`` restricted to the files asked for.
``HF_HUB_OFFLINE`` is read at call time (huggingface_hub reads it once, at import), so setting
it later still keeps us off the network; offline, a repo that is not cached is a clear error.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

_TRUE = {"1", "ON", "YES", "TRUE"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or huggingface_hub's own setting) forbids the network."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is an install requirement
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def is_repo_id(name: str) -> bool:
    """``org/name`` or ``name``; anything else (``./x``, ``/a/b/c``, ``a/b/c``) is a path."""
    return bool(_REPO_ID.match(name)) and ".." not in name


def resolve_folder(
    name_or_path: Union[str, Path],
    *,
    allow_patterns: Sequence[str],
    what: str,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or the hub snapshot of the repo.

    ``what`` names the thing for error messages ("checkpoint", "tokenizer").
    Raises FileNotFoundError / NotADirectoryError for bad local paths and OSError (naming the
    repo id and the fix) when a repo cannot be had.
    """
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists():
        raise NotADirectoryError(
            f"{name!r} is a file; pass the {what} *folder* (the Hugging Face layout: config.json, "
            "weights, tokenizer files, entity_vocab.json)."
        )
    if isinstance(name_or_path, Path) or not is_repo_id(name):
        raise FileNotFoundError(
            f"The {what} folder {name!r} was not found, and it is not a hub repo id "
            "(those look like 'studio-ousia/luke-base'). Check the path."
        )
    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=name,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
            token=token,
            allow_patterns=list(allow_patterns),
        )
    except Exception as err:  # huggingface_hub raises many error types; all mean "not available"
        if offline:
            fix = (
                "The hub is offline (HF_HUB_OFFLINE=1 or local_files_only=True) and the repo is not in "
                "the local Hugging Face cache: download it once with network access, or pass a local folder."
            )
        else:
            fix = (
                "Check the repo id and revision, your network and (for private repos) your token, "
                "or pass a local folder."
            )
        raise OSError(f"Cannot get the {what} {name!r} from the Hugging Face hub ({type(err).__name__}: {err}). {fix}") from None
    return Path(folder)
