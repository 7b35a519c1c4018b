"""``luke_entity_typer``: entity typing with LUKE's entity classification head (Open Entity style).

Each span (``doc.ents`` by default, or the ``candidates`` suggester's spans) is one model
input: ``<ent>`` pieces around the span and the [MASK] entity over the marker-to-marker
positions, as ``LukeTokenizer(task="entity_classification")`` builds it. Decision rule:

- multi-label (``multi_label``; default: the checkpoint's ``problem_type`` is
  ``"multi_label_classification"``): every label with sigmoid probability >= ``threshold``;
- single-label: the argmax label with its softmax probability.

Writes ``Span._.luke_types = {label: probability}`` (an empty dict when no label passes). Span
extension values are keyed by character offsets, so every Span object over the same characters
(the entity in ``doc.ents``, a span group's span, ``doc[start:end]``) sees them.

Training reads gold types from the reference docs: ``Span._.luke_types`` (every key is a
gold label), or with ``spans_key`` the labels of ``doc.spans[spans_key]`` (several spans over
the same characters = several labels). With ``use_gold_ents`` (default) the spans trained on
are the gold typed spans; otherwise the pipe's own spans of the predicted doc.
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Model

from ._shared.suggesters import Suggester
from ._shared.extensions import install_typer_extensions
from ._shared.losses import prf
from ._shared.settings import TRAINABLE_SETTINGS, document_settings
from ..layers.kb_inputs import check_kb_inputs
from ._shared.marked import Item, MarkedItemsPipe, doc_spans
from ..layers.call_plan import ItemScores


DEFAULT_TYPER_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntityClassifier.v1"
mixed_precision = false
"""
)["model"]


TYPER_SETTINGS = {
    **TRAINABLE_SETTINGS,
    "model": DEFAULT_TYPER_MODEL,
    "candidates": None,
    "multi_label": None,
    "threshold": 0.5,
    "spans_key": None,
    "use_gold_ents": True,
    "use_kb_ids": False,
    "lite": None,
    "scorer": {"@scorers": "spacy-luke.entity_typer_scorer.v1"},
}


@Language.factory(
    "luke_entity_typer",
    assigns=["span._.luke_types"],
    default_config=TYPER_SETTINGS,
    default_score_weights={"luke_types_f": 1.0, "luke_types_p": 0.0, "luke_types_r": 0.0},
)
@document_settings(TYPER_SETTINGS, lite="kb_ids")
def make_luke_entity_typer(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    candidates: Optional[Suggester],
    multi_label: Optional[bool],
    threshold: float,
    spans_key: Optional[str],
    use_gold_ents: bool,
    use_kb_ids: bool,
    max_batch_cost: int,
    lite: Optional[bool],
    freeze_encoder: bool,
    scorer: Optional[Callable],
    precision: str = "float32",
    engine: str = "torch",
) -> "LukeEntityTyper":
    """LUKE entity typing (entity classification).

    candidates (Optional[Suggester]): spans to type; default: doc.ents.
    multi_label (Optional[bool]): every label over threshold (true) or the argmax label (false); default: from the checkpoint's problem_type.
    threshold (float): multi-label: the lowest sigmoid probability written.
    spans_key (Optional[str]): training/evaluation: read gold types from the labels of doc.spans[spans_key] instead of Span._.luke_types.
    use_gold_ents (bool): training: type the gold typed spans of the reference (else the predicted doc's spans).
    use_kb_ids (bool): input a span whose kb_id_ is an entity-vocabulary title (e.g. from luke_entity_linker) as that Wikipedia entity instead of [MASK].
    """
    return LukeEntityTyper(
        nlp.vocab, model, name, pretrained=pretrained, candidates=candidates, multi_label=multi_label,
        threshold=threshold, spans_key=spans_key, use_gold_ents=use_gold_ents, use_kb_ids=use_kb_ids,
        max_batch_cost=max_batch_cost, lite=check_kb_inputs(name, use_kb_ids, lite), freeze_encoder=freeze_encoder,
        scorer=scorer, precision=precision, engine=engine, lang=nlp.lang,
    )


