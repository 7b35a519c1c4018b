"""Candidate entities for ``luke_entity_linker``: registered sources (the pipe's ``entity_candidates`` setting).

A source is called with the mentions of one doc and a :class:`LinkContext` and returns, per
mention, its candidates (:class:`LinkCandidate`), best prior first, at most its
``max_candidates``. A source whose ``whole_vocabulary`` is true (``AllEntitiesCandidates``)
returns nothing: the pipe searches the entity table (the rows its :class:`EntitySearch` allows:
those with a title, in the pipe's language for mLUKE) and keeps the ``top_k`` best.
"""
from __future__ import annotations

import logging
import threading
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Protocol, Sequence, Tuple

import numpy as np
from spacy.tokens import Span
from spacy.util import registry

from .aliases import normalize_mention, read_alias_table, read_kb_mapping, title_keys
from ...sources.entity_vocab import SPECIAL_ENTITIES


class LinkCandidate(NamedTuple):
    """One candidate entity of a mention.

    kb_id: what the pipe writes to ``ent.kb_id_`` when it wins (the title, or the KB's id).
    entity_id: the entity's row in the checkpoint's entity vocabulary (the title LUKE scores).
    prior: P(entity | mention text) from the KB or alias counts (1/n when nothing says).
    """

    kb_id: str
    entity_id: int
    prior: float


@dataclass
class LinkContext:
    """What a candidate source may read.

    entity_vocab: the checkpoint's entity vocabulary (``spacy_luke.sources.entity_vocab.EntityVocab``:
        title -> row; mLUKE titles are language-prefixed, "en:Japan").
    language: the mLUKE title prefix to use ("en"), or None for LUKE's unprefixed titles.
    kb: the spaCy ``KnowledgeBase`` set on the pipe (``set_kb`` / ``[initialize]``), or None.
    """

    entity_vocab: Any
    language: Optional[str] = None
    kb: Any = None


class CandidateSource(Protocol):
    whole_vocabulary: bool

    def __call__(self, mentions: Sequence[Span], context: LinkContext) -> List[List[LinkCandidate]]:
        ...


# ------------------------------------------------------------------------------------ shared helpers

logger = logging.getLogger("spacy_luke")


class LukeUnknownEntityWarning(UserWarning):
    """Candidates (from a KB or an alias file) whose title is not in the checkpoint's entity vocabulary."""


class LukeNoEntitiesWarning(UserWarning):
    """AllEntitiesCandidates over an entity table with no entity to search (none titled in the language)."""


def kb_id_for_title(title: str, language: Optional[str]) -> str:
    """The kb_id of an entity-vocabulary title: the title without its ``"language:"`` prefix."""
    prefix = f"{language}:" if language else ""
    return title[len(prefix):] if prefix and title.startswith(prefix) else title


def title_for_kb_id(kb_id: str, language: Optional[str]) -> str:
    """The entity-vocabulary title of a kb_id (or unprefixed title): ``"en:Tokyo"`` for language "en"."""
    return f"{language}:{kb_id}" if language else kb_id


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}; set it to 1 or more in the candidates block.")
    return value


def _existing_file(path: Optional[str], what: str) -> Optional[Path]:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"The {what} file {str(path)!r} was not found: give the path of an existing UTF-8 TSV file.")
    return file


def _ranked(candidates: Iterable[LinkCandidate], max_candidates: int) -> List[LinkCandidate]:
    """Best prior first, ties by kb_id; at most ``max_candidates``."""
    return sorted(candidates, key=lambda c: (-c.prior, c.kb_id))[:max_candidates]


def _examples(names: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(name) for name in names[:n])
    return shown + (", ..." if len(names) > n else "")


