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
        """The local folder (downloading tokenizer files, config and weights from the hub if needed)."""
        from ..model.checkpoint import resolve_checkpoint

        return resolve_checkpoint(self.name_or_path, revision=self.revision)


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
