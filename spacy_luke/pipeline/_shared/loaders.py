"""Where a pipe's weights come from at ``initialize``: ``spacy-luke.HFLukeLoader.v1``.

Used in a training config as::

    [initialize.components.luke_ner.loader]
    @misc = "spacy-luke.HFLukeLoader.v1"
    name_or_path = "studio-ousia/luke-base"

It only names the checkpoint; nothing is read until the pipe initializes, and a trained
pipeline carries its own weights, so ``spacy.load`` never calls it.
"""

from typing import Any, Callable, Optional

from spacy.util import registry


#: What a loader returns when called: a ``spacy_luke.convert.checkpoints.LukeCheckpoint``.
CheckpointLoader = Callable[[], Any]


@registry.misc("spacy-luke.HFLukeLoader.v1")
def hf_luke_loader(name_or_path: str, revision: Optional[str] = None, lite: bool = False) -> CheckpointLoader:
    """A LUKE / mLUKE checkpoint to initialize a pipe from (called by the pipe's initialize).

    name_or_path (str): a hub repo id (e.g. "studio-ousia/luke-base") or a local folder.
    revision (Optional[str]): a hub branch, tag or commit.
    lite (bool): keep only the special entities of the entity table ([MASK] tasks).
    """
    from ...convert.checkpoints import LukeCheckpoint  # here: importing the pipes loads no conversion code

    checkpoint = LukeCheckpoint(str(name_or_path), revision=revision, lite=lite)

    def load():
        return checkpoint

    return load
