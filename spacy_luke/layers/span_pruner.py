"""luke_ner's model: the span classifier, with the span pruner as a second head on the same input.

``Model[Tuple[List[Doc], List[Spans]], List[ItemScores]]``. Its layers (by ref):

- ``classifier``: the span inputs, then the entity span classification head (the full LUKE pass);
- ``span_pruner``: the span inputs (one pass per word window: the pruner reads no entity slots),
  then the pruner head (:func:`build_pruner_head`: :mod:`spacy_luke.model.span_pruner` on the
  same torch module, logits per candidate).

With ``pruning`` set (attrs ``{"keep_per_word", "min_probability"}``, from luke_ner's setting),
a prediction first scores every candidate with the pruner and sends only each doc's best
``ceil(keep_per_word x tokens)`` (those with a pruner probability of at least
``min_probability``) to the classifier; the others get no entity. Training runs the classifier
on the candidates it is given; the pruner learns through its own ``begin_update`` (the pipe).
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model

from .call_plan import item_spans
from .head_layer import HEAD_REF, LukeBatch, LukeHeadModel, _to_ops, luke_shim, to_device
from .items_model import LukeItemsModel, build_items_model
from .span_inputs import build_span_inputs

#: The padded batch's arrays the span pruner reads.
PRUNER_INPUTS = ("input_ids", "attention_mask", "entity_start_positions", "entity_end_positions")


def build_span_classifier_model(name: str, head: LukeHeadModel) -> LukeItemsModel:
    """luke_ner's model over the head layer ``head`` (see the module docstring)."""
    classifier = build_items_model(f"{name}_classifier", build_span_inputs(head, positions=True), head)
    pruner_inputs = build_span_inputs(head, positions=True)
    pruner_inputs.attrs["whole_windows"] = True
    pruner = build_items_model(f"{name}_span_pruner", pruner_inputs, build_pruner_head(head))
    return Model(
        name, _forward, layers=[classifier, pruner],
        refs={HEAD_REF: head, "classifier": classifier, "span_pruner": pruner, "inputs": classifier.get_ref("inputs"),
              "runner": classifier.get_ref("runner")},
        attrs={"pruning": None, "pipe_name": "luke"},
    )


def _forward(model: LukeItemsModel, X: Tuple[List[Doc], List[Any]], is_train: bool):
    docs, candidates = X
    pruning = model.attrs["pruning"]
    if pruning is not None and not is_train:
        candidates = prune(model, docs, candidates, **pruning)
    return model.get_ref("classifier")((docs, candidates), is_train)


def budget(keep_per_word: float, n_words: int) -> int:
    """Candidates a doc of ``n_words`` tokens keeps at most (at least one)."""
    return max(1, math.ceil(keep_per_word * n_words))


def check_trained(model: Model) -> None:
    """A clear error when pruning is asked of weights with no trained pruner."""
    pruner = luke_shim(model).head_model.span_pruner
    if pruner is None or not pruner.settings.trained:
        state = "has no span pruner" if pruner is None else "has an untrained span pruner"
        raise ValueError(
            f"[{model.attrs.get('pipe_name', 'luke_ner')}] pruning is set, but the model {state}: an untrained pruner would "
            "drop entities at random. Train it (spacy train with pruning set, or python -m spacy_luke train-pruner), "
            "or set pruning = null."
        )


def pruner_scores(model: LukeItemsModel, docs: Sequence[Doc], candidates: List[Any]) -> List[np.ndarray]:
    """The pruner's logit of each doc's candidates (-inf for a candidate no input can hold)."""
    check_trained(model)
    found = []
    for s in model.get_ref("span_pruner").predict((list(docs), list(candidates))):
        logits = np.full(len(s.scored), -np.inf, dtype=np.float32)
        logits[s.scored] = s.values[s.scored, 0]
        found.append(logits)
    return found


