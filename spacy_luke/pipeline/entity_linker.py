"""``luke_entity_linker``: link entity mentions to LUKE's Wikipedia entities.

LUKE was pretrained to predict masked Wikipedia entities from their context. Each window's
mentions (``doc.ents``, or ``doc.spans[spans_key]``) go in together, in document order, as
[MASK] entities over their word pieces, exactly as transformers' ``LukeTokenizer(entity_spans=...,
entities=["[MASK]", ...])`` builds them; the pretraining head (``entity_predictions``) scores each
mention's candidate entities only (``entity_candidates``: a source under ``@misc``, see
``spacy_luke.pipeline._linker.entity_candidates``), never the whole table (unless the source is
``AllEntitiesCandidates``, whose top k is searched in chunks, among the rows that have a title
(in the pipe's language, for mLUKE), k clamped to the number of those rows).

- ``decoding = "local"``: one pass; every mention takes its best candidate.
- ``decoding = "global"`` (Yamada et al., 2022): after each pass, the unresolved mention whose
  best candidate is the most probable is fixed, its entity replaces its [MASK] in the input, and
  the window is scored again, until all are resolved (at most ``max_global_passes`` passes; the
  last pass resolves the rest).

A mention's probabilities are the softmax of its candidates' logits (times the priors,
renormalized, with ``incl_prior``). The best candidate's kb_id is written to ``span.kb_id_``
unless its probability is below ``threshold``; mentions with no candidate, or below the
threshold, get ``nil_id`` ("" by default). ``Span._.luke_kb_scores`` holds [(kb_id, probability),
...] best first. Mentions that already have a kb_id keep it (unless ``overwrite``) and are fed as
their entity when the vocabulary has it.
"""

import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Model

from ..layers.call_plan import ItemScores, empty_scores
from ..layers.head_layer import luke_shim
from ._shared.settings import TRAINABLE_SETTINGS, document_settings
from ._shared.extensions import install_linker_extensions
from ._linker.entity_candidates import CandidateSource, EntitySearch, LinkCandidate, LinkContext, title_for_kb_id
from ._linker.decoding import Mentions, candidate_loss, candidate_probabilities, decode_globally, write_links
from ._linker.kb import LinkerKB
from ._linker.no_candidates import warn_no_candidates
from ._shared.loaders import CheckpointLoader
from ._shared.items_pipe import ItemsPipe

DECODINGS = ("local", "global")

