"""What the entity typer and the relation extractor share: one marked span (pair) per input.

An *item* is one span ``((start, end),)`` or one ordered pair ``((head_start, head_end),
(tail_start, tail_end))`` of token offsets. Each item becomes one model input (the marked input
layer, :mod:`spacy_luke.layers.marked_inputs`): ``<ent>`` (and ``<ent2>``) pieces around the
span(s), the [MASK] (and [MASK2]) entity over the marker-to-marker positions, or, with
``use_kb_ids``, a linked span's own entity.
"""

from typing import Any, List, Optional, Sequence

import numpy as np
from spacy.tokens import Doc
from thinc.api import get_current_ops

from ...layers.call_plan import Item, MarkedItems
from .suggesters import Suggester, split_ragged
from .classifier import ClassifierPipe
from ...layers.kb_inputs import doc_kb_ids, kb_entity_rows

__all__ = ["Item", "MarkedItemsPipe", "doc_spans"]


def doc_spans(pipe_name: str, candidates: Optional[Suggester], docs: Sequence[Doc]) -> List[np.ndarray]:
    """Per doc, the ``(n, 2)`` token offsets to work on: ``doc.ents`` or the ``candidates`` suggester's."""
    if candidates is None:
        return [np.array([(e.start, e.end) for e in doc.ents], dtype=np.int64).reshape(-1, 2) for doc in docs]
    per_doc = split_ragged(candidates(docs, ops=get_current_ops()))
    for doc, spans in zip(docs, per_doc):
        if len(spans) and (spans.min() < 0 or spans[:, 1].max() > len(doc) or (spans[:, 0] >= spans[:, 1]).any()):
            raise ValueError(f"[{pipe_name}] the candidates suggester returned spans outside the doc or empty: {spans.tolist()[:5]}")
    return per_doc


class MarkedItemsPipe(ClassifierPipe):
    """Base of the pipes that classify marked spans or span pairs (one item per model input)."""

    n_markers = 1

    def __init__(self, vocab, model, name, *, candidates: Optional[Suggester] = None, **settings: Any):
        super().__init__(vocab, model, name, **settings)
        self.candidates = candidates

    # ------------------------------------------------------------------ inputs

    def _model_items(self, docs: Sequence[Doc], items: List[Any]) -> List[MarkedItems]:
        """Each doc's items for the marked input layer, with the input entities of linked spans
        (LUKE's knowledge-enhanced input) when ``use_kb_ids``."""
        out = []
        for doc, doc_items in zip(docs, items):
            marked = doc_items if isinstance(doc_items, MarkedItems) else MarkedItems(list(doc_items))
            if self.cfg.get("use_kb_ids") and len(marked):
                kb_ids = doc_kb_ids(doc)
                if kb_ids:
                    spans = np.asarray(marked.items, dtype=np.int64).reshape(len(marked), -1, 2)
                    rows = kb_entity_rows(kb_ids, spans.reshape(-1, 2), self._tokenizer.entity_vocab, self.cfg.get("lang"))
                    marked = MarkedItems(marked.items, rows.reshape(len(marked), -1), marked.targets)
            out.append(marked)
        return out