class _VocabCaches(weakref.WeakKeyDictionary):
    """What the candidate sources built from one entity vocabulary: source -> {key: what it built}.

    Stored on the vocabulary (:func:`_built_once`), so it lives and goes with it, and another
    vocabulary object never sees it: ``owner`` is checked (a shallow copy shares the attribute),
    and a pickled or deep-copied vocabulary gets an empty one. Weak keys: a source that goes,
    goes from here.
    """

    def __init__(self, owner: Any = None):
        super().__init__()
        self.owner = weakref.ref(owner) if owner is not None else lambda: None

    def __reduce__(self):
        return (_VocabCaches, ())

    def __copy__(self):
        return _VocabCaches()

    def __deepcopy__(self, memo):
        return _VocabCaches()


_CACHES_ATTR = "_luke_candidate_caches"
_CACHES_LOCK = threading.Lock()  # held only to give a vocabulary its caches


def _vocab_caches(entity_vocab: Any) -> Optional[_VocabCaches]:
    """``entity_vocab``'s own caches (made on first use); None when it cannot hold attributes (a plain dict)."""
    caches = getattr(entity_vocab, _CACHES_ATTR, None)
    if caches is not None and caches.owner() is entity_vocab:
        return caches
    with _CACHES_LOCK:
        caches = getattr(entity_vocab, _CACHES_ATTR, None)
        if caches is None or caches.owner() is not entity_vocab:
            try:
                caches = _VocabCaches(entity_vocab)
                setattr(entity_vocab, _CACHES_ATTR, caches)
            except (AttributeError, TypeError):  # no attributes, or no weak references
                return None
    return caches


def _built_once(source: Any, entity_vocab: Any, key: Tuple, build: Callable[[], Any]) -> Any:
    """``build()``, once per vocabulary object, source and key (under the source's lock, so
    threads asking at once build it once); each call builds for a vocabulary with no caches."""
    caches = _vocab_caches(entity_vocab)
    if caches is None:
        return build()
    found = caches.get(source, {}).get(key)
    if found is not None:
        return found
    with source._lock:
        built = caches.setdefault(source, {})
        if key not in built:
            built[key] = build()
        return built[key]


# ------------------------------------------------------------------------------------ TitleCandidates


class _TitleIndex(NamedTuple):
    titles: Dict[str, List[Tuple[str, int]]]  # normalized key -> [(kb_id, row)]
    aliases: Dict[str, Dict[Tuple[str, int], float]]  # normalized alias -> {(kb_id, row): count}


class TitleCandidates:
    """The entity vocabulary's titles matched by normalized mention text, plus an optional alias file.

    Priors of a mention: with no alias file entry for its normalized text, uniform over the title
    matches. Otherwise each title the alias file lists counts its (summed) count, each title match
    the alias file does not list counts as seen once, and prior = count / total of those counts
    (alias counts 8 and 2 and one unlisted title match: 8/11, 2/11, 1/11; no title match: 0.8, 0.2).
    """

    whole_vocabulary = False

    def __init__(self, aliases: Optional[str] = None, max_candidates: int = 30):
        self.max_candidates = _positive_int("max_candidates", max_candidates)
        self.aliases_path = _existing_file(aliases, "aliases")
        self._alias_table: Optional[Dict[str, Dict[str, float]]] = None
        self._lock = threading.Lock()

    def index(self, entity_vocab: Any, language: Optional[str] = None) -> _TitleIndex:
        """The index of ``entity_vocab``'s titles (and the alias file), built once per vocabulary and language."""

        def build() -> _TitleIndex:
            if self._alias_table is None and self.aliases_path is not None:
                self._alias_table = read_alias_table(self.aliases_path)
            return _build_title_index(entity_vocab, language, self._alias_table or {}, self.aliases_path)

        return _built_once(self, entity_vocab, (language,), build)

    def entity_titles(self, context: LinkContext) -> List[str]:
        """The vocabulary titles this source can name once the table is pruned: the alias file's."""
        if self.aliases_path is None:
            raise ValueError(
                "prune_entities with TitleCandidates needs its `aliases` file (the titles to keep); "
                "without one every title of the vocabulary is a candidate: leave prune_entities = false."
            )
        if self._alias_table is None:
            self._alias_table = read_alias_table(self.aliases_path)
        titles = {title for by_title in self._alias_table.values() for title in by_title}
        return [title_for_kb_id(t, context.language) for t in sorted(titles)]

    def __call__(self, mentions: Sequence[Span], context: LinkContext) -> List[List[LinkCandidate]]:
        index = self.index(context.entity_vocab, context.language)
        return [self.candidates_for_text(index, mention.text) for mention in mentions]

    def candidates_for_text(self, index: _TitleIndex, text: str) -> List[LinkCandidate]:
        key = normalize_mention(text)
        if not key:
            return []
        listed = index.aliases.get(key, {})
        unlisted = [entry for entry in index.titles.get(key, ()) if entry not in listed]
        if listed:
            total = sum(listed.values()) + len(unlisted)
            scored = [(entry, count / total) for entry, count in listed.items()]
            scored += [(entry, 1.0 / total) for entry in unlisted]
        else:
            scored = [(entry, 1.0 / len(unlisted)) for entry in unlisted]
        return _ranked((LinkCandidate(kb_id, row, prior) for (kb_id, row), prior in scored), self.max_candidates)