def prune(model: LukeItemsModel, docs: Sequence[Doc], candidates: List[Any], *, keep_per_word: float, min_probability: float) -> List[Any]:
    """Each doc's candidates the classifier should score: the best by pruner score, in their order.

    Docs whose candidates all fit their budget (and no ``min_probability``) skip the pruner pass.
    """
    check_trained(model)
    wanted = [
        d for d, (doc, spans) in enumerate(zip(docs, candidates))
        if len(spans) > budget(keep_per_word, len(doc)) or (min_probability > 0 and len(spans))
    ]
    kept = list(candidates)
    if not wanted:
        return kept
    scores = pruner_scores(model, [docs[d] for d in wanted], [candidates[d] for d in wanted])
    min_logit = -np.inf if min_probability <= 0 else math.log(min_probability / (1 - min_probability))
    for d, doc_scores in zip(wanted, scores):
        order = np.argsort(-doc_scores, kind="stable")[: budget(keep_per_word, len(docs[d]))]
        order = order[np.isfinite(doc_scores[order]) & (doc_scores[order] >= min_logit)]
        kept[d] = item_spans(candidates[d])[np.sort(order)]
    return kept


# ------------------------------------------------------------------------------------ the pruner head


def build_pruner_head(head: LukeHeadModel) -> Model[LukeBatch, Any]:
    """The span pruner of ``head``'s torch module as a layer: ``(batch, entities, 1)`` logits.

    The call's mode (``call_mode(is_train)``) decides, in ``HeadOutput.span_pruner_logits``:
    predictions run the precision mode's torch view (also with the ONNX Runtime engine, whose
    graph holds the full head only); training reads the word states of the float encoder in
    prediction mode (no dropout) without gradient: the pruner learns the features it will see,
    and its gradient never reaches the encoder.
    """
    return Model("luke_span_pruner_head", _pruner_forward, layers=[head], refs={HEAD_REF: head})


def _pruner_forward(model: Model, X: LukeBatch, is_train: bool):
    from ..model.mode import call_mode

    shim = luke_shim(model)
    device = shim._model.device
    inputs = {key: to_device(model, X[key], device) for key in PRUNER_INPUTS}
    with call_mode(is_train):  # the one signal HeadOutput reads (see HeadOutput.span_pruner_logits)
        logits = shim._model.span_pruner_logits(**inputs)
    if not is_train:
        return _to_ops(model, logits[..., None]), lambda dY: X
    head = shim.head_model

    def backprop(dY):
        from ..model.span_pruner import mark_trained

        logits.backward(to_device(model, dY, device)[..., 0])
        mark_trained(head)
        return X

    return _to_ops(model, logits[..., None]), backprop


def pruner_targets(gold: np.ndarray, nil: int) -> np.ndarray:
    """The pruner's target of each candidate from its gold label index: 1 entity, 0 NIL, -1 unknown."""
    return np.where(gold < 0, -1, (gold != nil).astype(np.int64))


def binary_loss(logits: np.ndarray, targets: np.ndarray, normalizer: int, mask: np.ndarray) -> Tuple[float, np.ndarray]:
    """Binary cross entropy of ``(n, 1)`` logits against 0/1 ``targets`` (-1: not counted), summed
    over the counted rows of ``mask`` and divided by ``normalizer``; and its gradient."""
    z = logits[:, 0].astype(np.float64)
    known = mask & (targets >= 0)
    t = np.where(known, targets, 0).astype(np.float64)
    losses = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    grads = np.zeros_like(logits, dtype=np.float32)
    grads[:, 0] = np.where(known, (1.0 / (1.0 + np.exp(-z)) - t) / max(1, normalizer), 0.0)
    return float(losses[known].sum() / max(1, normalizer)), grads


def pruning_attrs(pruning: Optional[Any]) -> Optional[dict]:
    """The model attrs of luke_ner's ``pruning`` setting (None: no pruning)."""
    if pruning is None:
        return None
    return {"keep_per_word": float(pruning.keep_per_word), "min_probability": float(pruning.min_probability)}
