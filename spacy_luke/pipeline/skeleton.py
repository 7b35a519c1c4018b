"""The skeleton every LUKE pipe runs on: plan -> run in cost-bounded batches -> scatter -> decode.

A pipe says only four things (the hooks of :class:`ItemsPipe`):

- ``_items(docs)``: per doc, what it scores (candidate spans, typed spans, entity pairs);
- ``_plan(docs, items)``: how items become model inputs (:class:`Plan`: the inputs and, per
  input, the doc and items its output rows belong to; items that cannot be encoded go to the
  plan's :class:`~spacy_luke.pipeline.skipped.SkipLog`);
- ``set_annotations(docs, scores)``: how the scores decode onto the Docs;
- ``_training_items(examples)``, ``_targets(example, items)`` and ``_loss``: what it learns.

``predict`` never touches the Docs: it plans, runs the inputs in batches bounded by
``max_batch_cost`` (:func:`spacy_luke.bucketing.bucket_by_cost`) and scatters each output row
back to its doc's :class:`ItemScores`. ``update`` does the same forward pass in training mode,
then ``get_loss`` (as spaCy's spancat: gold aligned to the items), then backprop per batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.tokens import Doc
from spacy.training import Example, validate_examples

from ..bucketing import bucket_by_cost
from ..prefetch import prefetched
from .base import LukePipe
from .candidates import sentence_bounds
from .skipped import SkipLog
from .windows import encodable_windows, split_passes, window_pieces


class ItemScores(NamedTuple):
    """One doc's items and their model outputs (rows of skipped items are not ``scored``)."""

    items: Any  # (n, 2) token [start, end) spans, or a list of n items (spans / span pairs)
    values: np.ndarray  # (n, width) float32: logits, or vectors
    scored: np.ndarray  # (n,) bool

    @property
    def spans(self):
        return self.items

    @property
    def logits(self) -> np.ndarray:
        return self.values


@dataclass
class Plan:
    """The model inputs of one call, and which doc items each input's output rows belong to."""

    inputs: List[Any] = field(default_factory=list)  # SpanPass or dicts of unpadded arrays
    owners: List[Tuple[int, np.ndarray]] = field(default_factory=list)  # (doc index, item indices)
    skips: Optional[SkipLog] = None
    width: Optional[int] = None  # columns of a row of scores, when this call decides it (else the pipe's _width)

    def add(self, model_input: Any, doc_index: int, item_indices: Union[np.ndarray, Sequence[int]]) -> None:
        self.inputs.append(model_input)
        self.owners.append((doc_index, np.asarray(item_indices, dtype=np.int64).reshape(-1)))


