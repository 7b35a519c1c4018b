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
from spacy.training import Example, validate_get_examples
from thinc.api import get_current_ops

from ..tokenization.token_pieces import TokenPieces
from .skeleton import ItemsPipe, Plan
from .candidates import Suggester, split_ragged
from .kb_inputs import doc_kb_ids, kb_entity_rows
from .loaders import CheckpointLoader, LukeCheckpoint
from .skipped import NO_PIECES, SkipLog, piece_counts, too_long
from .windows import centred_windows, window_pieces

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


class MarkedItemsPipe(ItemsPipe):
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

    def _plan(self, docs: Sequence[Doc], items: List[List[Item]]) -> Plan:
        """One input per item that can be encoded (the whole doc as words when it fits, else a
        window centred on the item). An item with a span of no word pieces (only whitespace), or
        whose spans need more word pieces than the window holds, is skipped
        (:mod:`~spacy_luke.pipeline.skipped`)."""
        encoder = self.doc_encoder
        budget = self._word_budget()
        plan = Plan(skips=SkipLog(self.name))
        used = [d for d, (doc, doc_items) in enumerate(zip(docs, items)) if len(doc_items) and len(doc)]
        for d, pieces in zip(used, self._docs_pieces([docs[d] for d in used])):
            doc, doc_items = docs[d], items[d]
            spans = np.asarray(doc_items, dtype=np.int64).reshape(len(doc_items), -1, 2)  # (items, spans per item, 2)
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
            kb_ids = doc_kb_ids(doc) if self.cfg.get("use_kb_ids") else None
            window_pieces_of: Dict[Tuple[int, int], TokenPieces] = {}
            for k, window in zip(encodable.tolist(), windows):
                wp = window_pieces_of.get(window)
                if wp is None:
                    wp = window_pieces_of[window] = window_pieces(pieces, window)
                x = encoder.marker_inputs_from_pieces(wp, spans[k] - window[0])
                if kb_ids:  # LUKE's knowledge-enhanced input: linked spans as their entities
                    rows = kb_entity_rows(kb_ids, spans[k], self._tokenizer.entity_vocab, self.cfg.get("lang"))
                    x["entity_ids"] = np.where(rows >= 0, rows, x["entity_ids"])
                plan.add(x, d, [k])
        return plan

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

    def _items_and_targets(self, example: Example) -> Tuple[List[Item], np.ndarray]:
        """The items of ``example.predicted`` to train on and their targets."""
        raise NotImplementedError

    def _training_items(self, examples: Sequence[Example]) -> List[List[Item]]:
        pairs = [(eg, self._items_and_targets(eg)) for eg in examples]
        # update() asks for the targets of the same examples next (get_loss): kept, not recomputed.
        self._last_targets = {id(eg): (eg, found) for eg, found in pairs}
        return [found[0] for _, found in pairs]

    def _targets(self, example: Example, items: List[Item]) -> np.ndarray:
        kept = getattr(self, "_last_targets", {}).pop(id(example), None)
        own_items, targets = kept[1] if kept is not None and kept[0] is example else self._items_and_targets(example)
        if list(own_items) != list(items):
            raise ValueError(f"[{self.name}] get_loss: the scores are not of this example's training items.")
        return targets
