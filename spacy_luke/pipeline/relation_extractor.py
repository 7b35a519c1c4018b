"""``luke_relation_extractor``: relation extraction with LUKE's entity pair classification head (TACRED style).

Pairs: every ordered pair (head, tail) of distinct, non-overlapping spans of ``doc.ents`` (or of
the ``candidates`` suggester) in the same sentence (``same_sentence``; the whole doc when it has no
sentence boundaries) and at most ``max_pair_distance`` tokens apart (default 50), at most
``max_pairs_per_sentence`` (default 1,000) per sentence of the head: over it, the pairs nearest in
entity order are kept and a warning says so, so the cost stays linear in the text. Each pair is one model
input, as ``LukeTokenizer(task="entity_pair_classification")`` builds it: ``<ent>`` around the
head, ``<ent2>`` around the tail, the [MASK] and [MASK2] entities over them.

Decision rule: the argmax label, unless it is ``negative_label`` (default ``"no_relation"``) or
its softmax probability is below ``threshold`` (default 0.0). Directional labels such as
``per:employee_of(e1,e2)`` are plain labels: the pair is ordered, the head is e1.

Writes ``Doc._.luke_relations`` = ``[{"head": [start_char, end_char], "tail": [...],
"label": str, "score": float}, ...]`` sorted by head then tail; ``spacy_luke.get_relations(doc)``
gives ``(head Span, tail Span, label, score)``.

Training reads gold relations from the reference docs' ``Doc._.luke_relations`` (pairs not
listed are ``negative_label``). With ``use_gold_ents`` (default) the pairs trained on come from
the reference entities (``doc.ents`` and every relation argument); otherwise from the
predicted doc (entities of an upstream component in ``[training] annotating_components``).
"""

import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Model

from ..layers.doc_pieces import sentence_bounds
from ._shared.suggesters import Suggester
from ._shared.extensions import install_relation_extensions
from ._shared.losses import cross_entropy, prf, softmax
from ._shared.settings import TRAINABLE_SETTINGS, document_settings
from ..layers.kb_inputs import check_kb_inputs
from ._shared.marked import Item, MarkedItemsPipe, doc_spans
from ._relations.records import relation_record, sort_relations

#: The default ``max_pair_distance``, in tokens: above typical sentence lengths (TACRED's sentences
#: average 36 tokens), so a split text keeps every in-sentence pair, while an unsplit one pairs each
#: entity only with its neighbours.
DEFAULT_MAX_PAIR_DISTANCE = 50


