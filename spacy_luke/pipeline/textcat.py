"""``luke_textcat``: text classification with LUKE's sequence classification head.

The whole doc is the model input (its words, no entities), as transformers'
``LukeForSequenceClassification`` reads a text; the head classifies it from the pooled first
token. A doc longer than the model's window (512 positions) is read in overlapping windows
(each starting half a window after the last) and its logits are the mean of theirs
(:mod:`spacy_luke.layers.doc_inputs`).

Writes ``doc.cats``, as spaCy's own pipes do:

- single-label (``multi_label = false``, as ``textcat``): every label with its softmax
  probability (they sum to one);
- multi-label (``multi_label = true``, as ``textcat_multilabel``): every label with its sigmoid
  probability; the scorer counts a label as predicted from ``threshold`` on.

``multi_label`` defaults to the checkpoint's ``problem_type`` (``multi_label_classification``).
Training reads the gold ``doc.cats`` of the reference docs (single-label: the label with the
highest value; multi-label: every label at 0.5 or more); labels come from the training data (or
``labels`` in ``[initialize.components.NAME]``), else the checkpoint's ``id2label``.
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Model

from ..layers.call_plan import ItemScores
from ._shared.settings import TRAINABLE_SETTINGS, document_settings
from ._shared.classifier import ClassifierPipe

DEFAULT_TEXTCAT_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.SequenceClassifier.v1"
mixed_precision = false
"""
)["model"]


TEXTCAT_SETTINGS = {
    **TRAINABLE_SETTINGS,
    "model": DEFAULT_TEXTCAT_MODEL,
    "multi_label": None,
    "threshold": 0.5,
    "scorer": {"@scorers": "spacy-luke.textcat_scorer.v1"},
}


@Language.factory("luke_textcat", assigns=["doc.cats"], default_config=TEXTCAT_SETTINGS, default_score_weights={"cats_score": 1.0})
@document_settings(TEXTCAT_SETTINGS)
def make_luke_textcat(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    multi_label: Optional[bool],
    threshold: float,
    max_batch_cost: int,
    lite: bool,
    freeze_encoder: bool,
    scorer: Optional[Callable],
    precision: str,
    engine: str,
) -> "LukeTextCategorizer":
    """LUKE text classification (sequence classification) into doc.cats.

    multi_label (Optional[bool]): independent labels with sigmoid probabilities (true, as textcat_multilabel) or one softmax over exclusive labels (false, as textcat); default: from the checkpoint's problem_type.
    threshold (float): multi-label: the probability from which the scorer counts a label as predicted.
    """
    return LukeTextCategorizer(
        nlp.vocab, model, name, pretrained=pretrained, multi_label=multi_label, threshold=threshold,
        max_batch_cost=max_batch_cost, lite=lite, freeze_encoder=freeze_encoder, scorer=scorer,
        precision=precision, engine=engine,
    )


class LukeTextCategorizer(ClassifierPipe):
    head = "LukeForSequenceClassification"

    def __init__(self, vocab, model: Model, name: str = "luke_textcat", *, multi_label: Optional[bool] = None, threshold: float = 0.5, **settings: Any):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[{name}] threshold must be a probability in [0, 1], got {threshold}.")
        super().__init__(vocab, model, name, multi_label=multi_label, threshold=threshold, **settings)

    # ------------------------------------------------------------------ predict / annotate

    def _items(self, docs: Sequence[Doc]) -> List[List[Tuple[int, int]]]:
        """One item per doc: the doc itself (no item for an empty doc)."""
        return [[(0, len(doc))] if len(doc) else [] for doc in docs]

    def set_annotations(self, docs: Iterable[Doc], scores: List[ItemScores]) -> None:
        """``doc.cats``: every label with its probability (other categories on the Doc are kept)."""
        for doc, (_, logits, scored) in zip(docs, scores):
            if len(scored) and scored[0]:
                probs = self.probabilities(logits[:1])[0]
                doc.cats.update({label: float(p) for label, p in zip(self._id2label, probs)})

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        """spaCy's category scores with the pipe's labels and its single- or multi-label rule."""
        return super().score(examples, **{"multi_label": self.multi_label, **kwargs})

    # ------------------------------------------------------------------ training

    def _labels_in(self, examples: Iterable[Example]) -> List[str]:
        found, multi = [], False
        for eg in examples:
            cats = eg.reference.cats
            for label in cats:
                if label not in found:
                    found.append(label)
            multi = multi or sum(1 for v in cats.values() if v >= 0.5) > 1
        if self.cfg["multi_label"] is None and multi:
            self.cfg["multi_label"] = True
        return found

    def _items_and_targets(self, example: Example) -> Tuple[List[Tuple[int, int]], np.ndarray]:
        predicted, cats = example.predicted, example.reference.cats
        items = [(0, len(predicted))] if len(predicted) else []
        unknown = [label for label in cats if label not in self._id2label]
        if unknown:
            raise ValueError(
                f"[{self.name}] the training data has the category {unknown[0]!r}, which the pipe does not have "
                f"({self.labels}). Add it before nlp.initialize() or pass all labels to initialize."
            )
        if self._multi:
            target = np.asarray([[1.0 if cats.get(label, 0.0) >= 0.5 else 0.0 for label in self._id2label]], dtype=np.float32)
            return items, target[: len(items)]
        best = max(cats, key=cats.get) if cats else None
        target = np.asarray([self._id2label.index(best) if best is not None else -1], dtype=np.int64)
        return items, target[: len(items)]


@registry.scorers("spacy-luke.textcat_scorer.v1")
def make_textcat_scorer() -> Callable:
    """spaCy's category scores (``cats_score``, ``cats_micro_f``, ``cats_macro_auc``, ...) over the pipe's labels."""

    def score(examples: Iterable[Example], *, labels: Sequence[str] = (), multi_label: Optional[bool] = None, threshold: float = 0.5, **kwargs) -> Dict[str, Any]:
        return Scorer.score_cats(examples, "cats", labels=labels, multi_label=bool(multi_label), threshold=threshold)

    return score