DEFAULT_LINKER_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntityDisambiguator.v1"
mixed_precision = false
"""
)["model"]
DEFAULT_CANDIDATES = {"@misc": "spacy-luke.TitleCandidates.v1"}

LINKER_SETTINGS = {
    **TRAINABLE_SETTINGS,
    "lite": False,
    "model": DEFAULT_LINKER_MODEL,
    "entity_candidates": DEFAULT_CANDIDATES,
    "candidates": None,  # entity_candidates' old name (deprecated): saved configs that use it still load
    "spans_key": None,
    "decoding": "local",
    "max_global_passes": 32,
    "incl_prior": True,
    "threshold": 0.0,
    "nil_id": "",
    "overwrite": False,
    "use_gold_ents": True,
    "prune_entities": False,
    "language": None,
    "max_entities_per_pass": 64,
    "scorer": {"@scorers": "spacy-luke.entity_linker_scorer.v1"},
}


@Language.factory("luke_entity_linker", assigns=["token.ent_kb_id", "span._.luke_kb_scores"], default_config=LINKER_SETTINGS)
@document_settings(LINKER_SETTINGS)
def make_luke_entity_linker(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    entity_candidates: CandidateSource,
    spans_key: Optional[str],
    decoding: str,
    max_global_passes: int,
    incl_prior: bool,
    threshold: float,
    nil_id: str,
    overwrite: bool,
    use_gold_ents: bool,
    prune_entities: bool,
    language: Optional[str],
    max_entities_per_pass: int,
    max_batch_cost: int,
    lite: bool,
    freeze_encoder: bool,
    scorer: Optional[Callable],
    precision: str = "float32",
    engine: str = "torch",
    candidates: Optional[Callable] = None,
) -> "LukeEntityLinker":
    """Link mentions to Wikipedia entities with LUKE's masked entity prediction.

    pretrained (Optional[str]): hub id or local folder of a LUKE / mLUKE checkpoint with its full entity vocabulary (e.g. studio-ousia/luke-base).
    entity_candidates (CandidateSource): where each mention's candidate entities come from (spacy-luke.TitleCandidates.v1, KBCandidates.v1, AllEntitiesCandidates.v1).
    spans_key (Optional[str]): link doc.spans[spans_key] instead of doc.ents.
    decoding (str): "local" (one pass) or "global" (fix the most confident mention, feed its entity, score again).
    max_global_passes (int): passes per window at most with global decoding; the last resolves every remaining mention.
    incl_prior (bool): multiply the model's probabilities by the candidates' priors (renormalized).
    threshold (float): below this best probability a mention gets nil_id.
    nil_id (str): the kb_id of mentions with no candidate or below the threshold.
    overwrite (bool): re-link mentions that already have a kb_id.
    use_gold_ents (bool): train on the reference's mentions (else on the predicted doc's).
    prune_entities (bool): at initialize, keep only the entities the candidates can name (the KB's, or the aliases file's) and the training data's gold ones; the smaller table is saved with the pipe.
    language (Optional[str]): mLUKE title prefix ("en"); default: the pipeline's language when the vocabulary has such titles.
    lite (bool): must stay false: linking needs the entity table.
    candidates (Optional[Callable]): deprecated: the old name of entity_candidates (a candidate source), used instead of it when set, with a DeprecationWarning.
    """
    return LukeEntityLinker(
        nlp.vocab, model, name, pretrained=pretrained, entity_candidates=entity_candidates, candidates=candidates,
        spans_key=spans_key, decoding=decoding, max_global_passes=max_global_passes, incl_prior=incl_prior,
        threshold=threshold, nil_id=nil_id, overwrite=overwrite, use_gold_ents=use_gold_ents,
        prune_entities=prune_entities, language=language, max_entities_per_pass=max_entities_per_pass,
        max_batch_cost=max_batch_cost, lite=lite, freeze_encoder=freeze_encoder, scorer=scorer,
        precision=precision, engine=engine, nlp_lang=nlp.lang,
    )


class LukeEntityLinker(ItemsPipe):
    head = "LukeForEntityDisambiguation"

    def __init__(
        self,
        vocab,
        model: Model,
        name: str = "luke_entity_linker",
        *,
        pretrained: Optional[str] = None,
        entity_candidates: Optional[CandidateSource] = None,
        decoding: str = "local",
        max_global_passes: int = 32,
        lite: bool = False,
        candidates: Optional[CandidateSource] = None,
        **settings: Any,
    ):
        if decoding not in DECODINGS:
            raise ValueError(f"[{name}] decoding={decoding!r}: choose one of {DECODINGS}.")
        if max_global_passes < 1:
            raise ValueError(f"[{name}] max_global_passes must be at least 1, got {max_global_passes}.")
        if lite:
            raise ValueError(f"[{name}] lite = true keeps only the special entities, and linking scores the entity table: set lite = false.")
        if candidates is not None:
            _warn_candidates_renamed(name, stacklevel=3)
            entity_candidates = candidates
        if entity_candidates is None:
            raise ValueError(f"[{name}] needs its entity_candidates (e.g. spacy-luke.TitleCandidates.v1).")
        super().__init__(vocab, model, name, pretrained=pretrained, decoding=decoding, max_global_passes=max_global_passes, lite=False, **settings)
        self.entity_candidates = entity_candidates
        self.kb = LinkerKB(vocab)
        self._language: Optional[str] = None
        install_linker_extensions()

    @property
    def candidates(self) -> CandidateSource:
        """Deprecated: the old name of :attr:`entity_candidates`."""
        _warn_candidates_renamed(self.name)
        return self.entity_candidates

    @candidates.setter
    def candidates(self, source: CandidateSource) -> None:
        _warn_candidates_renamed(self.name)
        self.entity_candidates = source

    # ------------------------------------------------------------------ weights and context

    @property
    def labels(self):
        return tuple()

    def _labels_of(self, config) -> List[str]:
        return []

    def _after_load(self, luke_model) -> None:
        vocab = self._tokenizer.entity_vocab
        language = self.cfg.get("language")
        if language is None:
            prefix = f"{self.cfg.get('nlp_lang', 'en')}:"
            language = prefix[:-1] if any(title.startswith(prefix) for title in vocab) else None
        self._language = language

    def context(self) -> LinkContext:
        """What the candidate source reads: the entity vocabulary, the title language, the KB."""
        self._ensure_loaded()
        return LinkContext(entity_vocab=self._tokenizer.entity_vocab, language=self._language, kb=self.kb.kb)

    def set_kb(self, kb: Any) -> None:
        """Use ``kb`` for KBCandidates: a KnowledgeBase, the folder of one (``build-kb``'s output), or a
        callable ``vocab -> KnowledgeBase`` (spaCy's kb_loader, e.g. ``spacy.KBFromFile.v1``)."""
        self.kb.set(kb)

    def _entity_row(self, kb_id: str, context: LinkContext) -> int:
        """The entity row of a kb_id (through the source's mapping when it has one); -1 if none."""
        if not kb_id or kb_id == self.cfg["nil_id"]:
            return -1
        of = getattr(self.entity_candidates, "entity_id_of", None)
        if of is not None:
            return int(of(kb_id, context))
        title = title_for_kb_id(kb_id, context.language)
        return int(context.entity_vocab[title]) if title in context.entity_vocab else -1

    def _entity_search(self, context: Optional[LinkContext] = None) -> EntitySearch:
        """What the whole-table search (``AllEntitiesCandidates``) searches in this table: the
        rows with a title in the language, their kb_ids, and the effective k (min(top_k, rows))
        that sizes both the model's search and the mentions' candidate lists."""
        context = context if context is not None else self.context()
        return self.entity_candidates.search(context, int(self.luke_model.entity_table.shape[0]))

    # ------------------------------------------------------------------ items

    def _mention_spans(self, doc: Doc) -> List[Span]:
        key = self.cfg["spans_key"]
        return list(doc.spans[key]) if key is not None and key in doc.spans else ([] if key is not None else list(doc.ents))

    def _mentions(self, doc: Doc, spans: List[Span], context: LinkContext, gold: Optional[List[str]] = None) -> Mentions:
        offsets = np.array([(s.start, s.end) for s in spans], dtype=np.int64).reshape(-1, 2)
        known = np.full(len(spans), -1, dtype=np.int64)
        to_link = list(range(len(spans)))
        if gold is None and not self.cfg["overwrite"]:
            to_link = [i for i, s in enumerate(spans) if not s.kb_id_]
            for i, s in enumerate(spans):
                if s.kb_id_:
                    row = self._entity_row(s.kb_id_, context)
                    known[i] = row if row >= 0 else self._tokenizer.entity_mask_token_id
        candidates: List[List[LinkCandidate]] = [[] for _ in spans]
        if to_link and not self.entity_candidates.whole_vocabulary:
            found = self.entity_candidates([spans[i] for i in to_link], context)
            for i, cands in zip(to_link, found):
                candidates[i] = list(cands)
        search_inputs = None
        if to_link and self.entity_candidates.whole_vocabulary:
            search = self._entity_search(context)
            search_inputs = {"top_k": np.array(search.top_k, dtype=np.int64), **search.model_inputs}
            for i in to_link:
                candidates[i] = [LinkCandidate("", -1, 1.0)] * search.top_k  # rows come from the model's search
        mentions = Mentions(offsets, candidates, known, search_inputs=search_inputs)
        if gold is not None:
            mentions.gold = gold
            mentions.gold_rows = np.array([self._entity_row(g, context) for g in gold], dtype=np.int64)
            for i, row in enumerate(mentions.gold_rows.tolist()):
                if row >= 0 and all(c.entity_id != row for c in candidates[i]):
                    candidates[i].append(LinkCandidate(gold[i], row, 0.0))  # training: the gold is always a candidate
        return mentions

    def _items(self, docs: Sequence[Doc]) -> List[Mentions]:
        context = self.context()
        return [self._mentions(doc, self._mention_spans(doc), context) for doc in docs]

    def _training_items(self, examples: Sequence[Example]) -> List[Mentions]:
        if self.entity_candidates.whole_vocabulary:
            raise ValueError(
                f"[{self.name}] training needs candidate lists: use spacy-luke.TitleCandidates.v1 or "
                "spacy-luke.KBCandidates.v1 as `entity_candidates` while training (AllEntitiesCandidates only predicts)."
            )
        context = self.context()
        items = []
        for eg in examples:
            predicted = eg.predicted
            if self.cfg["use_gold_ents"]:
                reference = list(eg.reference.ents)
                aligned = eg.get_aligned_spans_y2x(reference, allow_overlap=True)
                by_offset = {(r.start_char, r.end_char): r.kb_id_ for r in reference}
                spans = list(aligned)
                gold = [by_offset.get((s.start_char, s.end_char), "") for s in spans]
            else:
                spans = self._mention_spans(predicted)
                gold_spans = eg.get_aligned_spans_y2x(list(eg.reference.ents), allow_overlap=True)
                by_offset = {(g.start, g.end): g for g in gold_spans}
                gold = [by_offset[(s.start, s.end)].kb_id_ if (s.start, s.end) in by_offset else "" for s in spans]
                gold = [g if g else "" for g in gold]
            items.append(self._mentions(predicted, spans, context, gold=gold))
        return items

    # ------------------------------------------------------------------ predict

    def predict(self, docs: Iterable[Doc]) -> List[ItemScores]:
        docs = list(docs)
        if not any(len(self._mention_spans(doc)) for doc in docs):
            return empty_scores([Mentions(np.zeros((0, 2), dtype=np.int64)) for _ in docs], 0)
        mentions = self._items(docs)
        if not any(m.linkable().any() for m in mentions):  # nothing to link (no candidates, or kb_ids kept)
            self._warn_if_no_candidates(docs, mentions)
            return empty_scores(mentions, 0)
        if self.cfg["decoding"] == "local":
            return self.model.predict((docs, mentions))
        return decode_globally(self.model, docs, mentions, self._best, self.cfg["max_global_passes"])

    def _warn_if_no_candidates(self, docs: List[Doc], mentions: List[Mentions]) -> None:
        """Once per pipe: warn when mentions to link (no kb_id kept) had no candidate at all."""
        texts = [doc[int(s):int(e)].text for doc, m in zip(docs, mentions) for (s, e), row in zip(m.spans, m.entity_rows) if row < 0]
        if texts and not getattr(self, "_warned_no_candidates", False):
            self._warned_no_candidates = True
            warn_no_candidates(self.name, self.entity_candidates, self.context(), texts)

    def _ranked(self, mentions: Mentions, item: int, logits: np.ndarray, rows: np.ndarray):
        """[(entity row, kb_id, probability)] of a scored mention, best first."""
        cands = mentions.candidates[item]
        count = len(cands)
        whole = self.entity_candidates.whole_vocabulary
        priors = None if whole else [c.prior for c in cands]
        probs = candidate_probabilities(logits[:count], priors, self.cfg["incl_prior"])
        if whole:
            found = self._entity_search().kb_ids
            kb_ids = [found.get(int(r), "") for r in rows[:count]]
        else:
            kb_ids = [c.kb_id for c in cands]
        order = sorted(range(count), key=lambda j: -probs[j])
        return [(int(rows[j]), kb_ids[j], float(probs[j])) for j in order]

    def _best(self, mentions: Mentions, item: int, logits: np.ndarray, rows: np.ndarray):
        row, _, prob = self._ranked(mentions, item, logits, rows)[0]
        return row, prob

    # ------------------------------------------------------------------ annotate

    def set_annotations(self, docs: Iterable[Doc], scores: List[ItemScores]) -> None:
        for doc, doc_scores in zip(docs, scores):
            mentions, scored = doc_scores.items, doc_scores.scored
            if not len(mentions):
                continue
            linked: Dict[tuple, tuple] = {}
            for i in np.flatnonzero(scored & mentions.linkable()).tolist():
                ranked = self._ranked(mentions, i, doc_scores.values[i], doc_scores.ids[i])
                kb_scores = [(kb_id, p) for _, kb_id, p in ranked]
                best_kb, best_p = kb_scores[0]
                kb_id = best_kb if best_p >= self.cfg["threshold"] and best_kb else self.cfg["nil_id"]
                linked[tuple(mentions.spans[i].tolist())] = (kb_id, kb_scores)
            for i in np.flatnonzero(mentions.counts == 0).tolist():
                if mentions.known_rows is None or mentions.known_rows[i] < 0:
                    linked.setdefault(tuple(mentions.spans[i].tolist()), (self.cfg["nil_id"], []))
            write_links(doc, linked, self.cfg["spans_key"])

    # ------------------------------------------------------------------ training

    def _targets(self, example: Example, mentions: Mentions) -> np.ndarray:
        return mentions.gold_rows if mentions.gold_rows is not None else np.full(len(mentions), -1, dtype=np.int64)

    def _loss(self, scores: ItemScores, targets: np.ndarray, normalizer: int):
        pad_row = self._tokenizer.entity_vocab.special_id("[PAD]")
        return candidate_loss(scores.values, scores.ids, targets, pad_row, normalizer, scores.scored)

    def _n_counted(self, targets: np.ndarray, scored: np.ndarray) -> int:
        return int(((targets >= 0) & scored).sum())

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        kb_loader: Optional[Callable] = None,
        loader: Optional[CheckpointLoader] = None,
    ) -> None:
        """Load the weights (from ``loader`` or ``pretrained``) and, with ``kb_loader``, the KB
        (e.g. ``spacy.KBFromFile.v1``), as spaCy's entity_linker does."""
        self._load(self._checkpoint_to_initialize(loader))
        if kb_loader is not None:
            self.set_kb(kb_loader)
        if self.cfg["prune_entities"]:
            self.prune_entities(get_examples)

    def prune_entities(self, get_examples: Optional[Callable[[], Iterable[Example]]] = None) -> int:
        """Keep only the entities the candidate source can name and the gold entities of
        ``get_examples`` (LUKE's white list for entity disambiguation); returns the rows kept."""
        context = self.context()
        titles = list(self.entity_candidates.entity_titles(context))
        for eg in (get_examples() if get_examples is not None else []):
            titles.extend(title_for_kb_id(e.kb_id_, context.language) for e in eg.reference.ents if e.kb_id_)
        kept = luke_shim(self.model).keep_entities(titles)
        self._after_load(self.luke_model)
        return kept

    # ------------------------------------------------------------------ serialization (+ the KB)

    def to_disk(self, path, *, exclude: Iterable[str] = tuple()) -> None:
        super().to_disk(path, exclude=exclude)
        self.kb.to_disk(path, exclude)

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "LukeEntityLinker":
        super().from_disk(path, exclude=exclude)
        self.kb.from_disk(path, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return self.kb.wrap_bytes(super().to_bytes(exclude=exclude), exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "LukeEntityLinker":
        pipe_bytes = self.kb.unwrap_bytes(bytes_data, exclude)
        return super().from_bytes(pipe_bytes, exclude=exclude)


@registry.scorers("spacy-luke.entity_linker_scorer.v1")
def make_entity_linker_scorer() -> Callable:
    """Entity linking P/R/F (``nel_micro_p/r/f``, Scorer.score_links); gold nil_id links are not counted."""

    def score(examples: Iterable[Example], *, nil_id: str = "", **kwargs) -> Dict[str, Any]:
        return Scorer.score_links(examples, negative_labels=[nil_id] if nil_id else [])

    return score


def _warn_candidates_renamed(pipe_name: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"[{pipe_name}] the linker's `candidates` is now `entity_candidates` (the span suggesters of the other "
        f"pipes are `candidates`): rename it in the config ([components.{pipe_name}.entity_candidates]) or code; "
        "the old name will go in a later version.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