class LukeEntityTyper(MarkedItemsPipe):
    head = "LukeForEntityClassification"
    n_markers = 1

    def __init__(
        self,
        vocab,
        model: Model,
        name: str = "luke_entity_typer",
        *,
        pretrained: Optional[str] = None,
        candidates: Optional[Suggester] = None,
        multi_label: Optional[bool] = None,
        threshold: float = 0.5,
        spans_key: Optional[str] = None,
        use_gold_ents: bool = True,
        **settings: Any,
    ):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[{name}] threshold must be a probability in [0, 1], got {threshold}.")
        super().__init__(
            vocab,
            model,
            name,
            pretrained=pretrained,
            candidates=candidates,
            multi_label=multi_label,
            threshold=threshold,
            spans_key=spans_key,
            use_gold_ents=use_gold_ents,
            **settings,
        )
        install_typer_extensions()

    # ------------------------------------------------------------------ predict / annotate

    def _items(self, docs: Sequence[Doc]) -> List[List[Item]]:
        """One item per span to type (``doc.ents`` or the ``candidates`` suggester's)."""
        spans = doc_spans(self.name, self.candidates, docs)
        if any(len(doc) for doc in docs) and not any(len(s) for s in spans):
            self._warn_once("no-spans", "found no spans to type: put an NER component (luke_ner, ner) before it, or set `candidates`.")
        return [[((int(s), int(e)),) for s, e in doc_spans_.tolist()] for doc_spans_ in spans]

    def decode(self, logits: np.ndarray) -> List[Dict[str, float]]:
        """``{label: probability}`` for each row of logits, by the multi- or single-label rule."""
        if len(logits) == 0:
            return []
        probs = self.probabilities(logits)
        if self._multi:
            keep = probs >= self.cfg["threshold"]
            return [{self._id2label[j]: float(probs[i, j]) for j in np.flatnonzero(keep[i])} for i in range(len(logits))]
        best = probs.argmax(axis=1)
        return [{self._id2label[int(b)]: float(probs[i, b])} for i, b in enumerate(best)]

    def set_annotations(self, docs: Iterable[Doc], predictions: List[ItemScores]) -> None:
        for doc, (items, logits, scored) in zip(docs, predictions):
            rows = np.flatnonzero(scored)
            for i, types in zip(rows.tolist(), self.decode(logits[rows])):
                (start, end), = items[i]
                Span(doc, start, end)._.luke_types = types

    # ------------------------------------------------------------------ training

    def _gold(self, reference: Doc) -> Dict[Tuple[int, int], Dict[str, float]]:
        return gold_types(reference, self.cfg["spans_key"])

    def _labels_in(self, examples: Iterable[Example]) -> List[str]:
        found, multi = set(), False
        for eg in examples:
            for types in self._gold(eg.reference).values():
                found.update(types)
                multi = multi or len(types) > 1
        if self.cfg["multi_label"] is None and multi:
            self.cfg["multi_label"] = True
        return sorted(found)

    def _target(self, types: Optional[Dict[str, float]], label2id: Dict[str, int]):
        if types is not None:
            unknown = [t for t in types if t not in label2id]
            if unknown:
                raise ValueError(
                    f"[{self.name}] the training data has the type {unknown[0]!r}, which the pipe does not have "
                    f"({self.labels}). Add it before nlp.initialize() or pass all labels to initialize."
                )
        if self._multi:
            target = np.zeros(len(label2id), dtype=np.float32)
            for t in types or {}:
                target[label2id[t]] = 1.0
            return target
        if not types:
            return -1
        return label2id[max(types, key=lambda t: types[t])]

    def _items_and_targets(self, example: Example) -> Tuple[List[Item], np.ndarray]:
        gold = self._gold(example.reference)
        predicted = example.predicted
        label2id = {label: i for i, label in enumerate(self._id2label)}
        items, targets = [], []
        if self.cfg["use_gold_ents"]:
            for (start_char, end_char), types in sorted(gold.items()):
                span = predicted.char_span(start_char, end_char, alignment_mode="expand")
                if span is not None and len(span):
                    items.append(((span.start, span.end),))
                    targets.append(self._target(types, label2id))
        else:
            for start, end in doc_spans(self.name, self.candidates, [predicted])[0].tolist():
                span = predicted[start:end]
                items.append(((start, end),))
                targets.append(self._target(gold.get((span.start_char, span.end_char)), label2id))
        if self._multi:
            return items, np.asarray(targets, dtype=np.float32).reshape(len(items), len(label2id))
        return items, np.asarray(targets, dtype=np.int64)


def typed_spans(doc: Doc, name: str = "luke_types") -> Dict[Tuple[int, int], Any]:
    """``{(start_char, end_char): value}`` of a Span extension set anywhere on ``doc``."""
    out = {}
    for key, value in doc.user_data.items():
        if isinstance(key, tuple) and len(key) == 4 and key[0] == "._." and key[1] == name and value is not None:
            out[(key[2], key[3])] = value
    return out


def gold_types(doc: Doc, spans_key: Optional[str] = None) -> Dict[Tuple[int, int], Dict[str, float]]:
    """Gold types by character offsets: a span group's labels, or ``Span._.luke_types``."""
    if spans_key:
        out: Dict[Tuple[int, int], Dict[str, float]] = {}
        for span in doc.spans[spans_key] if spans_key in doc.spans else []:
            out.setdefault((span.start_char, span.end_char), {})[span.label_] = 1.0
        return out
    return {offsets: dict(types) for offsets, types in typed_spans(doc).items()}


@registry.scorers("spacy-luke.entity_typer_scorer.v1")
def make_entity_typer_scorer() -> Callable:
    """Micro P/R/F of (span, type) over all typed spans (``luke_types_p/r/f``)."""

    def score(examples: Iterable[Example], *, spans_key: Optional[str] = None, **kwargs) -> Dict[str, Any]:
        tp = n_pred = n_gold = 0
        for eg in examples:
            gold = {(o, t) for o, types in gold_types(eg.reference, spans_key).items() for t in types}
            pred = {(o, t) for o, types in typed_spans(eg.predicted).items() for t in types}
            tp += len(gold & pred)
            n_pred += len(pred)
            n_gold += len(gold)
        p, r, f = prf(tp, n_pred, n_gold)
        return {"luke_types_p": p, "luke_types_r": r, "luke_types_f": f}

    return score
