"""The marked input layer: one model input per item, a span (or an ordered pair of spans) marked
in the words, as transformers' ``LukeTokenizer(task="entity_classification" /
"entity_pair_classification")`` builds it.

``Model[Tuple[List[Doc], List[MarkedItems]], Plan]``. Each item becomes ``<ent>`` (and ``<ent2>``)
pieces around its span(s) and the [MASK] (and [MASK2]) entity over the marker-to-marker
positions, or the span's own input entity (``MarkedItems.entity_rows``). The words are the whole
doc when it fits the word budget (less the markers), else a window centred on the item (for a
pair, on the union of both spans; :func:`~.windows.centred_windows`). An item with a span of no
word pieces (only whitespace), or whose spans need more word pieces than the window holds, goes
to the plan's skip log. Used by luke_entity_typer (``n_markers`` 1) and luke_relation_extractor (2).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model

from .call_plan import Plan
from .doc_pieces import docs_token_pieces, input_layer_forward, input_pieces
from .head_layer import HEAD_REF, LukeHeadModel
from .skipped import NO_PIECES, SkipLog, piece_counts, too_long
from .windows import centred_windows, window_pieces

MarkedInputs = Model[Tuple[List[Doc], List[Any]], Plan]


def build_marked_inputs(head: LukeHeadModel, *, n_markers: int) -> MarkedInputs:
    """The marked input layer of ``head``'s tokenizer, for items of ``n_markers`` spans."""
    return Model("luke_marked_inputs", _forward, layers=[head], refs={HEAD_REF: head}, attrs={"pipe_name": "luke", "n_markers": n_markers})



def marked_plan(model: MarkedInputs, docs: List[Doc], items: List[Any]) -> Plan:
    tokenizer, encoder, budget = input_pieces(model, model.attrs["n_markers"])
    plan = Plan(list(items), skips=SkipLog(model.attrs["pipe_name"]))
    used = [d for d, (doc, doc_items) in enumerate(zip(docs, items)) if len(doc_items) and len(doc)]
    for d, pieces in zip(used, docs_token_pieces(encoder, [docs[d] for d in used])):
        doc, doc_items = docs[d], items[d]
        spans = np.asarray(list(doc_items), dtype=np.int64).reshape(len(doc_items), -1, 2)  # (items, spans per item, 2)
        cores = np.stack([spans[:, :, 0].min(axis=1), spans[:, :, 1].max(axis=1)], axis=1)  # each item's token range
        # One check for all items: a span without word pieces, or a core longer than the window.
        no_pieces = (piece_counts(pieces.starts, pieces.ends, spans.reshape(-1, 2)).reshape(len(spans), -1) <= 0).any(axis=1)
        too_long_core = piece_counts(pieces.starts, pieces.ends, cores) > budget
        for k in np.flatnonzero(no_pieces | too_long_core).tolist():
            plan.skips.add(doc, spans[k].tolist(), NO_PIECES if no_pieces[k] else too_long(budget))
        encodable = np.flatnonzero(~(no_pieces | too_long_core))
        if len(encodable) == 0:
            continue
        if int(pieces.ends[-1]) <= budget:  # the whole doc fits: one window for all items
            windows = [(0, len(doc))] * len(encodable)
        else:
            windows = [tuple(w) for w in centred_windows(pieces.starts, pieces.ends, cores[encodable], budget).tolist()]
        entity_rows = getattr(doc_items, "entity_rows", None)
        window_pieces_of: Dict[Tuple[int, int], Any] = {}
        for k, window in zip(encodable.tolist(), windows):
            wp = window_pieces_of.get(window)
            if wp is None:
                wp = window_pieces_of[window] = window_pieces(pieces, window)
            x = encoder.marker_inputs_from_pieces(wp, spans[k] - window[0])
            if entity_rows is not None:  # LUKE's knowledge-enhanced input: linked spans as their entities
                rows = np.asarray(entity_rows[k], dtype=np.int64)
                x["entity_ids"] = np.where(rows >= 0, rows, x["entity_ids"])
            plan.add(x, d, [k])
    return plan


_forward = input_layer_forward(marked_plan)
