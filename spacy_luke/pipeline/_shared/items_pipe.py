"""What a LUKE pipe that scores items says: which items, how their scores decode, what it learns.

The path from Docs to scores is the thinc model's (``spacy_luke.layers.items_model``:
``Model[Tuple[List[Doc], List[Items]], List[ItemScores]]``); a pipe built on :class:`ItemsPipe`
implements:

- ``_items(docs)``: per doc, what it scores (candidate spans, typed spans, entity pairs, mentions);
- ``set_annotations(docs, scores)``: how the scores decode onto the Docs;
- ``_training_items(examples)``, ``_targets(example, items)`` and ``_loss``: what it learns.

``predict`` is one ``self.model.predict((docs, items))`` and never touches the Docs. ``update``
is ``begin_update((docs, items))`` -> ``get_loss`` (gold aligned to the items, as spaCy's spancat
does) -> backprop -> ``finish_update``.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc
from spacy.training import Example, validate_examples

from ...layers.call_plan import ItemScores, empty_scores
from .base import LukePipe


class ItemsPipe(LukePipe):
    """A LUKE pipe that scores items of docs; subclasses implement the hooks (module docstring)."""

    # ------------------------------------------------------------------ hooks

    def _items(self, docs: Sequence[Doc]) -> List[Any]:
        raise NotImplementedError

    def _training_items(self, examples: Sequence[Example]) -> List[Any]:
        return self._items([eg.predicted for eg in examples])

    def _model_items(self, docs: Sequence[Doc], items: List[Any]) -> List[Any]:
        """Hook: the items as the model's input layer reads them, once the weights are loaded
        (the marked pipes add linked spans' input entities); the items themselves by default."""
        return items

    def _targets(self, example: Example, items: Any) -> np.ndarray:
        """The gold of ``items`` (training items may carry theirs, computed with them)."""
        targets = getattr(items, "targets", None)
        if targets is None:
            raise NotImplementedError
        return targets

    def _loss(self, scores: ItemScores, targets: np.ndarray, normalizer: int) -> Tuple[float, np.ndarray]:
        """The loss of one doc's ``scores`` (its scored rows) against ``targets``, over
        ``normalizer`` rows, and the gradient of its ``values``."""
        raise NotImplementedError

    def _select_training_items(self, examples: Sequence[Example], items: List[Any], losses: Dict[str, float]) -> List[Any]:
        """Hook: the training items the head's pass gets, from all of them, before that pass
        (luke_ner: its span pruner learns here, and its candidate selection); all by default."""
        return items

    def _learned_before_head(self) -> bool:
        """Hook: whether :meth:`_select_training_items` left gradients for the optimizer step of
        this update (then an update whose head pass has nothing to score still steps)."""
        return False

    def _update_more(self, examples: Sequence[Example], items: List[Any], losses: Dict[str, float]) -> None:
        """Hook: more learning from the same batch before the optimizer step."""

    def _n_counted(self, targets: np.ndarray, scored: np.ndarray) -> int:
        """Rows a loss is averaged over (the scored ones by default)."""
        return int(scored.sum())

    def _counted(self, targets: np.ndarray, scores: ItemScores) -> float:
        """What one doc's rows weigh in the loss's normalizer: :meth:`_n_counted`, or the sum of the
        counted rows' ``weights`` when the items carry them (luke_ner's sampled candidates)."""
        weights = getattr(scores.items, "weights", None)
        if weights is None:
            return self._n_counted(targets, scores.scored)
        return float(np.asarray(weights)[(targets >= 0) & scores.scored].sum())

    # ------------------------------------------------------------------ predict

    def model_input(self, docs: Iterable[Doc]) -> Tuple[List[Doc], List[Any]]:
        """``(docs, items)`` as :meth:`predict` gives them to the model (loads the weights):
        e.g. for ``spacy_luke.layers.padded_batches(pipe.model, *pipe.model_input(docs))``."""
        docs = list(docs)
        self._ensure_loaded()
        return docs, self._model_items(docs, self._items(docs))

    def predict(self, docs: Iterable[Doc]) -> List[ItemScores]:
        """Per doc, its items and their scores; the Docs are not changed."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return empty_scores([np.zeros((0, 2), dtype=np.int64) for _ in docs], 0)
        items = self._items(docs)
        if not any(len(x) for x in items):
            return empty_scores(items, 0)
        self._ensure_loaded()
        return self.model.predict((docs, self._model_items(docs, items)))

    # ------------------------------------------------------------------ training

    def get_loss(self, examples: Iterable[Example], scores: List[ItemScores]) -> Tuple[float, List[np.ndarray]]:
        """Loss and per-doc gradients of ``scores`` against the gold of ``examples``."""
        examples = list(examples)
        targets = [self._targets(eg, s.items) for eg, s in zip(examples, scores)]
        total = max(1, sum(self._counted(t, s) for t, s in zip(targets, scores)))
        loss, grads = 0.0, []
        for target, s in zip(targets, scores):
            part, grad = self._loss(s, target, total)
            loss += part
            grads.append(grad)
        return loss, grads

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """``begin_update``, ``get_loss``, backprop, and ``finish_update`` with ``sgd``.

        ``drop`` is ignored: dropout comes from the checkpoint's config (``hidden_dropout_prob``,
        ``attention_probs_dropout_prob``), as LUKE was fine-tuned.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        self._ensure_loaded()
        items = self._training_items(examples)
        if not any(len(x) for x in items):
            return losses
        docs = [eg.predicted for eg in examples]
        items = self._select_training_items(examples, items, losses)
        scores = None
        if any(len(x) for x in items):
            scores, backprop = self.model.begin_update((docs, self._model_items(docs, items)))
        if scores is None or not any(s.scored.any() for s in scores):
            if sgd is not None and self._learned_before_head():
                self.finish_update(sgd)
            return losses
        loss, grads = self.get_loss(examples, scores)
        backprop(grads)
        self._update_more(examples, items, losses)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses
