"""Building a spaCy knowledge base from an alias file and a LUKE / mLUKE checkpoint.

The KB's entities are the alias file's titles that the checkpoint's entity vocabulary has (KB id =
the title without the mLUKE language prefix); each entity's vector is LUKE's own entity embedding
of that title (``entity_embeddings.entity_embeddings.weight``, only the needed rows are read) and
its frequency the total count of its alias lines; each alias gets its kept titles with priors
count / (sum of the alias's kept counts). ``python -m spacy_luke build-kb`` runs it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from .aliases import read_alias_table

logger = logging.getLogger("spacy_luke")

ENTITY_EMBEDDING_KEYS: Tuple[str, ...] = (
    "entity_embeddings.entity_embeddings.weight",
    "luke.entity_embeddings.entity_embeddings.weight",
)


class KBReport(NamedTuple):
    """What :func:`build_kb_with_report` kept and skipped."""

    entities: int
    aliases: int
    skipped_titles: List[str]  # alias-file titles not in the entity vocabulary, in file order
    skipped_aliases: int  # aliases none of whose titles are in the entity vocabulary


def build_kb(
    aliases_path: Union[str, Path],
    checkpoint: Union[str, Path],
    *,
    vocab: Any = None,
    language: Optional[str] = None,
):
    """An ``InMemoryLookupKB`` of the alias file's titles, with LUKE's entity embeddings as vectors.

    aliases_path: UTF-8 TSV of ``alias<TAB>title<TAB>count`` lines (titles unprefixed).
    checkpoint: a LUKE / mLUKE checkpoint folder, or a hub id.
    vocab: the spaCy ``Vocab`` of the KB (a new one by default; pass ``nlp.vocab`` to share strings).
    language: the mLUKE title prefix ("en"): titles are looked up as ``"en:Title"``.
    """
    return build_kb_with_report(aliases_path, checkpoint, vocab=vocab, language=language)[0]


def build_kb_with_report(
    aliases_path: Union[str, Path],
    checkpoint: Union[str, Path],
    *,
    vocab: Any = None,
    language: Optional[str] = None,
) -> Tuple[Any, KBReport]:
    """:func:`build_kb`, and a :class:`KBReport` of what it kept and skipped."""
    from spacy.kb import InMemoryLookupKB
    from spacy.vocab import Vocab

    from ...sources.entity_vocab import load_entity_vocab
    from ...model.checkpoint import resolve_checkpoint

    aliases_path = Path(aliases_path)
    if not aliases_path.is_file():
        raise FileNotFoundError(f"{aliases_path}: no such alias file (alias<TAB>title<TAB>count lines).")
    table = read_alias_table(aliases_path)
    folder = resolve_checkpoint(checkpoint)
    entity_vocab = load_entity_vocab(folder)
    prefix = f"{language}:" if language else ""

    rows: Dict[str, int] = {}  # kept title -> entity row, in file order
    freqs: Dict[str, float] = {}
    skipped: Dict[str, None] = {}
    kept_aliases: List[Tuple[str, List[str], List[float]]] = []
    for alias, counts in table.items():
        titles, alias_counts = [], []
        for title, count in counts.items():
            row = entity_vocab.get(prefix + title)
            if row is None:
                skipped[title] = None
                continue
            rows.setdefault(title, row)
            freqs[title] = freqs.get(title, 0.0) + count
            titles.append(title)
            alias_counts.append(count)
        if titles:
            total = sum(alias_counts)
            kept_aliases.append((alias, titles, [count / total for count in alias_counts]))
    if not rows:
        raise ValueError(_no_entities(aliases_path, checkpoint, list(skipped), entity_vocab, prefix))
    if skipped:
        names = list(skipped)
        logger.warning(
            "%s: %d title(s) are not in the entity vocabulary of %s%s and were skipped (e.g. %s).",
            aliases_path, len(names), checkpoint, f" (language {language!r})" if language else "",
            ", ".join(repr(name) for name in names[:3]),
        )

    vectors = read_entity_embeddings(folder, list(rows.values()))
    kb = InMemoryLookupKB(vocab if vocab is not None else Vocab(), entity_vector_length=vectors.shape[1])
    titles = list(rows)
    kb.set_entities(titles, [freqs[title] for title in titles], vectors.tolist())
    for alias, alias_titles, priors in kept_aliases:
        kb.add_alias(alias, alias_titles, priors)
    report = KBReport(len(titles), len(kept_aliases), list(skipped), len(table) - len(kept_aliases))
    return kb, report


def read_entity_embeddings(folder: Union[str, Path], rows: List[int]):
    """float32 numpy ``(len(rows), entity_emb_size)``: those rows of the checkpoint's entity embedding table."""
    import numpy as np

    from ...model.checkpoint import CheckpointError, open_checkpoint

    for key, source in open_checkpoint(Path(folder)):
        if key in ENTITY_EMBEDDING_KEYS:
            size = source.shape(key)[1]
            if not rows:
                return np.zeros((0, size), dtype=np.float32)
            return source.get(key, rows).float().numpy()
    raise CheckpointError(
        f"{folder} has no entity embedding table (expected one of {list(ENTITY_EMBEDDING_KEYS)}): "
        "give a LUKE or mLUKE checkpoint with its entity vocabulary (not a '-lite' or converted encoder)."
    )


def _no_entities(aliases_path: Path, checkpoint: Any, titles: List[str], entity_vocab: Any, prefix: str) -> str:
    """Why a KB would be empty: no title of the alias file is in the entity vocabulary."""
    from ...sources.entity_vocab import SPECIAL_ENTITIES

    examples = ", ".join(repr(prefix + title) for title in titles[:3])
    named = [title for title in entity_vocab if title not in SPECIAL_ENTITIES]
    if not named:
        has = "has no entity titles (only the special entities: a converted encoder or a '-lite' checkpoint)"
        fix = f"convert the encoder with its entities (python -m spacy_luke convert-encoder ENCODER OUT --entities {aliases_path})"
    else:
        has = f"has {len(named)} other titles (e.g. {', '.join(repr(t) for t in named[:3])})"
        fix = "use the checkpoint's titles in the alias file" + ("" if prefix else ", or --lang for an mLUKE checkpoint")
    return (
        f"{aliases_path}: none of its {len(titles)} titles (e.g. {examples}) is in the entity vocabulary of {checkpoint}, "
        f"which {has}, so the knowledge base would have 0 entities; {fix}."
    )
