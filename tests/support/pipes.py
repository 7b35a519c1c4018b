"""Tiny LUKE checkpoints with real (trained) tokenizer files, for the spaCy pipe tests (built by the
session fixtures of ``tests/conftest.py``; the benchmarks call ``build_checkpoint`` too)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict

import torch
import transformers

from support.checkpoints import randomize
from support.tokenizers import build_luke_dir

NER_LABELS = {0: "O", 1: "PER", 2: "ORG", 3: "LOC"}


def build_checkpoint(root: Path, name: str, head: str, id2label: Dict[int, str], seed: int = 0, **overrides) -> Path:
    """A LUKE checkpoint folder: the fixture tokenizer's files + a random ``head`` model sized to them."""
    folder = root / name
    if folder.exists():
        return folder
    tokenizer_dir = build_luke_dir(root / "tokenizer-src")
    hf_tok = transformers.LukeTokenizer.from_pretrained(tokenizer_dir)
    entity_vocab = json.loads((tokenizer_dir / "entity_vocab.json").read_text(encoding="utf8"))
    settings = dict(
        vocab_size=len(hf_tok),
        entity_vocab_size=max(entity_vocab.values()) + 1,
        hidden_size=32,
        entity_emb_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=130,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        id2label=id2label,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, head)(transformers.LukeConfig(**settings)).eval()
    randomize(model, seed)
    if hasattr(model, "classifier"):
        with torch.no_grad():  # make the entity classes win sometimes
            model.classifier.weight.mul_(40.0)
    shutil.copytree(tokenizer_dir, folder)
    model.save_pretrained(folder)
    return folder


TYPE_LABELS = {0: "person", 1: "location", 2: "organization", 3: "event", 4: "artist"}
RELATION_LABELS = {0: "no_relation", 1: "per:employee_of(e1,e2)", 2: "org:founded_by(e2,e1)", 3: "per:city_of_birth"}
