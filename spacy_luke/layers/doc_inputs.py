"""The whole-doc input layer: each doc is one item, its words the model input (no entities).

``Model[Tuple[List[Doc], List[DocItems]], Plan]``, used by luke_textcat. A doc whose word
pieces fit the word budget is one input (``<s>`` pieces ``</s>``, as transformers'
``LukeTokenizer`` builds a text without entity spans); a longer doc is covered by overlapping
windows of at most the budget, each starting half a window after the last
(:func:`~.windows.sliding_windows`), and its scores are the mean of its windows' (``Plan.reduce``
``"mean"``: the batch runner averages the rows, and shares a row's gradient out equally).
An empty doc (or one of whitespace only) has no input: its item stays unscored.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model

from .call_plan import Plan
from .doc_pieces import docs_token_pieces, input_layer_forward, input_pieces
from .head_layer import HEAD_REF, LukeHeadModel
from .skipped import NO_PIECES, SkipLog
from .windows import sliding_windows, window_pieces

DocInputs = Model[Tuple[List[Doc], List[Any]], Plan]


def build_doc_inputs(head: LukeHeadModel) -> DocInputs:
    """The whole-doc input layer of ``head``'s tokenizer and word budget."""
    return Model("luke_doc_inputs", _forward, layers=[head], refs={HEAD_REF: head}, attrs={"pipe_name": "luke"})



def doc_plan(model: DocInputs, docs: List[Doc], items: List[Any]) -> Plan:
    tokenizer, encoder, budget = input_pieces(model)
    plan = Plan(list(items), skips=SkipLog(model.attrs["pipe_name"]), reduce="mean")
    used = [d for d, (doc, doc_items) in enumerate(zip(docs, items)) if len(doc) and len(doc_items)]
    for d, pieces in zip(used, docs_token_pieces(encoder, [docs[d] for d in used])):
        if len(pieces.ids) == 0:
            plan.skips.add(docs[d], [(0, len(docs[d]))], NO_PIECES)
            continue
        if len(pieces.ids) <= budget:
            windows = [(0, pieces.n_tokens)]
        else:
            windows = sliding_windows(pieces.starts, pieces.ends, (0, pieces.n_tokens), budget)
        for window in windows:
            ids = window_pieces(pieces, window).ids
            if len(ids) == 0 or len(ids) > budget:  # whitespace only; one token longer than the window
                continue
            plan.add(word_input(tokenizer, ids), d, [0])
    return plan


def word_input(tokenizer, piece_ids: np.ndarray) -> dict:
    """The words-only model input of a window's pieces: ``<s>`` pieces ``</s>``."""
    input_ids = np.empty(len(piece_ids) + 2, dtype=np.int64)
    input_ids[0], input_ids[-1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    input_ids[1:-1] = piece_ids
    return {"input_ids": input_ids, "attention_mask": np.ones(len(input_ids), dtype=np.int64)}


_forward = input_layer_forward(doc_plan)
