"""Finding tokenizer files: a local Hugging Face layout folder, or a hub repo id.

Only the tokenizer files are fetched from the hub (never the weights). ``HF_HUB_OFFLINE``
is honoured: offline, a repo that is not in the local cache is a clear error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "tokenizer.json",
    "entity_vocab.json",
    "entity_vocab.jsonl",
    "entity_vocab.tsv",
)

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
