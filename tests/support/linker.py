"""LUKE / mLUKE pretraining-style checkpoints (``LukeForMaskedLM``, random weights) with a full,
non-lite entity vocabulary of a few hundred titles, including ambiguous names, for the linker."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List

import torch
import transformers

from support.checkpoints import randomize
from support.tokenizers import ENTITY_TITLES, build_luke_dir, build_mluke_dir

#: Titles that share a name: a mention "Paris" has three candidate titles, "Jaguar" two.
AMBIGUOUS_TITLES = ["Paris", "Paris, Texas", "Paris (mythology)", "Jaguar Cars", "Jaguar (animal)", "Georgia (country)", "Georgia (U.S. state)"]
#: Filler titles, so the table has a few hundred rows (the whole-vocabulary top-k has work to do).
FILLER_TITLES = [f"Entity {i}" for i in range(300)]
LINKER_TITLES: List[str] = ENTITY_TITLES + AMBIGUOUS_TITLES + FILLER_TITLES
#: mLUKE titles of rows that have no English title (the multilingual fixture), and how many rows
#: after them have no title at all; the model is biased towards all of them.
FOREIGN_ONLY_TITLES = ["ja:大阪", "de:München", "ja:富士山"]
UNTITLED_ROWS = 2


def linker_entity_vocab(prefix: str = "") -> Dict[str, int]:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}
    for title in LINKER_TITLES:
        vocab[f"{prefix}{title}"] = len(vocab)
    return vocab


def build_linker_checkpoint(root: Path, *, mluke: bool = False, seed: int = 0, foreign_rows: bool = False) -> Path:
    """A ``LukeForMaskedLM`` folder (transformers' class, random weights) with the linker titles.

    foreign_rows (mLUKE): add rows titled only in other languages (FOREIGN_ONLY_TITLES) and
    UNTITLED_ROWS rows with no title, with an entity bias that makes them every mention's best.
    """
    folder = root / ("mluke-mlm" if mluke else "luke-mlm")
    folder = folder.with_name(folder.name + "-foreign-rows") if foreign_rows else folder
    if folder.exists():
        return folder
    tokenizer_dir = build_mluke_dir(root / "tokenizer-src") if mluke else build_luke_dir(root / "tokenizer-src")
    shutil.copytree(tokenizer_dir, folder)
    vocab = linker_entity_vocab("en:" if mluke else "")
    if mluke:  # mLUKE: one entity row shared by its titles in several languages
        vocab["ja:東京"] = vocab["en:Tokyo"]
    n_rows = max(vocab.values()) + 1
    favoured: List[int] = []
    if foreign_rows:
        for title in FOREIGN_ONLY_TITLES:
            vocab[title] = n_rows
            n_rows += 1
        favoured = list(range(n_rows - len(FOREIGN_ONLY_TITLES), n_rows + UNTITLED_ROWS))
        n_rows += UNTITLED_ROWS
    (folder / "entity_vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf8")
    hf_tok = (transformers.MLukeTokenizer if mluke else transformers.LukeTokenizer).from_pretrained(folder)
    config = transformers.LukeConfig(
        vocab_size=len(hf_tok),
        entity_vocab_size=n_rows,
        hidden_size=32,
        entity_emb_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=130,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = transformers.LukeForMaskedLM(config).eval()
    randomize(model, seed)
    if favoured:
        with torch.no_grad():
            model.entity_predictions.bias[favoured] += 50.0
    model.save_pretrained(folder)
    return folder
