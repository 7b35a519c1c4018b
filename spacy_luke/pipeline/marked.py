"""What the entity typer and the relation extractor share: one marked span (pair) per input.

An *item* is one span ``((start, end),)`` or one ordered pair ``((head_start, head_end),
(tail_start, tail_end))`` of token offsets. Each item becomes one model input, built as
transformers' ``LukeTokenizer(task="entity_classification" / "entity_pair_classification")``
builds it: ``<ent>`` (and ``<ent2>``) pieces around the span(s), the [MASK] (and [MASK2])
entity over the marker-to-marker positions. The words are the whole doc when it fits the
model's word budget (minus the markers), else a window centred on the item (for a pair, on
the union of both spans) chosen by :func:`~spacy_luke.pipeline.windows.centred_window`.
Items are then run in batches by padded cost, never by doc count.
"""

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from thinc.api import get_current_ops

from ..tokenization.doc_encoder import TokenPieces
from .base import LukePipe
from .candidates import Suggester, split_ragged
from .loaders import CheckpointLoader, LukeCheckpoint
from .skipped import SkipLog, unencodable
from .windows import centred_window, window_pieces

Item = Tuple[Tuple[int, int], ...]

# Checkpoints without a task head (or with any head, when fine-tuning anew): loading them gives a fresh head.
PRETRAINING_HEADS = ("LukeModel", "LukeForMaskedLM", "LukePreTrainedModel")


def doc_spans(pipe_name: str, candidates: Optional[Suggester], docs: Sequence[Doc]) -> List[np.ndarray]:
    """Per doc, the ``(n, 2)`` token offsets to work on: ``doc.ents`` or the ``candidates`` suggester's."""
    if candidates is None:
        return [np.array([(e.start, e.end) for e in doc.ents], dtype=np.int64).reshape(-1, 2) for doc in docs]
    per_doc = split_ragged(candidates(docs, ops=get_current_ops()))
    for doc, spans in zip(docs, per_doc):
        if len(spans) and (spans.min() < 0 or spans[:, 1].max() > len(doc) or (spans[:, 0] >= spans[:, 1]).any()):
            raise ValueError(f"[{pipe_name}] the candidates suggester returned spans outside the doc or empty: {spans.tolist()[:5]}")
    return per_doc