def _build_title_index(
    entity_vocab: Any, language: Optional[str], alias_table: Dict[str, Dict[str, float]], aliases_path: Optional[Path]
) -> _TitleIndex:
    prefix = f"{language}:" if language else ""
    titles: Dict[str, List[Tuple[str, int]]] = {}
    for title, row in entity_vocab.items():
        if prefix:
            if not title.startswith(prefix):
                continue
            title = title[len(prefix):]
        elif title in SPECIAL_ENTITIES:
            continue
        entry = (title, row)
        for key in title_keys(title):
            titles.setdefault(key, []).append(entry)
    aliases: Dict[str, Dict[Tuple[str, int], float]] = {}
    unknown: Dict[str, None] = {}
    for alias, counts in alias_table.items():
        key = normalize_mention(alias)
        if not key:
            continue
        for title, count in counts.items():
            row = entity_vocab.get(title_for_kb_id(title, language))
            if row is None:
                unknown[title] = None
                continue
            listed = aliases.setdefault(key, {})
            listed[(title, row)] = listed.get((title, row), 0.0) + count
    if unknown:
        names = list(unknown)
        logger.warning(
            "%s: %d title(s) are not in the checkpoint's entity vocabulary%s and were ignored (e.g. %s).",
            aliases_path, len(names), f" (language {language!r})" if language else "", _examples(names),
        )
    return _TitleIndex(titles, aliases)


@registry.misc("spacy-luke.TitleCandidates.v1")
def title_candidates(aliases: Optional[str] = None, max_candidates: int = 30) -> TitleCandidates:
    """The entity vocabulary's titles matched by normalized mention text ("Paris" finds "Paris, Texas").

    aliases (Optional[str]): a UTF-8 TSV file of alias<TAB>title<TAB>count lines that adds candidates and priors.
    max_candidates (int): the most candidates per mention, best prior first.
    """
    return TitleCandidates(aliases=aliases, max_candidates=max_candidates)


# ------------------------------------------------------------------------------------ KBCandidates


