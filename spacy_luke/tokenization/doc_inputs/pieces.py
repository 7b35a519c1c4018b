"""What turns text into a LUKE model's inputs, kept together: :class:`LukePieces`.

The word+entity tokenizer, the Doc encoder built on it, and the word tokenizer files' bytes, so
that a saved model (a thinc layer, an ONNX export) never needs the original folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict

import srsly

from ..hf_tokenizers import load_tokenizer
from ..subwords.files import TOKENIZER_FILES
from .doc_encoder import DocEncoder

# Word-tokenizer files of a checkpoint folder, kept as bytes (the entity vocabulary is written
# from the loaded tokenizer: it may have been pruned).
WORD_TOKENIZER_FILES = tuple(name for name in TOKENIZER_FILES if not name.startswith("entity_vocab"))


@dataclass
class LukePieces:
    """What turns text into a LUKE layer's inputs: the word+entity tokenizer, the Doc encoder
    built on it, and the tokenizer files' bytes (so a saved layer never needs the original folder)."""

    tokenizer: Any
    doc_encoder: Any
    files: Dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path, *, lite: bool = False) -> "LukePieces":
        tokenizer = load_tokenizer(folder, lite=lite)
        files = {name: (folder / name).read_bytes() for name in WORD_TOKENIZER_FILES if (folder / name).is_file()}
        return cls(tokenizer, DocEncoder(tokenizer), files)

    def save(self, folder: Path) -> None:
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        srsly.write_json(folder / "entity_vocab.json", self.tokenizer.entity_vocab.to_dict())
