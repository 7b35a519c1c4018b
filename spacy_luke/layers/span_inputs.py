"""The span input layer: each doc's spans scored together in word windows, as [MASK] entities
(or their own input entities) over their word pieces.

``Model[Tuple[List[Doc], List[SpanItems]], Plan]`` (items: see :mod:`.call_plan`). Per doc, the
spans go into word windows (:mod:`.windows`: the whole doc when it fits, else a window per
sentence with the words around it), each window's spans into passes of at most
``max_entities_per_pass`` that reuse the same words; every pass is one model input
(``SpanPass``). Spans that cannot be encoded (only whitespace, longer than the window, no window
holds them) go to the plan's :class:`~.skipped.SkipLog`. Used by luke_ner (the head reads the
spans' first and last words: ``positions``), luke_entity_vectors and luke_entity_linker (their
spans' input entities and, for the linker, the candidate rows each mention scores).

Attributes (set by the pipe, :func:`~.items_model.configure_items_model`): ``pipe_name`` (for
the skip warning), ``max_entities_per_pass``, ``whole_windows`` (one pass per window, whatever
its number of spans: the span pruner reads no entity slots), ``positions``.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model

from .call_plan import Plan, item_spans
from .doc_pieces import docs_token_pieces, input_layer_forward, input_pieces, sentence_bounds
from .head_layer import HEAD_REF, LukeHeadModel
from .skipped import SkipLog
from .windows import encodable_windows, split_passes, window_pieces

SpanInputs = Model[Tuple[List[Doc], List[Any]], Plan]
#: Passes per window when ``whole_windows``: all of its spans in one.
WHOLE_WINDOW = 1 << 30


def build_span_inputs(head: LukeHeadModel, *, positions: bool) -> SpanInputs:
    """The span input layer of ``head``'s tokenizer and word budget."""
    return Model(
        "luke_span_inputs", _forward, layers=[head], refs={HEAD_REF: head},
        attrs={"pipe_name": "luke", "max_entities_per_pass": 128, "whole_windows": False, "positions": positions},
    )


def span_plan(model: SpanInputs, docs: Sequence[Doc], items: List[Any], *, whole_windows: Optional[bool] = None) -> Plan:
    """The plan of ``items`` (see the module docstring)."""
    tokenizer, encoder, budget = input_pieces(model)
    whole = model.attrs["whole_windows"] if whole_windows is None else whole_windows
    per_pass = WHOLE_WINDOW if whole else model.attrs["max_entities_per_pass"]
    plan = Plan(list(items), skips=SkipLog(model.attrs["pipe_name"]), positions=model.attrs["positions"])
    spans = [np.asarray(item_spans(x), dtype=np.int64).reshape(-1, 2) for x in items]
    width = _candidate_width(items)
    for x in items:
        search = getattr(x, "search_inputs", None)
        if search:
            plan.constants = dict(search)
            break
    used = [d for d, (doc, doc_spans) in enumerate(zip(docs, spans)) if len(doc) and len(doc_spans)]
    for d, pieces in zip(used, docs_token_pieces(encoder, [docs[d] for d in used])):
        doc, doc_spans = docs[d], spans[d]

        def skip(i: int, reason: str, doc=doc, doc_spans=doc_spans) -> None:
            plan.skips.add(doc, [doc_spans[i]], reason)

        windows = encodable_windows(pieces, doc_spans, lambda: sentence_bounds(doc), budget, skip)
        for window, indices in split_passes(windows, per_pass):
            extras = _extras(items[d], indices, tokenizer, width)
            plan.add(_span_pass(window_pieces(pieces, window), doc_spans[indices] - window[0]), d, indices, extras)
    return plan


def _span_pass(pieces, spans: np.ndarray):
    from ..tokenization import SpanPass

    return SpanPass(pieces, spans)


def _candidate_width(items: List[Any]) -> int:
    """Candidate rows per mention in this call: the longest candidate list (the linker)."""
    lists = [getattr(x, "candidate_rows", None) for x in items]
    return max([1] + [len(c) for rows in lists if rows is not None for c in rows])


def _extras(items: Any, indices: np.ndarray, tokenizer, width: int) -> Optional[dict]:
    """The pass's input entities (where they are not [MASK]) and candidate rows, if the items have them."""
    extras = {}
    rows = getattr(items, "entity_rows", None)
    if rows is not None:
        chosen = np.asarray(rows, dtype=np.int64)[indices]
        extras["entity_ids"] = np.where(chosen >= 0, chosen, tokenizer.entity_mask_token_id).astype(np.int64)
    candidates = getattr(items, "candidate_rows", None)
    if candidates is not None:
        table = np.full((len(indices), width), tokenizer.entity_vocab.special_id("[PAD]"), dtype=np.int64)
        for slot, i in enumerate(indices.tolist()):
            table[slot, : len(candidates[i])] = candidates[i]
        extras["candidate_ids"] = table
    return extras or None


_forward = input_layer_forward(span_plan)