class ItemsPipe(LukePipe):
    """A LUKE pipe that scores items of docs; subclasses implement the hooks (module docstring)."""

    # ------------------------------------------------------------------ hooks

    def _items(self, docs: Sequence[Doc]) -> List[Any]:
        raise NotImplementedError

    def _plan(self, docs: Sequence[Doc], items: List[Any]) -> Plan:
        raise NotImplementedError

    def _width(self) -> int:
        """Columns of a row of scores (labels by default)."""
        return len(self._id2label)

    def _training_items(self, examples: Sequence[Example]) -> List[Any]:
        return self._items([eg.predicted for eg in examples])

    def _targets(self, example: Example, items: Any) -> np.ndarray:
        raise NotImplementedError

    def _loss(self, values: np.ndarray, targets: np.ndarray, normalizer: int, mask: np.ndarray) -> Tuple[float, np.ndarray]:
        raise NotImplementedError

    def _select(self, docs: Sequence[Doc], items: List[Any]) -> List[Any]:
        """The items a prediction scores (all by default; luke_ner's span pruner keeps the likely ones)."""
        return items

    def _update_more(self, examples: Sequence[Example], plan: Plan, items: List[Any], losses: Dict[str, float]) -> None:
        """Hook: more learning from the same batch before the optimizer step (luke_ner's span pruner)."""

    def _n_counted(self, targets: np.ndarray, scored: np.ndarray) -> int:
        """Rows a loss is averaged over (the scored ones by default)."""
        return int(scored.sum())

    def _span_windows(self, docs: Sequence[Doc], spans: List[np.ndarray], skips: SkipLog, per_pass: Optional[int] = None):
        """Word windows of each doc's ``spans``, cut into passes of at most ``per_pass`` spans
        (default ``max_entities_per_pass``).

        Yields ``(doc index, window pieces, window start, span indices)``; spans that cannot be
        encoded go to ``skips`` (:func:`~spacy_luke.pipeline.windows.encodable_windows`).
        """
        budget = self._word_budget()
        used = [d for d, (doc, doc_spans) in enumerate(zip(docs, spans)) if len(doc) and len(doc_spans)]
        for d, pieces in zip(used, self._docs_pieces([docs[d] for d in used])):
            doc, doc_spans = docs[d], spans[d]
            windows = encodable_windows(
                pieces, doc_spans, lambda: sentence_bounds(doc), budget, lambda i, reason: skips.add(doc, [doc_spans[i]], reason)
            )
            for window, indices in split_passes(windows, per_pass or self.cfg["max_entities_per_pass"]):
                yield d, window_pieces(pieces, window), window[0], indices

    # ------------------------------------------------------------------ running passes

    def _padded_batches(self, inputs: Sequence[Any]):
        """Padded batches of ``inputs`` within ``max_batch_cost``; yields (indices, padded numpy arrays)."""
        from ..tokenization import SpanPass

        encoder = self._encoder
        if inputs and isinstance(inputs[0], SpanPass):
            costs = [(x.n_words, x.n_entities) for x in inputs]
            batches = bucket_by_cost(costs, self.cfg["max_batch_cost"], self.max_padding)
            yield from zip(batches, encoder.padded_span_batches(inputs, batches))
            return
        costs = [(len(x["input_ids"]), len(x["entity_ids"])) for x in inputs]
        for batch in bucket_by_cost(costs, self.cfg["max_batch_cost"], self.max_padding):
            yield batch, dict(encoder.pad([inputs[i] for i in batch], return_tensors="np"))

    def _run_batches(self, inputs: Sequence[Any], *, is_train: bool = False):
        """Run the padded batches of ``inputs``; yields (indices, outputs, backprop)."""
        batches = self._padded_batches(inputs)
        if self._on_gpu():  # build the next batch's inputs while the GPU runs this one
            batches = prefetched(batches)
        for batch, padded in batches:
            if is_train:
                outputs, backprop = self.model.begin_update(padded)
            else:
                outputs, backprop = self.model.predict(padded), None
            yield batch, self.model.ops.to_numpy(outputs), backprop

    @staticmethod
    def _rows(plan: Plan, batch: Sequence[int], outputs: np.ndarray):
        """``(row, doc index, item indices, rows of outputs)`` for each input of ``batch``.

        Outputs are ``(batch, entities, width)`` (one row per entity slot) or ``(batch, width)``
        (one row per input, for a one-item input).
        """
        for row, i in enumerate(batch):
            d, indices = plan.owners[i]
            yield row, d, indices, (outputs[row : row + 1] if outputs.ndim == 2 else outputs[row, : len(indices)])

    def _empty_scores(self, items: List[Any], width: int) -> List[ItemScores]:
        return [ItemScores(x, np.zeros((len(x), width), dtype=np.float32), np.zeros(len(x), dtype=bool)) for x in items]

    def _forward(self, docs: Sequence[Doc], items: List[Any], *, is_train: bool):
        """Plan, run and scatter: the per-doc scores, and (train) each batch's backprop."""
        plan = self._plan(docs, items)
        if plan.skips is not None:
            plan.skips.warn()
        scores = self._empty_scores(items, plan.width if plan.width is not None else self._width())
        backprops = []
        for batch, outputs, backprop in self._run_batches(plan.inputs, is_train=is_train):
            for _, d, indices, rows in self._rows(plan, batch, outputs):
                scores[d].values[indices] = rows
                scores[d].scored[indices] = True
            if is_train:
                backprops.append((batch, outputs, backprop))
        return plan, scores, backprops

    # ------------------------------------------------------------------ predict

    def predict(self, docs: Iterable[Doc]) -> List[ItemScores]:
        """Per doc, its items and their scores; the Docs are not changed."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return self._empty_scores([np.zeros((0, 2), dtype=np.int64) for _ in docs], 0)
        items = self._items(docs)
        if not any(len(x) for x in items):
            return self._empty_scores(items, 0)
        self._ensure_loaded()
        items = self._select(docs, items)
        return self._forward(docs, items, is_train=False)[1]

    # ------------------------------------------------------------------ training

    def get_loss(self, examples: Iterable[Example], scores: List[ItemScores]) -> Tuple[float, List[np.ndarray]]:
        """Loss and per-doc gradients of ``scores`` against the gold of ``examples``."""
        examples = list(examples)
        targets = [self._targets(eg, s.items) for eg, s in zip(examples, scores)]
        total = max(1, sum(self._n_counted(t, s.scored) for t, s in zip(targets, scores)))
        loss, grads = 0.0, []
        for target, s in zip(targets, scores):
            part, grad = self._loss(np.asarray(s.values), target, total, s.scored)
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
        """Forward in training mode, ``get_loss``, backprop, and ``finish_update`` with ``sgd``.

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
        plan, scores, backprops = self._forward([eg.predicted for eg in examples], items, is_train=True)
        if not backprops:
            return losses
        loss, grads = self.get_loss(examples, scores)
        for batch, outputs, backprop in backprops:
            d_outputs = np.zeros_like(outputs, dtype=np.float32)
            for row, d, indices, _ in self._rows(plan, batch, outputs):
                if outputs.ndim == 2:
                    d_outputs[row] = grads[d][indices[0]]
                else:
                    d_outputs[row, : len(indices)] = grads[d][indices]
            backprop(self.model.ops.asarray(d_outputs))
        self._update_more(examples, plan, items, losses)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses
