"""Tiny LUKE / mLUKE tokenizer folders, trained once per test session.

Plain builders: the session fixtures of ``tests/conftest.py`` and the benchmarks call them.
Each folder mimics the Hugging Face layout of the studio-ousia checkpoints:

- LUKE: ``vocab.json`` + ``merges.txt`` (byte-level BPE trained with ``tokenizers``),
  ``added_tokens.json`` with ``<ent>`` / ``<ent2>``, ``entity_vocab.json``,
  ``tokenizer_config.json``.
- mLUKE: ``sentencepiece.bpe.model`` (BPE trained with ``sentencepiece``),
  ``special_tokens_map.json`` naming ``<ent>`` / ``<ent2>`` (ids appended after the vocab, as
  transformers does), an ``entity_vocab.json`` with ``en:`` / ``ja:`` keys.
- LUKE-lite: the LUKE word files with an entity vocabulary that puts ``[MASK]`` at 0.

The builders cache their result in this module: each tokenizer is trained once per process,
whatever ``root`` later calls pass.
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Dict, List

WORDS = [
    "Tokyo", "Japan", "capital", "city", "is", "the", "of", "and", "a", "in", "was", "born",
    "Beyoncé", "Lachey", "Houston", "Texas", "singer", "song", "writer", "New", "York", "Times",
    "café", "naïve", "résumé", "Zürich", "Ångström", "São", "Paulo", "Kraków", "Ελλάδα",
    "東京", "日本", "首都", "です", "は", "の", "大阪", "北京", "서울", "한국",
    "😀", "🎉", "👍🏽", "❤️", "ünïcödé", "ß", "œuvre", "Ölfeld", "don't", "it's", "we're",
    "1984", "3.14", "42", "$100", "U.S.", "e-mail", "(", ")", ",", ".", "!", "?", "—", "\"",
    "Apple", "Inc.", "Steve", "Jobs", "founded", "company", "California", "Cupertino",
    "Studio", "Ousia", "LUKE", "entity", "aware", "transformer", "language", "model",
]

ENTITY_TITLES = ["Japan", "Tokyo", "Beyoncé", "Houston", "New York Times", "Apple Inc.", "Steve Jobs"]

_CACHE: Dict[str, Path] = {}


def make_sentences(n: int = 600, seed: int = 0) -> List[str]:
    """Deterministic pseudo-sentences over ``WORDS`` (accents, CJK, emoji, punctuation)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        length = rng.randint(3, 14)
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)))
    sentences.extend(" ".join(pair) for pair in itertools.permutations(WORDS[:12], 2))
    return sentences


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf8")


def build_luke_dir(root: Path) -> Path:
    """Train a ~1000-piece byte-level BPE and write a LUKE tokenizer folder under ``root``."""
    if "luke" in _CACHE:
        return _CACHE["luke"]
    from tokenizers import ByteLevelBPETokenizer

    folder = root / "luke"
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        make_sentences(),
        vocab_size=1000,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf8"))
    _write_json(folder / "added_tokens.json", {"<ent>": len(vocab), "<ent2>": len(vocab) + 1})
    entity_vocab = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}
    for title in ENTITY_TITLES:
        entity_vocab[title] = len(entity_vocab)
    _write_json(folder / "entity_vocab.json", entity_vocab)
    _write_json(
        folder / "tokenizer_config.json",
        {"tokenizer_class": "LukeTokenizer", "model_max_length": 512, "max_entity_length": 32,
         "max_mention_length": 30, "add_prefix_space": False},
    )
    _CACHE["luke"] = folder
    return folder


def build_luke_lite_dir(root: Path) -> Path:
    """The LUKE word files with a "-lite" entity vocabulary ([MASK] at 0, no titles)."""
    if "luke_lite" in _CACHE:
        return _CACHE["luke_lite"]
    source = build_luke_dir(root)
    folder = root / "luke_lite"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    _write_json(folder / "entity_vocab.json", {"[MASK]": 0, "[PAD]": 1, "[UNK]": 2, "[MASK2]": 3})
    _CACHE["luke_lite"] = folder
    return folder


def build_mluke_dir(root: Path) -> Path:
    """Train a tiny sentencepiece BPE model and write an mLUKE tokenizer folder under ``root``."""
    if "mluke" in _CACHE:
        return _CACHE["mluke"]
    import io

    import sentencepiece as spm

    folder = root / "mluke"
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(make_sentences(seed=1)),
        model_writer=model,
        model_type="bpe",
        vocab_size=600,
        character_coverage=0.9995,
        minloglevel=2,
    )
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    entity_vocab = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}
    for title in ENTITY_TITLES:
        entity_vocab[f"en:{title}"] = len(entity_vocab)
    entity_vocab["ja:東京"] = entity_vocab["en:Tokyo"]
    entity_vocab["ja:日本"] = entity_vocab["en:Japan"]
    _write_json(folder / "entity_vocab.json", entity_vocab)
    _write_json(folder / "special_tokens_map.json", {"additional_special_tokens": ["<ent>", "<ent2>"]})
    _write_json(
        folder / "tokenizer_config.json",
        {"tokenizer_class": "MLukeTokenizer", "model_max_length": 512, "max_entity_length": 32,
         "max_mention_length": 30},
    )
    _CACHE["mluke"] = folder
    return folder
