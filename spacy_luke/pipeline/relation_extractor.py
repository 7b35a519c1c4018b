"""``luke_relation_extractor``: relation extraction with LUKE's entity pair classification head (TACRED style).

Pairs: every ordered pair (head, tail) of distinct, non-overlapping spans of ``doc.ents`` (or of
the ``candidates`` suggester) within ``max_pair_distance`` tokens of each other (default: in
the same sentence; the whole doc when it has no sentence boundaries). Each pair is one model
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

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Model

from .candidates import Suggester, sentence_bounds
from .extensions import install_relation_extensions
from .marked import Item, MarkedItemsPipe, cross_entropy, doc_spans, prf, softmax
from .relations import relation_record, sort_relations

DEFAULT_RELATION_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntityPairClassifier.v1"
mixed_precision = false
"""
)["model"]


@Language.factory(
    "luke_relation_extractor",
    assigns=["doc._.luke_relations"],
    default_config={
        "model": DEFAULT_RELATION_MODEL,
        "pretrained": None,
        "candidates": None,
        "max_pair_distance": None,
        "negative_label": "no_relation",
        "threshold": 0.0,
        "use_gold_ents": True,
        "max_batch_cost": 16384,
        "lite": True,
        "freeze_encoder": False,
        "scorer": {"@scorers": "spacy-luke.relation_scorer.v1"},
    },
    default_score_weights={"rel_micro_f": 1.0, "rel_micro_p": 0.0, "rel_micro_r": 0.0},
)
def make_luke_relation_extractor(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    candidates: Optional[Suggester],
    max_pair_distance: Optional[int],
    negative_label: str,
    threshold: float,
    use_gold_ents: bool,
    max_batch_cost: int,
    lite: bool,
    freeze_encoder: bool,
    scorer: Optional[Callable],
) -> "LukeRelationExtractor":
    """LUKE relation extraction (entity pair classification).

    model (Model): the LUKE entity pair classifier architecture (spacy-luke.EntityPairClassifier.v1).
    pretrained (Optional[str]): hub id or local folder of a LUKE checkpoint; labels come from its id2label.
    candidates (Optional[Suggester]): the entities to pair; default: doc.ents.
    max_pair_distance (Optional[int]): most tokens between head and tail; default (null): both in the same sentence.
    negative_label (str): the label meaning "no relation" (never written).
    threshold (float): the lowest softmax probability of a written relation.
    use_gold_ents (bool): training: pair the reference's entities (else the predicted doc's).
    max_batch_cost (int): padded (word pieces + entity slots) x batch size per forward pass.
    lite (bool): keep only the special entities of the entity table (relations use [MASK]/[MASK2] only).
    freeze_encoder (bool): train only the classification head.
    scorer (Optional[Callable]): the scoring function.
    """
    return LukeRelationExtractor(
        nlp.vocab,
        model,
        name,
        pretrained=pretrained,
        candidates=candidates,
        max_pair_distance=max_pair_distance,
        negative_label=negative_label,
        threshold=threshold,
        use_gold_ents=use_gold_ents,
        max_batch_cost=max_batch_cost,
        lite=lite,
        freeze_encoder=freeze_encoder,
        scorer=scorer,
    )


def entity_pairs(doc: Doc, spans: np.ndarray, max_pair_distance: Optional[int]) -> List[Item]:
    """Ordered pairs of distinct, disjoint ``spans`` (token offsets) allowed by the distance rule."""
    spans = [(int(s), int(e)) for s, e in sorted(set(map(tuple, np.asarray(spans).reshape(-1, 2).tolist())))]
    if len(spans) < 2:
        return []
    if max_pair_distance is None:
        bounds = sentence_bounds(doc)
        ends = np.asarray([e for _, e in bounds], dtype=np.int64)
        sent = [(int(np.searchsorted(ends, s, side="right")), int(np.searchsorted(ends, e - 1, side="right"))) for s, e in spans]
    pairs = []
    for i, head in enumerate(spans):
        for j, tail in enumerate(spans):
            if i == j or (head[0] < tail[1] and tail[0] < head[1]):
                continue
            if max_pair_distance is None:
                if sent[i][0] != sent[i][1] or sent[i] != sent[j]:
                    continue
            elif max(head[0], tail[0]) - min(head[1], tail[1]) > max_pair_distance:
                continue
            pairs.append((head, tail))
    return pairs


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
        max_pair_distance: Optional[int] = None,
        negative_label: str = "no_relation",
        threshold: float = 0.0,
        use_gold_ents: bool = True,
        **settings: Any,
    ):
        if max_pair_distance is not None and max_pair_distance < 0:
            raise ValueError(f"[{name}] max_pair_distance must be >= 0 tokens (or null: same sentence), got {max_pair_distance}.")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[{name}] threshold must be a probability in [0, 1], got {threshold}.")
        super().__init__(
            vocab,
            model,
            name,
            pretrained=pretrained,
            candidates=candidates,
            max_pair_distance=max_pair_distance,
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

    def _pairs(self, docs: Sequence[Doc]) -> List[List[Item]]:
        spans = doc_spans(self.name, self.candidates, docs)
        if any(len(doc) for doc in docs) and not any(len(s) for s in spans):
            self._warn_once(
                "no-entities",
                "found no entities to relate: put an NER component (luke_ner, ner) before it, or set `candidates`. "
                "Doc._.luke_relations stays empty.",
            )
        return [entity_pairs(doc, s, self.cfg["max_pair_distance"]) for doc, s in zip(docs, spans)]

    def predict(self, docs: Iterable[Doc]) -> List[Tuple[List[Item], np.ndarray, np.ndarray]]:
        """Per doc: the pairs, their logits and whether each was scored."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [([], np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=bool)) for _ in docs]
        pairs = self._pairs(docs)
        if not any(pairs):
            return [([], np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=bool)) for _ in docs]
        self._ensure_loaded()
        logits, scored = self._logits(docs, pairs)
        return list(zip(pairs, logits, scored))

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

    def _training_items(self, example: Example) -> Tuple[List[Item], np.ndarray]:
        reference, predicted = example.reference, example.predicted
        gold = {(tuple(r["head"]), tuple(r["tail"])): r["label"] for r in reference._.luke_relations or []}
        label2id = {label: i for i, label in enumerate(self._id2label)}
        negative = self.cfg["negative_label"]
        if negative not in label2id:
            raise ValueError(f"[{self.name}] the labels {self._id2label} lack the negative label {negative!r}: train with it.")
        if self.cfg["use_gold_ents"]:
            offsets = {(e.start_char, e.end_char) for e in reference.ents}
            for head, tail in gold:
                offsets.update([head, tail])
            spans = []
            for start_char, end_char in sorted(offsets):
                span = predicted.char_span(start_char, end_char, alignment_mode="expand")
                if span is not None and len(span):
                    spans.append((span.start, span.end))
            spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        else:
            spans = doc_spans(self.name, self.candidates, [predicted])[0]
        items = entity_pairs(predicted, spans, self.cfg["max_pair_distance"])
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
        return items, np.asarray(targets, dtype=np.int64)

    def _loss(self, logits: np.ndarray, targets: np.ndarray, normalizer: int):
        return cross_entropy(logits, targets, normalizer)


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
