"""What one call of a LUKE items model holds, between its layers: the plan of model inputs, and
the scores it returns per doc.

A LUKE pipe's thinc model is ``Model[Tuple[List[Doc], List[Items]], List[ItemScores]]``: the
docs and, per doc, the items the pipe scores (candidate spans, typed spans, span pairs, mentions,
the whole doc). Its input layer turns them into a :class:`Plan` (model inputs and which doc items
each input's output rows belong to); its batch runner runs the plan and scatters the rows back
into one :class:`ItemScores` per doc.

A doc's items:

- span inputs: an ``(n, 2)`` array of token ``[start, end)`` offsets, or an object with ``spans``
  (that array) and optionally ``entity_rows`` (``(n,)`` int64: the input entity of each span, -1
  for [MASK]), ``candidate_rows`` (per span, the entity rows to score: the linker) and
  ``search_inputs`` (the model inputs of a whole-table search); :class:`SpanItems` is one;
- marked inputs: a list of items (``((start, end),)`` spans or ``((start, end), (start, end))``
  pairs), or :class:`MarkedItems` (with the input entities of their spans);
- whole-doc inputs: none (the doc itself is the item).

Training items may carry their ``targets`` (the gold of each item, computed with them) and the
``weights`` each item counts with in the loss (luke_ner's sampled candidates).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .skipped import SkipLog


Item = Tuple[Tuple[int, int], ...]


@dataclass
class SpanItems:
    """A doc's spans for the span inputs, with their own input entities (-1: [MASK])."""

    spans: np.ndarray
    entity_rows: Optional[np.ndarray] = None
    targets: Optional[np.ndarray] = None
    weights: Optional[np.ndarray] = None  # (n,) float32: what each span counts in the loss (None: 1)

    def __len__(self) -> int:
        return len(self.spans)


@dataclass
class MarkedItems:
    """A doc's marked items (spans or pairs), each one model input.

    entity_rows: ``(n, spans per item)`` int64, the input entity of each marked span (-1: [MASK],
    [MASK2]); targets: the gold of each item (training).
    """

    items: List[Item]
    entity_rows: Optional[np.ndarray] = None
    targets: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, index):
        return self.items[index]


@dataclass
class ItemScores:
    """One doc's items and their model outputs (rows of skipped items are not ``scored``).

    Unpacks as ``items, values, scored``. ids: for the entity linker, the entity rows the
    ``values`` (logits) belong to, ``(n, C)`` int64 (candidate lists, or the best rows of a
    whole-table search); None for other heads.
    """

    items: Any
    values: np.ndarray  # (n, width) float32: logits, or vectors
    scored: np.ndarray  # (n,) bool
    ids: Optional[np.ndarray] = None

    def __iter__(self):
        return iter((self.items, self.values, self.scored))

    def __getitem__(self, index):
        return (self.items, self.values, self.scored)[index]

    def __len__(self) -> int:
        return 3

    def _replace(self, **changes) -> "ItemScores":
        return replace(self, **changes)

    @property
    def spans(self):
        return item_spans(self.items)

    @property
    def logits(self) -> np.ndarray:
        return self.values


@dataclass
class Plan:
    """The model inputs of one call, and which doc items each input's output rows belong to.

    inputs: ``SpanPass`` es (span inputs) or dicts of unpadded arrays (marked or whole-doc inputs).
    owners: per input, (doc index, the indices of its items in that doc).
    extras: per input (span inputs only), arrays over its entity slots: ``entity_ids`` (the input
        entities, where they are not [MASK]) and ``candidate_ids`` (the linker's rows to score).
    constants: arrays every padded batch of the call gets (the linker's whole-table search).
    positions: whether the head reads ``entity_start_positions`` / ``entity_end_positions``.
    reduce: how the rows of several inputs that score the same item combine: None (each item
        has one input), or ``"mean"`` (a long doc's windows).
    """

    items: List[Any]
    inputs: List[Any] = field(default_factory=list)
    owners: List[Tuple[int, np.ndarray]] = field(default_factory=list)
    skips: Optional[SkipLog] = None
    extras: List[Optional[Dict[str, np.ndarray]]] = field(default_factory=list)
    constants: Dict[str, np.ndarray] = field(default_factory=dict)
    positions: bool = True
    reduce: Optional[str] = None

    def add(self, model_input: Any, doc_index: int, item_indices: Union[np.ndarray, Sequence[int]], extras=None) -> None:
        self.inputs.append(model_input)
        self.owners.append((doc_index, np.asarray(item_indices, dtype=np.int64).reshape(-1)))
        self.extras.append(extras)

    def subset(self, chosen: Sequence[int]) -> "Plan":
        """The plan of the inputs ``chosen`` only (global decoding runs the unresolved ones again)."""
        return Plan(
            self.items, [self.inputs[i] for i in chosen], [self.owners[i] for i in chosen], self.skips,
            [self.extras[i] for i in chosen], self.constants, self.positions, self.reduce,
        )


def item_spans(items: Any) -> np.ndarray:
    """The ``(n, 2)`` token spans of a doc's span items (an array, or an object with ``spans``)."""
    return items if isinstance(items, np.ndarray) else getattr(items, "spans", items)


def empty_scores(items: List[Any], width: int) -> List[ItemScores]:
    """Unscored rows of ``width`` columns for every doc's items."""
    return [ItemScores(x, np.zeros((len(x), width), dtype=np.float32), np.zeros(len(x), dtype=bool)) for x in items]
