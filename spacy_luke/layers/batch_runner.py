"""The batch runner: a call's :class:`~.call_plan.Plan` through the LUKE head, in padded batches
bounded by cost, with the output rows scattered back to their docs.

``Model[Plan, List[ItemScores]]``, its one child the head layer (``Model[LukeBatch, Array]``,
:mod:`.head_layer`). Inputs are grouped by padded cost (word pieces + entity slots,
``max_batch_cost``, :func:`~.bucketing.bucket_by_cost`), with the padding the engine allows
(loose for torch, whose encoder skips padding; tight for ONNX Runtime); on a GPU the next batch
is built in a background thread while the current one runs. The backward pass takes per-doc
gradients (the shape of each doc's ``values``) and hands each batch its rows.

Attributes (set by the pipe from its settings, :func:`configure_items_model`):
``max_batch_cost`` (int) and ``engine`` (the name of an :mod:`.engines` entry: its ``max_padding``).
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Sequence, Tuple

import numpy as np
from thinc.api import Model

from .bucketing import bucket_by_cost
from .call_plan import ItemScores, Plan, empty_scores
from .engines import DEFAULT_ENGINE, get_engine
from .prefetch import prefetched

BatchRunner = Model[Plan, List[ItemScores]]
DEFAULT_MAX_BATCH_COST = 16384


def build_batch_runner(head: Model) -> BatchRunner:
    """A batch runner over the head layer ``head``."""
    return Model(
        "luke_batch_runner", _forward, layers=[head],
        attrs={"max_batch_cost": DEFAULT_MAX_BATCH_COST, "engine": DEFAULT_ENGINE},
    )


def padded_batches(runner: BatchRunner, plan: Plan) -> Iterator[Tuple[List[int], dict]]:
    """``(input indices, padded arrays)`` of each batch the runner makes of ``plan``'s inputs."""
    from .head_layer import luke_shim

    inputs = plan.inputs
    if not inputs:
        return
    pieces = luke_shim(runner.layers[0]).pieces
    encoder, tokenizer = pieces.doc_encoder, pieces.tokenizer
    max_cost, max_padding = runner.attrs["max_batch_cost"], get_engine(runner.attrs["engine"]).max_padding
    span_passes = not isinstance(inputs[0], dict)
    costs = [(x.n_words, x.n_entities) if span_passes else (len(x["input_ids"]), len(x.get("entity_ids", ()))) for x in inputs]
    batches = bucket_by_cost(costs, max_cost, max_padding)
    if span_passes:
        padded_of = encoder.padded_span_batches(inputs, batches)
    else:
        padded_of = (dict(encoder.pad([inputs[i] for i in batch], return_tensors="np")) for batch in batches)
    for batch, padded in zip(batches, padded_of):
        if span_passes:
            if not plan.positions:
                del padded["entity_start_positions"], padded["entity_end_positions"]
            _add_extras(padded, [plan.extras[i] for i in batch], tokenizer.entity_vocab.special_id("[PAD]"))
        padded.update(plan.constants)
        yield batch, padded


def _add_extras(padded: dict, extras: Sequence, pad_row: int) -> None:
    """The span inputs' own input entities and candidate rows, into a padded batch."""
    if all(x is None for x in extras):
        return
    n_slots = padded["entity_ids"].shape[1]
    if any(x is not None and "entity_ids" in x for x in extras):
        for b, x in enumerate(extras):
            if x is not None and "entity_ids" in x:
                padded["entity_ids"][b, : len(x["entity_ids"])] = x["entity_ids"]
    candidates = [x.get("candidate_ids") if x is not None else None for x in extras]
    if any(c is not None for c in candidates):
        width = max(c.shape[1] for c in candidates if c is not None)
        rows = np.full((len(extras), n_slots, width), pad_row, dtype=np.int64)
        for b, c in enumerate(candidates):
            if c is not None:
                rows[b, : len(c), : c.shape[1]] = c
        padded["candidate_ids"] = rows


def _on_gpu(head: Model) -> bool:
    from .head_layer import luke_shim

    shim = luke_shim(head)
    return shim._model is not None and shim._model.device.type == "cuda"


def _forward(model: BatchRunner, plan: Plan, is_train: bool):
    head = model.layers[0]
    batches = padded_batches(model, plan)
    if _on_gpu(head):  # build the next batch's inputs while the GPU runs this one
        batches = prefetched(batches)
    scores: List[ItemScores] = []
    ran: List[Tuple[List[int], tuple, Callable]] = []
    for batch, padded in batches:
        if is_train:
            outputs, backprop = head.begin_update(padded)
        else:
            outputs, backprop = head.predict(padded), None
        values, ids = _split_outputs(head, outputs)
        if not scores:
            scores = _allocate(plan, values, ids)
        _scatter(plan, batch, values, ids, scores)
        if is_train:
            ran.append((batch, values.shape, backprop))
    if not scores:
        from .head_layer import output_width

        scores = empty_scores(plan.items, output_width(head))
    shares = _mean_of_inputs(plan, scores) if plan.reduce == "mean" else None

    def backprop(d_scores: List[np.ndarray]):
        for batch, shape, batch_backprop in ran:
            d_values = np.zeros(shape, dtype=np.float32)
            for row, (d, indices) in enumerate(plan.owners[i] for i in batch):
                if d_values.ndim == 2:  # one row per input (marked and whole-doc inputs)
                    d_values[row] = d_scores[d][indices[0]] * (1.0 if shares is None else shares[d][indices[0]])
                else:
                    d_values[row, : len(indices)] = d_scores[d][indices]
            batch_backprop(head.ops.asarray(d_values))
        return plan

    return scores, backprop


def _split_outputs(head: Model, outputs) -> Tuple[np.ndarray, object]:
    """The head's float outputs (and, for the linker, the entity rows they score) as numpy."""
    if isinstance(outputs, tuple):
        values, ids = outputs
        return head.ops.to_numpy(values), head.ops.to_numpy(ids).astype(np.int64)
    return head.ops.to_numpy(outputs), None


def _allocate(plan: Plan, values: np.ndarray, ids) -> List[ItemScores]:
    width = values.shape[-1]
    scores = empty_scores(plan.items, width)
    if ids is None:
        return scores
    return [s._replace(ids=np.zeros((len(s.items), width), dtype=np.int64)) for s in scores]


def _mean_of_inputs(plan: Plan, scores: List[ItemScores]) -> List[np.ndarray]:
    """Divide the summed rows of items scored by several inputs by their number; returns each
    item's share of a row's gradient (1 / inputs)."""
    counts = [np.zeros(len(s.scored), dtype=np.float32) for s in scores]
    for d, indices in plan.owners:
        counts[d][indices] += 1
    shares = []
    for s, n in zip(scores, counts):
        share = np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0).astype(np.float32)
        s.values[:] = s.values * share[:, None]
        shares.append(share)
    return shares


def _scatter(plan: Plan, batch: Sequence[int], values: np.ndarray, ids, scores: List[ItemScores]) -> None:
    for row, i in enumerate(batch):
        d, indices = plan.owners[i]
        doc_scores = scores[d]
        if values.ndim == 2 and plan.reduce == "mean":  # several inputs per item: summed here, averaged after
            doc_scores.values[indices] += values[row : row + 1]
        elif values.ndim == 2:  # one row per input
            doc_scores.values[indices] = values[row : row + 1]
        else:
            doc_scores.values[indices] = values[row, : len(indices)]
            if ids is not None:
                doc_scores.ids[indices] = ids[row, : len(indices)]
        doc_scores.scored[indices] = True