def check_head(pipe_name: str, folder: Path, head: str) -> None:
    """Refuse a checkpoint fine-tuned with another task head (a pretraining checkpoint is fine)."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return
    architectures = json.loads(config_file.read_text(encoding="utf8")).get("architectures") or []
    other = [a for a in architectures if a not in PRETRAINING_HEADS and a != head]
    if other and head not in architectures:
        raise ValueError(
            f"[{pipe_name}] {folder} is a {other[0]} checkpoint, but this pipe needs {head} "
            f"(its config.json says architectures={architectures}). Use a checkpoint fine-tuned for this task, "
            "or a pretraining checkpoint (e.g. studio-ousia/luke-base) and train the pipe."
        )


class MarkedItemsPipe(LukePipe):
    """Base of the pipes that classify marked spans or span pairs (one item per model input)."""

    n_markers = 1

    def __init__(self, vocab, model, name, *, candidates: Optional[Suggester] = None, **settings: Any):
        super().__init__(vocab, model, name, **settings)
        self.candidates = candidates
        self._id2label: List[str] = []
        self._warned: set = set()

    # ------------------------------------------------------------------ loading and labels

    def _load(self, checkpoint: LukeCheckpoint) -> None:
        check_head(self.name, checkpoint.resolve(), self.head)
        super()._load(checkpoint)

    def _model_config(self, checkpoint_config):
        wanted = list(self.cfg["labels"])
        have = [checkpoint_config.id2label[i] for i in sorted(checkpoint_config.id2label)]
        if not wanted or wanted == have:
            return None
        return checkpoint_config.with_labels(wanted)

    def _after_load(self, luke_model) -> None:
        id2label = luke_model.config.id2label
        self._id2label = [id2label[i] for i in range(len(id2label))]
        self.cfg["labels"] = list(self._id2label)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"[{self.name}] {message}", UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ inputs

    def _word_budget(self) -> int:
        config = self.luke_model.config
        positions = config.max_position_embeddings - config.pad_token_id - 1
        return min(self._tokenizer.model_max_length, positions) - 2 - 2 * self.n_markers

    def _item_inputs(self, docs: Sequence[Doc], items: List[List[Item]]) -> Tuple[List[Tuple[int, int]], List[Dict[str, np.ndarray]]]:
        """One input per item that can be encoded; returns ``[(doc index, item index), ...]`` and the inputs.

        An item with a span of no word pieces (only whitespace), or whose spans need more word
        pieces than the window holds, is skipped with one warning per call
        (:mod:`~spacy_luke.pipeline.skipped`).
        """
        encoder = self.doc_encoder
        budget = self._word_budget()
        where: List[Tuple[int, int]] = []
        inputs: List[Dict[str, np.ndarray]] = []
        skips = SkipLog(self.name)
        used = [d for d, (doc, doc_items) in enumerate(zip(docs, items)) if doc_items and len(doc)]
        pieces_of = dict(zip(used, self._docs_pieces([docs[d] for d in used])))
        for d in used:
            doc, doc_items, pieces = docs[d], items[d], pieces_of[d]
            n = len(doc)
            fits = int(pieces.ends[-1]) <= budget
            windows: Dict[Tuple[int, int], TokenPieces] = {}
            for k, item in enumerate(doc_items):
                core = np.asarray([[min(s for s, _ in item), max(e for _, e in item)]], dtype=np.int64)
                bad = unencodable(pieces.starts, pieces.ends, np.asarray(item, dtype=np.int64), budget)
                bad += unencodable(pieces.starts, pieces.ends, core, budget) if not bad else []
                if bad:
                    skips.add(doc, item, bad[0][1])
                    continue
                window = (0, n) if fits else centred_window(pieces.starts, pieces.ends, tuple(core[0].tolist()), budget)
                wp = windows.get(window)
                if wp is None:
                    wp = windows[window] = window_pieces(pieces, window)
                local = np.asarray(item, dtype=np.int64) - window[0]
                inputs.append(encoder.marker_inputs_from_pieces(wp, local))
                where.append((d, k))
        skips.warn()
        return where, inputs

    def _logits(self, docs: Sequence[Doc], items: List[List[Item]]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Per doc: logits of its items and whether each was scored (fit a window)."""
        n_labels = len(self._id2label)
        logits = [np.zeros((len(x), n_labels), dtype=np.float32) for x in items]
        scored = [np.zeros(len(x), dtype=bool) for x in items]
        where, inputs = self._item_inputs(docs, items)
        for batch, out, _ in self._run_batches(inputs):
            for row, i in enumerate(batch):
                d, k = where[i]
                logits[d][k] = out[row]
                scored[d][k] = True
        return logits, scored

    # ------------------------------------------------------------------ training

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        loader: Optional[CheckpointLoader] = None,
    ) -> None:
        """Load the weights (from ``loader`` or ``pretrained``) and set the labels.

        labels: the labels (from ``spacy init labels``); by default those of the training data,
        else the checkpoint's. A checkpoint whose labels differ gets a new head.
        """
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        if labels is None:
            labels = self._labels_in(get_examples())
        labels = self._with_fixed_labels(list(labels))
        if labels:
            self.cfg["labels"] = labels
        self._load(self._checkpoint_to_initialize(loader))

    def _labels_in(self, examples: Iterable[Example]) -> List[str]:
        raise NotImplementedError

    def _with_fixed_labels(self, labels: List[str]) -> List[str]:
        return labels

    def _training_items(self, example: Example) -> Tuple[List[Item], np.ndarray]:
        """The items of ``example.predicted`` to train on and their targets."""
        raise NotImplementedError

    def _loss(self, logits: np.ndarray, targets: np.ndarray, normalizer: int) -> Tuple[float, np.ndarray]:
        raise NotImplementedError

    def get_loss(self, examples: Iterable[Example], scores) -> Tuple[float, List[np.ndarray]]:
        """Loss and gradients of ``scores`` (per-doc logits of ``_training_items``)."""
        loss, grads = 0.0, []
        examples = list(examples)
        targets = [self._training_items(eg)[1] for eg in examples]
        total = max(1, sum(len(t) for t in targets))
        for logits, target in zip(scores, targets):
            part, grad = self._loss(np.asarray(logits), target, total)
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
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.update")
        self._ensure_loaded()
        docs = [eg.predicted for eg in examples]
        items, targets = [], []
        for eg in examples:
            doc_items, doc_targets = self._training_items(eg)
            items.append(doc_items)
            targets.append(doc_targets)
        where, inputs = self._item_inputs(docs, items)
        if not inputs:
            return losses
        total = len(inputs)
        loss = 0.0
        for batch, logits, backprop in self._run_batches(inputs, is_train=True):
            batch_targets = np.stack([targets[where[i][0]][where[i][1]] for i in batch])
            part, grad = self._loss(logits, batch_targets, total)
            loss += part
            backprop(self.model.ops.asarray(grad.astype(np.float32)))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def cross_entropy(logits: np.ndarray, targets: np.ndarray, normalizer: int) -> Tuple[float, np.ndarray]:
    """Summed cross entropy / normalizer over rows with ``targets >= 0``, and its gradient."""
    grad = np.zeros_like(logits, dtype=np.float32)
    rows = np.flatnonzero(targets >= 0)
    if len(rows) == 0:
        return 0.0, grad
    probs = softmax(logits[rows].astype(np.float64))
    picked = probs[np.arange(len(rows)), targets[rows]]
    loss = float(-np.log(np.clip(picked, 1e-12, None)).sum() / normalizer)
    probs[np.arange(len(rows)), targets[rows]] -= 1.0
    grad[rows] = probs / normalizer
    return loss, grad


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray, normalizer: int) -> Tuple[float, np.ndarray]:
    """Summed (over labels) binary cross entropy with logits / normalizer, and its gradient.

    ``targets`` is a 0/1 float matrix; rows whose first value is negative are ignored.
    """
    grad = np.zeros_like(logits, dtype=np.float32)
    rows = np.flatnonzero(targets[:, 0] >= 0) if len(targets) else np.zeros(0, dtype=np.int64)
    if len(rows) == 0:
        return 0.0, grad
    x, y = logits[rows].astype(np.float64), targets[rows].astype(np.float64)
    loss = float((np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))).sum() / normalizer)
    grad[rows] = (sigmoid(x) - y) / normalizer
    return loss, grad


def prf(tp: int, n_pred: int, n_gold: int) -> Tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f
