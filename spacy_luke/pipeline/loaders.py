"""Where a pipe's weights come from at ``initialize``: ``spacy-luke.HFLukeLoader.v1``.

Used in a training config as::

    [initialize.components.luke_ner.loader]
    @misc = "spacy-luke.HFLukeLoader.v1"
    name_or_path = "studio-ousia/luke-base"

It only names the checkpoint; nothing is read until the pipe initializes, and a trained
pipeline carries its own weights, so ``spacy.load`` never calls it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from spacy.util import registry


@dataclass(frozen=True)
class LukeCheckpoint:
    """A LUKE checkpoint: a local Hugging Face-layout folder or a hub repo id."""

    name_or_path: str
    revision: Optional[str] = None
    lite: bool = False

    def resolve(self) -> Path:
        """The local LUKE folder (downloading from the hub if needed).

        A BERT / RoBERTa / XLM-R / DistilBERT folder is converted to LUKE first (entity side
        initialized as LUKE's pretraining did), once: the result is cached by content.
        """
        from ..model.checkpoint import resolve_checkpoint

        folder = resolve_checkpoint(self.name_or_path, revision=self.revision)
        return converted_if_needed(folder)


def _cache_root() -> Path:
    import os

    return Path(os.environ.get("SPACY_LUKE_CACHE", Path.home() / ".cache" / "spacy-luke"))


def converted_if_needed(folder: Path) -> Path:
    """``folder`` itself for a LUKE checkpoint; a cached LUKE conversion of any other encoder."""
    import hashlib
    import json

    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return folder  # from_pretrained reports the problem with the folder
    if not isinstance(config, dict):
        return folder  # likewise
    model_type = config.get("model_type", "luke")
    if model_type in ("luke", None):
        return folder
    key = hashlib.sha1()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            key.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = _cache_root() / "converted" / key.hexdigest()[:16]
    if not (target / "config.json").is_file():
        import os
        import shutil

        from ..convert import convert_encoder_to_luke

        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        convert_encoder_to_luke(folder, partial, overwrite=True)
        try:
            partial.rename(target)  # atomic: a concurrent conversion may have won
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return target


CheckpointLoader = Callable[[], LukeCheckpoint]


@registry.misc("spacy-luke.HFLukeLoader.v1")
def hf_luke_loader(name_or_path: str, revision: Optional[str] = None, lite: bool = False) -> CheckpointLoader:
    """A LUKE / mLUKE checkpoint to initialize a pipe from (called by the pipe's initialize).

    name_or_path (str): a hub repo id (e.g. "studio-ousia/luke-base") or a local folder.
    revision (Optional[str]): a hub branch, tag or commit.
    lite (bool): keep only the special entities of the entity table ([MASK] tasks).
    """
    checkpoint = LukeCheckpoint(str(name_or_path), revision=revision, lite=lite)

    def load() -> LukeCheckpoint:
        return checkpoint

    return load