DEFAULT_RELATION_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntityPairClassifier.v1"
mixed_precision = false
"""
)["model"]


RELATION_SETTINGS = {
    **TRAINABLE_SETTINGS,
    "model": DEFAULT_RELATION_MODEL,
    "candidates": None,
    "same_sentence": True,
    "max_pair_distance": DEFAULT_MAX_PAIR_DISTANCE,
    "max_pairs_per_sentence": 1000,
    "negative_label": "no_relation",
    "threshold": 0.0,
    "use_gold_ents": True,
    "use_kb_ids": False,
    "lite": None,
    "scorer": {"@scorers": "spacy-luke.relation_scorer.v1"},
}


@Language.factory(
    "luke_relation_extractor",
    assigns=["doc._.luke_relations"],
    default_config=RELATION_SETTINGS,
    default_score_weights={"rel_micro_f": 1.0, "rel_micro_p": 0.0, "rel_micro_r": 0.0},
)
@document_settings(RELATION_SETTINGS, lite="kb_ids")
def make_luke_relation_extractor(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    candidates: Optional[Suggester],
    same_sentence: bool,
    max_pair_distance: Optional[int],
    max_pairs_per_sentence: Optional[int],
    negative_label: str,
    threshold: float,
    use_gold_ents: bool,
    use_kb_ids: bool,
    max_batch_cost: int,
    lite: Optional[bool],
    freeze_encoder: bool,
    scorer: Optional[Callable],
    precision: str = "float32",
    engine: str = "torch",
) -> "LukeRelationExtractor":
    """LUKE relation extraction (entity pair classification).

    candidates (Optional[Suggester]): the entities to pair; default: doc.ents.
    same_sentence (bool): pair only entities of the same sentence (a doc without sentence boundaries is one sentence); false: across sentences too.
    max_pair_distance (Optional[int]): most tokens between head and tail (default 50; null: no limit). Each pair is one model input over its sentence, so this bounds the cost of long sentences and of texts without sentence boundaries: every entity pairs with at most the entities within this many tokens, so the pairs grow with the text's length, not its square.
    max_pairs_per_sentence (Optional[int]): most pairs scored per sentence of the head (each pair is one model input); over it, the pairs nearest in entity order are kept, with a warning. null: no cap (cost grows with the square of a sentence's entities).
    negative_label (str): the label meaning "no relation" (never written).
    threshold (float): the lowest softmax probability of a written relation.
    use_gold_ents (bool): training: pair the reference's entities (else the predicted doc's).
    use_kb_ids (bool): input a head / tail whose kb_id_ is an entity-vocabulary title (e.g. from luke_entity_linker) as that Wikipedia entity instead of [MASK] / [MASK2].
    """
    return LukeRelationExtractor(
        nlp.vocab, model, name, pretrained=pretrained, candidates=candidates, same_sentence=same_sentence,
        max_pair_distance=max_pair_distance, max_pairs_per_sentence=max_pairs_per_sentence,
        negative_label=negative_label, threshold=threshold, use_gold_ents=use_gold_ents, use_kb_ids=use_kb_ids,
        max_batch_cost=max_batch_cost, lite=check_kb_inputs(name, use_kb_ids, lite), freeze_encoder=freeze_encoder,
        scorer=scorer, precision=precision, engine=engine, lang=nlp.lang,
    )


class LukePairCapWarning(UserWarning):
    """luke_relation_extractor scored only some pairs of a sentence (``max_pairs_per_sentence``)."""


def entity_pairs(
    doc: Doc,
    spans: np.ndarray,
    max_pair_distance: Optional[int],
    max_pairs_per_sentence: Optional[int] = None,
    cut: Optional[List[Tuple[int, int]]] = None,
    same_sentence: Optional[bool] = None,
) -> List[Item]:
    """Ordered pairs of distinct, disjoint ``spans`` (token offsets) allowed by the pairing rules.

    ``same_sentence``: both spans in one sentence (a span crossing a sentence boundary pairs with
    nothing); None: only when ``max_pair_distance`` is None. ``max_pair_distance``: at most that
    many tokens apart (None: no limit). ``max_pairs_per_sentence``: the most pairs whose head lies in one sentence; over it,
    the pairs nearest in entity order are kept (every pair of neighbouring entities, then those
    one entity apart, ...), and ``(sentence start, number of entities)`` is appended to ``cut``.
    Returns the pairs sorted by (head, tail). The work grows with the pairs kept, never with
    all pairs of a long sentence.
    """
    unique = sorted(set(map(tuple, np.asarray(spans, dtype=np.int64).reshape(-1, 2).tolist())))
    n = len(unique)
    if n < 2:
        return []
    starts, ends = (np.asarray(x, dtype=np.int64) for x in zip(*unique))
    bounds = np.asarray(sentence_bounds(doc), dtype=np.int64).reshape(-1, 2)
    sentence = np.searchsorted(bounds[:, 1], starts, side="right")
    if same_sentence is None:
        same_sentence = max_pair_distance is None
    valid = np.ones(n, dtype=bool)
    if same_sentence:  # a span crossing a sentence boundary pairs with nothing
        valid = sentence == np.searchsorted(bounds[:, 1], ends - 1, side="right")
    cap = max_pairs_per_sentence if max_pairs_per_sentence is not None else n * (n - 1)
    n_groups = int(sentence.max()) + 1
    taken = np.zeros(n_groups, dtype=np.int64)
    over = np.zeros(n_groups, dtype=bool)  # the sentence had more pairs than the cap
    group_size = np.bincount(sentence, minlength=n_groups)
    heads: List[np.ndarray] = []
    tails: List[np.ndarray] = []
    for k in range(1, n):
        a = np.arange(n - k)
        b = a + k  # b after a in (start, end) order
        gap = starts[b] - ends[a]
        ok = (gap >= 0) & valid[a] & valid[b]  # gap < 0: overlapping spans never pair
        if same_sentence:
            ok &= sentence[a] == sentence[b]
        if max_pair_distance is not None:
            ok &= gap <= max_pair_distance
        # Forward (a -> b) and backward (b -> a) pairs, in order; each counts for its head's sentence.
        h = np.stack([a[ok], b[ok]], axis=1).reshape(-1)
        t = np.stack([b[ok], a[ok]], axis=1).reshape(-1)
        if len(h):
            group = sentence[h]
            rank = _rank_within(group) + taken[group]
            keep = rank < cap
            heads.append(h[keep])
            tails.append(t[keep])
            taken += np.bincount(group[keep], minlength=n_groups)
            over[group[~keep]] = True
        searching = ~over & (group_size > 0)  # a full sentence still looks for one more pair, to tell
        if not searching.any():
            break
        if same_sentence and not (searching & (group_size > k + 1)).any():
            break  # a sentence's spans are consecutive in order: none has a pair k + 1 apart
        if max_pair_distance is not None and gap.min() > max_pair_distance:
            break  # starts only grow with k: no later pair is near enough
    if cut is not None:
        cut.extend((int(bounds[g, 0]), int(group_size[g])) for g in np.flatnonzero(over))
    if not heads:
        return []
    h, t = np.concatenate(heads), np.concatenate(tails)
    order = np.lexsort((ends[t], starts[t], ends[h], starts[h]))
    return [((int(starts[i]), int(ends[i])), (int(starts[j]), int(ends[j]))) for i, j in zip(h[order], t[order])]


def _rank_within(group: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements have the same group value."""
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    first = np.concatenate([[0], np.flatnonzero(np.diff(sorted_groups)) + 1])
    counts = np.diff(np.concatenate([first, [len(group)]]))
    rank_sorted = np.arange(len(group)) - np.repeat(first, counts)
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


