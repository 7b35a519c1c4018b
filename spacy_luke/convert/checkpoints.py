"""A checkpoint reference that resolves to a local LUKE folder: a hub id or folder of a LUKE
checkpoint as it is, or of another encoder (BERT, RoBERTa, XLM-R, DistilBERT) converted to LUKE
once and cached by content (``SPACY_LUKE_CACHE``, default ``~/.cache/spacy-luke``).

What the pipes load at ``initialize`` or first use, and what the spacy-transformers architecture
and ``export-onnx`` load: one rule for all.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


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
    """``folder`` itself for a LUKE checkpoint (or anything but an encoder: from_pretrained reports
    the problem with it); a cached LUKE conversion of an encoder."""
    import hashlib

    from ..sources.names import ENCODER, what_is

    if what_is(folder).kind != ENCODER:
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

        from .luke_folder import convert_encoder_to_luke

        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        convert_encoder_to_luke(folder, partial, overwrite=True)
        try:
            partial.rename(target)  # atomic: a concurrent conversion may have won
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return target
