"""A LUKE pipe's thinc model: the path from Docs to per-doc scores.

``LukeItemsModel = Model[Tuple[List[Doc], List[Items]], List[ItemScores]]``: an input layer
(:mod:`.span_inputs`, :mod:`.marked_inputs`, :mod:`.doc_inputs`) turns the docs and their items
into a :class:`~.call_plan.Plan`; the batch runner (:mod:`.batch_runner`) runs it through the head
layer (:mod:`.head_layer`) and scatters the rows back per doc. ``predict((docs, items))`` is a
pipe's whole prediction; ``begin_update((docs, items))`` gives the scores and a backprop that
takes per-doc gradients (each doc's ``values`` shape), as spaCy's spancat model does.

The layers are reachable by ref: ``luke_head`` (the head layer: weights, tokenizer),
``inputs``, ``runner``. The settings a pipe gives its model (:func:`configure_items_model`) live
in the layers' attrs: ``pipe_name``, ``max_entities_per_pass``, ``whole_windows``,
``max_batch_cost``, ``engine`` (and luke_ner's ``pruning``).
"""
from __future__ import annotations

from typing import Any, Iterator, List, Sequence, Tuple

from spacy.tokens import Doc
from thinc.api import Model

from .batch_runner import build_batch_runner
from .batch_runner import padded_batches as runner_batches
from .call_plan import ItemScores
from .head_layer import HEAD_REF, LukeHeadModel

LukeItemsModel = Model[Tuple[List[Doc], List[Any]], List[ItemScores]]


def build_items_model(name: str, inputs: Model, head: LukeHeadModel) -> LukeItemsModel:
    """``inputs`` then a batch runner over ``head``: Docs and items in, per-doc scores out."""
    runner = build_batch_runner(head)
    return Model(name, _forward, layers=[inputs, runner], refs={HEAD_REF: head, "inputs": inputs, "runner": runner})


def _forward(model: LukeItemsModel, X: Tuple[List[Doc], List[Any]], is_train: bool):
    inputs, runner = model.get_ref("inputs"), model.get_ref("runner")
    plan, _ = inputs(X, is_train)
    if plan.skips is not None:
        plan.skips.warn()
    scores, backprop_runner = runner(plan, is_train)

    def backprop(d_scores):
        backprop_runner(d_scores)
        return X

    return scores, backprop


def configure_items_model(model: Model, **settings: Any) -> None:
    """Give every layer of ``model`` that has one of ``settings`` its value (see the module docstring)."""
    for node in model.walk():
        for key, value in settings.items():
            if key in node.attrs:
                node.attrs[key] = value


def padded_batches(model: LukeItemsModel, docs: Sequence[Doc], items: List[Any]) -> Iterator[Tuple[List[int], dict]]:
    """``(input indices, padded arrays)`` of each batch a call of ``model`` on ``(docs, items)``
    would run (the head's inputs, e.g. to run them elsewhere)."""
    plan = model.get_ref("inputs").predict((list(docs), list(items)))
    return runner_batches(model.get_ref("runner"), plan)