class LukeRelationExtractor(MarkedItemsPipe):
    head = "LukeForEntityPairClassification"
    n_markers = 2

    def __init__(
        self,
        vocab,
        model: Model,
        name: str = "luke_relation_extractor",
        *,
        pretrained: Optional[str] = None,
        candidates: Optional[Suggester] = None,
        same_sentence: bool = True,
        max_pair_distance: Optional[int] = DEFAULT_MAX_PAIR_DISTANCE,
        max_pairs_per_sentence: Optional[int] = 1000,
        negative_label: str = "no_relation",
        threshold: float = 0.0,
        use_gold_ents: bool = True,
        **settings: Any,
    ):
        if max_pair_distance is not None and max_pair_distance < 0:
            raise ValueError(f"[{name}] max_pair_distance must be >= 0 tokens (or null: no limit), got {max_pair_distance}.")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[{name}] threshold must be a probability in [0, 1], got {threshold}.")
        if max_pairs_per_sentence is not None and max_pairs_per_sentence < 1:
            raise ValueError(f"[{name}] max_pairs_per_sentence must be at least 1 (or null: no cap), got {max_pairs_per_sentence}.")
        super().__init__(
            vocab,
            model,
            name,
            pretrained=pretrained,
            candidates=candidates,
            same_sentence=bool(same_sentence),
            max_pair_distance=max_pair_distance,
            max_pairs_per_sentence=max_pairs_per_sentence,
            negative_label=negative_label,
            threshold=threshold,
            use_gold_ents=use_gold_ents,
            **settings,
        )
        install_relation_extensions()

    def _after_load(self, luke_model) -> None:
        super()._after_load(luke_model)
        if self.cfg["negative_label"] not in self._id2label:
            self._warn_once(
                "no-negative",
                f"the checkpoint's labels {self._id2label} lack the negative label {self.cfg['negative_label']!r}: "
                "every pair gets a relation. Set `negative_label` to the checkpoint's no-relation class.",
            )

    # ------------------------------------------------------------------ predict / annotate

    def _items(self, docs: Sequence[Doc]) -> List[List[Item]]:
        """The entity pairs of each doc (``doc.ents`` or the ``candidates`` suggester's spans)."""
        spans = doc_spans(self.name, self.candidates, docs)
        if any(len(doc) for doc in docs) and not any(len(s) for s in spans):
            self._warn_once(
                "no-entities",
                "found no entities to relate: put an NER component (luke_ner, ner) before it, or set `candidates`. "
                "Doc._.luke_relations stays empty.",
            )
        return [self._doc_pairs(doc, s) for doc, s in zip(docs, spans)]

    def _doc_pairs(self, doc: Doc, spans: np.ndarray) -> List[Item]:
        """:func:`entity_pairs` under the pipe's rules; warns when ``max_pairs_per_sentence`` cuts."""
        cap = self.cfg.get("max_pairs_per_sentence")
        cut: List[Tuple[int, int]] = []
        pairs = entity_pairs(doc, spans, self.cfg["max_pair_distance"], cap, cut, self.cfg.get("same_sentence", True))
        if cut:
            start, n_entities = max(cut, key=lambda c: c[1])
            warnings.warn(
                f"[{self.name}] {len(cut)} sentence(s) of the doc {doc.text[:40]!r} have more than "
                f"max_pairs_per_sentence={cap} entity pairs (the largest, at token {start}, has {n_entities} entities): "
                "only the pairs nearest in entity order are scored. Split the text into sentences (e.g. a sentencizer), "
                "set max_pair_distance, or raise max_pairs_per_sentence.",
                LukePairCapWarning,
                stacklevel=3,
            )
        return pairs

    def decode(self, logits: np.ndarray) -> List[Optional[Tuple[str, float]]]:
        """``(label, probability)`` per row, or None for the negative label / under the threshold."""
        if len(logits) == 0:
            return []
        probs = softmax(logits.astype(np.float64))
        best = probs.argmax(axis=1)
        out = []
        for i, b in enumerate(best.tolist()):
            label, prob = self._id2label[b], float(probs[i, b])
            out.append(None if label == self.cfg["negative_label"] or prob < self.cfg["threshold"] else (label, prob))
        return out

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        for doc, (pairs, logits, scored) in zip(docs, predictions):
            relations = []
            rows = np.flatnonzero(scored)
            for k, decided in zip(rows.tolist(), self.decode(logits[rows])):
                if decided is not None:
                    (hs, he), (ts, te) = pairs[k]
                    relations.append(relation_record(doc[hs:he], doc[ts:te], decided[0], decided[1]))
            doc._.luke_relations = sort_relations(relations)

    # ------------------------------------------------------------------ training

    def _labels_in(self, examples: Iterable[Example]) -> List[str]:
        found = set()
        for eg in examples:
            found.update(r["label"] for r in eg.reference._.luke_relations or [])
        return sorted(found)

    def _with_fixed_labels(self, labels: List[str]) -> List[str]:
        negative = self.cfg["negative_label"]
        if labels and negative not in labels:
            labels = [negative] + labels
        return labels

    def _training_items(self, examples: Sequence[Example]) -> List[List[Item]]:
        return [self._training_pairs(eg) for eg in examples]

    def _training_pairs(self, example: Example) -> List[Item]:
        """The pairs of ``example.predicted`` to train on (of the reference entities with ``use_gold_ents``)."""
        reference, predicted = example.reference, example.predicted
        if self.cfg["use_gold_ents"]:
            offsets = {(e.start_char, e.end_char) for e in reference.ents}
            for relation in reference._.luke_relations or []:
                offsets.update([tuple(relation["head"]), tuple(relation["tail"])])
            spans = []
            for start_char, end_char in sorted(offsets):
                span = predicted.char_span(start_char, end_char, alignment_mode="expand")
                if span is not None and len(span):
                    spans.append((span.start, span.end))
            spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        else:
            spans = doc_spans(self.name, self.candidates, [predicted])[0]
        return self._doc_pairs(predicted, spans)

    def _targets(self, example: Example, items: List[Item]) -> np.ndarray:
        """The gold label of each pair (``negative_label`` for pairs the reference does not relate)."""
        predicted = example.predicted
        gold = {(tuple(r["head"]), tuple(r["tail"])): r["label"] for r in example.reference._.luke_relations or []}
        label2id = {label: i for i, label in enumerate(self._id2label)}
        negative = self.cfg["negative_label"]
        if negative not in label2id:
            raise ValueError(f"[{self.name}] the labels {self._id2label} lack the negative label {negative!r}: train with it.")
        targets = []
        for (hs, he), (ts, te) in items:
            head, tail = predicted[hs:he], predicted[ts:te]
            label = gold.get(((head.start_char, head.end_char), (tail.start_char, tail.end_char)), negative)
            if label not in label2id:
                raise ValueError(
                    f"[{self.name}] the training data has the relation {label!r}, which the pipe does not have "
                    f"({self.labels}). Add it before nlp.initialize() or pass all labels to initialize."
                )
            targets.append(label2id[label])
        return np.asarray(targets, dtype=np.int64)

    def _loss(self, scores, targets: np.ndarray, normalizer: int):
        return cross_entropy(scores.values, targets, normalizer, scores.scored)


@registry.scorers("spacy-luke.relation_scorer.v1")
def make_relation_scorer() -> Callable:
    """Micro P/R/F of (head, tail, label) over Doc._.luke_relations, without the negative label (``rel_micro_p/r/f``)."""
    install_relation_extensions()

    def score(examples: Iterable[Example], *, negative_label: str = "no_relation", **kwargs) -> Dict[str, Any]:
        tp = n_pred = n_gold = 0
        for eg in examples:
            def keyed(doc):
                return {
                    (tuple(r["head"]), tuple(r["tail"]), r["label"])
                    for r in (doc._.luke_relations or [])
                    if r["label"] != negative_label
                }

            gold, pred = keyed(eg.reference), keyed(eg.predicted)
            tp += len(gold & pred)
            n_pred += len(pred)
            n_gold += len(gold)
        p, r, f = prf(tp, n_pred, n_gold)
        return {"rel_micro_p": p, "rel_micro_r": r, "rel_micro_f": f}

    return score