class KBCandidates:
    """Candidates from the pipe's spaCy ``KnowledgeBase`` (``get_candidates_batch``), mapped to LUKE titles.

    A KB id is the LUKE title itself, or is mapped by a ``kb_id<TAB>title`` file (ids it does not
    list are used unchanged). Candidates whose title is not in the entity vocabulary are dropped
    (with a ``LukeUnknownEntityWarning``); priors are the KB's prior_prob renormalized over the
    kept candidates (uniform when they are all zero).
    """

    whole_vocabulary = False

    def __init__(self, mapping: Optional[str] = None, max_candidates: int = 30):
        self.max_candidates = _positive_int("max_candidates", max_candidates)
        self.mapping_path = _existing_file(mapping, "mapping")
        self._mapping: Optional[Dict[str, str]] = None
        self._lock = threading.Lock()

    @property
    def mapping(self) -> Dict[str, str]:
        if self._mapping is None:
            with self._lock:
                if self._mapping is None:
                    self._mapping = read_kb_mapping(self.mapping_path) if self.mapping_path is not None else {}
        return self._mapping

    def entity_titles(self, context: LinkContext) -> List[str]:
        """The vocabulary titles of the KB's entities (through the mapping)."""
        if context.kb is None:
            raise ValueError("prune_entities with KBCandidates needs the knowledge base: set a kb_loader in [initialize.components.NAME].")
        mapping = self.mapping
        return [title_for_kb_id(mapping.get(e, e), context.language) for e in context.kb.get_entity_strings()]

    def entity_id_of(self, kb_id: str, context: LinkContext) -> int:
        """The entity row of a KB id (through the mapping); -1 when the vocabulary lacks it."""
        title = self.mapping.get(kb_id, kb_id)
        return int(context.entity_vocab.get(title_for_kb_id(title, context.language), -1))

    def __call__(self, mentions: Sequence[Span], context: LinkContext) -> List[List[LinkCandidate]]:
        if context.kb is None:
            raise ValueError(
                "KBCandidates needs a knowledge base, and the entity linker has none: call "
                "linker.set_kb(...) or set a kb_loader in [initialize.components.NAME]."
            )
        mentions = list(mentions)
        if not mentions:
            return []
        mapping, vocab, language = self.mapping, context.entity_vocab, context.language
        unknown: Dict[str, None] = {}
        out: List[List[LinkCandidate]] = []
        kb = context.kb
        batch = kb.get_candidates_batch(mentions) if hasattr(kb, "get_candidates_batch") else [kb.get_candidates(m) for m in mentions]
        for found in batch:
            kept: Dict[str, Tuple[int, float]] = {}
            for candidate in found:
                kb_id = candidate.entity_
                if kb_id in kept:
                    continue
                title = mapping.get(kb_id, kb_id)
                row = vocab.get(title_for_kb_id(title, language))
                if row is None:
                    unknown[title] = None
                    continue
                kept[kb_id] = (row, max(float(candidate.prior_prob), 0.0))
            total = sum(prior for _, prior in kept.values())
            out.append(_ranked(
                (LinkCandidate(kb_id, row, prior / total if total > 0 else 1.0 / len(kept)) for kb_id, (row, prior) in kept.items()),
                self.max_candidates,
            ))
        if unknown:
            names = list(unknown)
            warnings.warn(
                f"KBCandidates: {len(names)} KB candidate title(s) are not in the checkpoint's entity vocabulary"
                f"{f' (language {language!r})' if language else ''} and were dropped (e.g. {_examples(names)}). "
                "Map KB ids to LUKE titles with a mapping file (kb_id<TAB>title), or build the KB with "
                "`python -m spacy_luke build-kb`.",
                LukeUnknownEntityWarning,
                stacklevel=2,
            )
        return out


@registry.misc("spacy-luke.KBCandidates.v1")
def kb_candidates(mapping: Optional[str] = None, max_candidates: int = 30) -> KBCandidates:
    """Candidates from the entity linker's spaCy KnowledgeBase (set with set_kb or a kb_loader).

    mapping (Optional[str]): a UTF-8 TSV file of kb_id<TAB>title lines (default: KB ids are LUKE titles).
    max_candidates (int): the most candidates per mention, best prior first.
    """
    return KBCandidates(mapping=mapping, max_candidates=max_candidates)


# ------------------------------------------------------------------------------------ AllEntitiesCandidates


class EntitySearch(NamedTuple):
    """What :class:`AllEntitiesCandidates` searches in one entity table, built once per table.

    kb_ids: searchable row -> the kb_id the pipe writes for it: the row's first title in the
        language (without its prefix). The special entities, rows with no title (in the
        language, for mLUKE) and rows outside the table are not searchable.
    top_k: the effective k: min(``top_k``, searchable rows), the k of the model's search and
        the length of every mention's candidate list.
    model_inputs: the searched rows as the model takes them, ``{"allowed_entity_ids": rows}`` or
        ``{"excluded_entity_ids": every other row}`` (int64, whichever is shorter).
    """

    kb_ids: Dict[int, str]
    top_k: int
    model_inputs: Dict[str, np.ndarray]


