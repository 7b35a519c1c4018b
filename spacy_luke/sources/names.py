"""What a name refers to: one answer for every command and loader.

A name is a local path or a name of something elsewhere. :func:`what_is` says which, by these
rules, in this order (a local path first):

===================  ======================================================================
kind                 the name is
===================  ======================================================================
``saved_pipeline``   a folder with ``config.cfg`` (``nlp.to_disk``)
``luke_checkpoint``  a folder with ``config.json`` whose ``model_type`` is ``luke`` or absent
                     (also when config.json cannot be read: its loader names the problem)
``encoder``          a folder with ``config.json`` of another ``model_type`` (BERT, RoBERTa,
                     XLM-R, ...): converted to LUKE before use
``luke_pipe_folder`` a saved LUKE pipe's folder: ``luke/config.json`` and no ``config.json``
``folder``           another existing folder
``file``             an existing path that is not a folder
``package``          not a path: an installed package (``spacy.load`` loads it by name)
``hub_id``           not a path: a Hugging Face hub repo id (``org/name`` or ``name``)
``missing``          none of those (a path that does not exist)
===================  ======================================================================

Nothing here reads more than a ``config.json`` or touches the network; imports nothing of ours
outside :mod:`spacy_luke.sources`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .files import CONFIG_FILE, PIPE_MODEL_DIR, PIPELINE_CONFIG

SAVED_PIPELINE = "saved_pipeline"
LUKE_CHECKPOINT = "luke_checkpoint"
ENCODER = "encoder"
LUKE_PIPE_FOLDER = "luke_pipe_folder"
FOLDER = "folder"
FILE = "file"
PACKAGE = "package"
HUB_ID = "hub_id"
MISSING = "missing"

#: The kinds that are model checkpoints (a LUKE model loads them, converting an encoder first).
CHECKPOINTS = (LUKE_CHECKPOINT, ENCODER)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Source:
    """What ``name`` refers to: its ``kind`` (see the module docstring) and, for an existing
    local path, the ``path`` (``~`` expanded)."""

    name: str
    kind: str
    path: Optional[Path] = None

    @property
    def is_folder(self) -> bool:
        """A local folder (of any kind)."""
        return self.path is not None and self.kind != FILE

    @property
    def on_hub(self) -> bool:
        """Fetched from the hub: a repo id (an installed package's name is a valid one too)."""
        return self.kind in (HUB_ID, PACKAGE)


def is_repo_id(name: str) -> bool:
    """``org/name`` or ``name``; anything else (``./x``, ``/a/b/c``, ``a/b/c``) is a path."""
    return bool(_REPO_ID.match(name)) and ".." not in name


def is_installed_package(name: str) -> bool:
    """Whether ``name`` is an installed distribution (what ``spacy.util.is_package`` checks)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution(name)
    except Exception:  # PackageNotFoundError, or a name importlib cannot look up
        return False
    return True


def what_is(name: Union[str, Path]) -> Source:
    """What ``name`` refers to (a ``Path`` is always a local path, never a hub id or package)."""
    path = Path(str(name)).expanduser()
    text = str(name)
    if path.is_dir():
        return Source(text, _folder_kind(path), path)
    if path.exists():
        return Source(text, FILE, path)
    if isinstance(name, Path):
        return Source(text, MISSING)
    if is_installed_package(text):
        return Source(text, PACKAGE)
    return Source(text, HUB_ID if is_repo_id(text) else MISSING)


def _folder_kind(path: Path) -> str:
    if (path / PIPELINE_CONFIG).is_file():
        return SAVED_PIPELINE
    if (path / CONFIG_FILE).is_file():
        return ENCODER if _model_type(path / CONFIG_FILE) not in ("luke", None) else LUKE_CHECKPOINT
    if (path / PIPE_MODEL_DIR / CONFIG_FILE).is_file():
        return LUKE_PIPE_FOLDER
    return FOLDER


def _model_type(config: Path) -> Optional[str]:
    """The ``model_type`` of a config.json; ``None`` when absent or unreadable (the loader says why)."""
    try:
        data = json.loads(config.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    return data.get("model_type", "luke") if isinstance(data, dict) else None
