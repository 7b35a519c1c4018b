"""The entity vocabulary: entity titles to rows of the entity embedding table.

Three on-disk formats are read:

- ``entity_vocab.json`` (Hugging Face layout): ``{"[PAD]": 0, "Japan": 17, ...}``;
  mLUKE keys are language-prefixed (``"en:Japan"``) and several keys may share an id.
- ``entity_vocab.tsv`` (original LUKE): one ``title<TAB>count`` per line, id = line number.
- ``entity_vocab.jsonl`` (original mLUKE): one ``{"id": .., "entities": [[title, lang], ..]}``
  per line; keys become ``"lang:title"`` (specials keep their bare name).

Special entities are looked up by name, never assumed to sit at fixed ids: the "-lite"
checkpoints put ``[MASK]`` at 0.

The vocabulary is checkpoint data (it names the rows of the entity embedding table), so it sits
below both ``model/`` (entity table size, ``lite`` pruning) and ``tokenization/`` (entity ids),
and imports neither; ``spacy_luke.tokenization`` re-exports it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

PAD = "[PAD]"
UNK = "[UNK]"
MASK = "[MASK]"
MASK2 = "[MASK2]"
SPECIAL_ENTITIES: Tuple[str, ...] = (PAD, UNK, MASK, MASK2)

ENTITY_VOCAB_FILES: Tuple[str, ...] = ("entity_vocab.json", "entity_vocab.jsonl", "entity_vocab.tsv")


class EntityVocab(Mapping[str, int]):
    """A read-only mapping from entity title (or special name) to entity id."""

    def __init__(self, title_to_id: Mapping[str, int], *, source: Optional[Union[str, Path]] = None):
        self._title_to_id: Dict[str, int] = dict(title_to_id)
        #: The file the vocabulary was read from (named in errors), if any.
        self.source = None if source is None else str(source)
        for title, idx in self._title_to_id.items():
            if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
                raise ValueError(
                    f"Entity vocabulary entry {title!r} has id {idx!r}; ids must be non-negative integers."
                )
        self.size = max(self._title_to_id.values(), default=-1) + 1

    def __getitem__(self, title: str) -> int:
        return self._title_to_id[title]

    def __iter__(self):
        return iter(self._title_to_id)

    def __len__(self) -> int:
        return len(self._title_to_id)

    def to_dict(self) -> Dict[str, int]:
        return dict(self._title_to_id)

    def special_id(self, name: str) -> int:
        """The id of a special entity (``[PAD]``, ``[UNK]``, ``[MASK]``, ``[MASK2]``)."""
        if name not in self._title_to_id:
            where = f"{self.source}: the" if self.source else "The"
            raise ValueError(
                f"{where} entity vocabulary has no {name!r} entry (it has {len(self)} entries). "
                f"LUKE entity vocabularies must define the special entities {list(SPECIAL_ENTITIES)}; "
                "check that entity_vocab.json comes from a LUKE or mLUKE checkpoint."
            )
        return self._title_to_id[name]

    def lookup(self, title: str, language: Optional[str] = None) -> int:
        """The id of ``title``; tries ``"language:title"`` first when a language is given.

        Unknown titles map to ``[UNK]``.
        """
        if language is not None:
            key = f"{language}:{title}"
            if key in self._title_to_id:
                return self._title_to_id[key]
        if title in self._title_to_id:
            return self._title_to_id[title]
        return self.special_id(UNK)

    def lite(self, keep: Sequence[str] = SPECIAL_ENTITIES) -> Tuple["EntityVocab", List[int]]:
        """Prune to the entries named in ``keep`` (the special entities by default).

        Returns the new vocabulary (ids 0..k-1, in order of the old ids) and, for each new id,
        the old row to copy from the entity embedding table.
        """
        missing = [name for name in keep if name not in self._title_to_id]
        if missing:
            raise ValueError(
                f"Cannot prune the entity vocabulary to {list(keep)}: {missing} not in it."
            )
        old_rows = sorted({self._title_to_id[name] for name in keep})
        new_id = {old: new for new, old in enumerate(old_rows)}
        pruned = {name: new_id[self._title_to_id[name]] for name in keep}
        return EntityVocab(pruned), old_rows


class EntityVocabError(ValueError):
    """An entity vocabulary file that cannot be read: the message names the file and what is wrong."""


_FIX = "The file is corrupted or truncated (an interrupted download?): download or save the checkpoint again."


def _json_error(path: Path, err: Exception, lineno: Optional[int] = None) -> EntityVocabError:
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    if isinstance(err, json.JSONDecodeError):
        line = err.lineno if lineno is None else lineno
        what = f"invalid JSON at line {line}, column {err.colno} ({err.msg})"
    else:  # UnicodeDecodeError
        what = f"not UTF-8 text ({err})"
    return EntityVocabError(f"{where}: {what}. {_FIX}")


def _read_json(path: Path) -> Dict[str, int]:
    try:
        with path.open(encoding="utf8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _json_error(path, err) from None
    if not isinstance(data, dict):
        raise EntityVocabError(
            f"{path}: expected a JSON object mapping entity titles to ids "
            f'({{"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, ...}}), got a JSON {type(data).__name__}. '
            "This is not a Hugging Face LUKE entity_vocab.json."
        )
    return data


def _read_tsv(path: Path) -> Dict[str, int]:
    vocab: Dict[str, int] = {}
    try:
        with path.open(encoding="utf8") as f:
            for idx, line in enumerate(f):
                title = line.rstrip("\n").split("\t", 1)[0]
                vocab.setdefault(title, idx)
    except UnicodeDecodeError as err:
        raise _json_error(path, err) from None
    return vocab


def _read_jsonl(path: Path) -> Dict[str, int]:
    vocab: Dict[str, int] = {}
    expected = "expected one JSON object per line: {'id': ..., 'entities': [[title, lang], ...]}"
    try:
        with path.open(encoding="utf8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as err:
                    raise _json_error(path, err, lineno) from None
                try:
                    entity_id = int(item["id"])
                    names = [(title, language) for title, language in item["entities"]]
                except (KeyError, TypeError, ValueError):
                    raise EntityVocabError(f"{path}:{lineno}: {expected}; got {line.strip()[:80]!r}. {_FIX}") from None
                for title, language in names:
                    if title in SPECIAL_ENTITIES or not language:
                        vocab.setdefault(title, entity_id)
                    else:
                        vocab.setdefault(f"{language}:{title}", entity_id)
    except UnicodeDecodeError as err:
        raise _json_error(path, err) from None
    return vocab


def find_entity_vocab_file(folder: Union[str, Path]) -> Optional[Path]:
    folder = Path(folder)
    for name in ENTITY_VOCAB_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def load_entity_vocab(path: Union[str, Path]) -> EntityVocab:
    """Read an entity vocabulary from a file, or from a checkpoint folder holding one."""
    path = Path(path)
    if path.is_dir():
        found = find_entity_vocab_file(path)
        if found is None:
            raise FileNotFoundError(
                f"No entity vocabulary in {path}: expected one of {list(ENTITY_VOCAB_FILES)}. "
                "LUKE checkpoints ship entity_vocab.json next to config.json."
            )
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"Entity vocabulary file not found: {path}")
    if path.suffix == ".jsonl":
        data = _read_jsonl(path)
    elif path.suffix == ".tsv":
        data = _read_tsv(path)
    else:
        data = _read_json(path)
    try:
        return EntityVocab(data, source=path)
    except ValueError as err:
        raise EntityVocabError(f"{path}: {err} {_FIX}") from None