class AllEntitiesCandidates:
    """Every entity of the vocabulary (with a title in the pipe's language, for mLUKE): the pipe
    scores them all and keeps the ``top_k`` best (at most as many as there are)."""

    whole_vocabulary = True

    def __init__(self, top_k: int = 10):
        self.top_k = _positive_int("top_k", top_k)
        self.max_candidates = self.top_k
        self._lock = threading.Lock()

    def __call__(self, mentions: Sequence[Span], context: LinkContext) -> List[List[LinkCandidate]]:
        return [[] for _ in mentions]

    def entity_titles(self, context: LinkContext) -> List[str]:
        raise ValueError("prune_entities keeps the entities a KB or an alias file names; AllEntitiesCandidates searches them all.")

    def kb_id_of(self, title: str, language: Optional[str]) -> str:
        """The kb_id written for an entity-vocabulary title (the title without its language prefix)."""
        return kb_id_for_title(title, language)

    def search(self, context: LinkContext, n_rows: int) -> EntitySearch:
        """The :class:`EntitySearch` of ``context``'s vocabulary and language over a table of
        ``n_rows`` rows, built once per vocabulary, language and table size."""
        vocab, language, n_rows = context.entity_vocab, context.language, int(n_rows)
        return _built_once(self, vocab, (language, n_rows), lambda: self._build_search(vocab, language, n_rows))

    def _build_search(self, entity_vocab: Any, language: Optional[str], n_rows: int) -> EntitySearch:
        prefix = f"{language}:" if language else ""
        specials = {entity_vocab[name] for name in SPECIAL_ENTITIES if name in entity_vocab}
        kb_ids: Dict[int, str] = {}
        for title, row in entity_vocab.items():
            if title in SPECIAL_ENTITIES or row in specials or not 0 <= row < n_rows or not title.startswith(prefix):
                continue
            kb_ids.setdefault(row, title[len(prefix):])
        rows = np.array(sorted(kb_ids), dtype=np.int64)
        if len(rows) * 2 <= n_rows:
            model_inputs = {"allowed_entity_ids": rows}
        else:
            others = np.ones(n_rows, dtype=bool)
            others[rows] = False
            model_inputs = {"excluded_entity_ids": np.flatnonzero(others).astype(np.int64)}
        if not len(rows):
            _warn_nothing_to_search(entity_vocab, language)
        return EntitySearch(kb_ids, min(self.top_k, len(rows)), model_inputs)


def _warn_nothing_to_search(entity_vocab: Any, language: Optional[str]) -> None:
    if language:
        languages = sorted({t.split(":", 1)[0] for t in entity_vocab if ":" in t and t not in SPECIAL_ENTITIES})
        what = f"no entity with a title in language {language!r}"
        fix = (f"set the linker's `language` to one its titles have ({_examples(languages, 5)})" if languages
               else "set the linker's `language` to null (its titles have no language prefix)")
    else:
        what, fix = "no entity besides the special ones", "use a checkpoint with its full entity vocabulary (not a -lite one)"
    warnings.warn(
        f"AllEntitiesCandidates: the entity table has {what}, so no mention is linked (kb_id stays nil_id): {fix}.",
        LukeNoEntitiesWarning,
        stacklevel=6,  # the caller of AllEntitiesCandidates.search (through _built_once)
    )


@registry.misc("spacy-luke.AllEntitiesCandidates.v1")
def all_entities_candidates(top_k: int = 10) -> AllEntitiesCandidates:
    """Every entity of the checkpoint's vocabulary; the linker keeps the top_k most probable.

    top_k (int): how many entities to keep per mention (in Span._.luke_kb_scores); clamped to the number of entities (with a title in the pipe's language, for mLUKE) in the table.
    """
    return AllEntitiesCandidates(top_k=top_k)
