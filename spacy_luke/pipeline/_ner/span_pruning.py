"""luke_ner's optional first stage: a learned span pruner that keeps the likely candidates per doc.

Without it, every candidate span of a sentence (about eight per word with max_mention_length 8)
is an entity input of the full LUKE pass. With ``pruning`` set (``spacy-luke.span_pruning.v1``),
the pipe first scores every candidate with the cheap pruner of
:mod:`spacy_luke.model.span_pruner` (the first ``layers`` encoder layers over the words alone,
then a small span scorer) and sends only the best ``ceil(keep_per_word x words)`` of each doc
(those with a pruner probability of at least ``min_probability``) to the full pass. The others
get no entity, as if the full pass had called them NIL.

The pruner is a second head of luke_ner's model (:mod:`spacy_luke.layers.span_pruner`): the
model prunes before the full pass. It learns alongside the NER head (``spacy train``,
``nlp.update``: binary cross entropy against the gold entities, on detached word states, through
its own ``begin_update``), or afterwards on a trained pipeline with ``python -m spacy_luke
train-pruner``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from spacy.training import Example
from spacy.util import registry

from ...layers.head_layer import get_torch_module
from ...layers.span_pruner import binary_loss, budget, pruner_targets

@dataclass(frozen=True)
class SpanPruning:
    """How luke_ner prunes its candidates (see the module docstring and :func:`make_span_pruning`)."""

    layers: int = 2
    hidden_width: int = 128
    keep_per_word: float = 1.0
    min_probability: float = 0.0

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"span pruning: layers must be at least 1, got {self.layers}.")
        if self.hidden_width < 1:
            raise ValueError(f"span pruning: hidden_width must be at least 1, got {self.hidden_width}.")
        if not self.keep_per_word > 0:
            raise ValueError(f"span pruning: keep_per_word must be positive, got {self.keep_per_word}.")
        if not 0.0 <= self.min_probability < 1.0:
            raise ValueError(f"span pruning: min_probability must be in [0, 1), got {self.min_probability}.")

    def budget(self, n_words: int) -> int:
        """Candidates a doc of ``n_words`` tokens keeps at most (at least one)."""
        return budget(self.keep_per_word, n_words)


@registry.misc("spacy-luke.span_pruning.v1")
def make_span_pruning(layers: int = 2, hidden_width: int = 128, keep_per_word: float = 1.0, min_probability: float = 0.0) -> SpanPruning:
    """A learned span pruner for luke_ner: only the likely candidates get the full LUKE pass.

    layers (int): encoder layers the pruner runs over the words (no entities) for its features; fewer is cheaper.
    hidden_width (int): width of the pruner's hidden layer.
    keep_per_word (float): candidates kept per token of the doc (rounded up, at least one): lower is faster and may drop entities (measured in docs/benchmarks.md).
    min_probability (float): also drop candidates the pruner gives less than this probability of being an entity (0: keep the whole budget).
    """
    return SpanPruning(layers, hidden_width, keep_per_word, min_probability)


def ensure_pruner(pipe: "LukeNER", pruning: SpanPruning) -> None:
    """Give the pipe's model a new span pruner of ``pruning``'s shape, unless it has one already."""
    from ...model.span_pruner import SpanPrunerConfig, add_span_pruner

    head = get_torch_module(pipe.model)
    if head.span_pruner is None:
        add_span_pruner(head, SpanPrunerConfig(layers=pruning.layers, hidden_width=pruning.hidden_width))
        return
    have = head.span_pruner.settings
    if (have.layers, have.hidden_width) != (pruning.layers, pruning.hidden_width):
        warnings.warn(
            f"[{pipe.name}] the weights' span pruner reads {have.layers} layers with hidden width {have.hidden_width}, "
            f"not the {pruning.layers} and {pruning.hidden_width} of the pruning setting: the weights' pruner is used. "
            "Set pruning's layers and hidden_width to match, or start from weights without a pruner.",
            stacklevel=2,
        )


def update_pruner(pipe: "LukeNER", examples: Sequence[Example], items: List[Any], losses: Dict[str, float]) -> float:
    """One learning step of the span pruner on the batch's candidates (gradients only; the
    optimizer step is the pipe's); its loss goes to ``losses[f"{pipe.name}_pruner"]``.

    ``items``: each doc's candidates with their gold label index (``targets``, as luke_ner's
    training items carry them).
    """
    return pruner_step(pipe, examples, items, losses)[0]


def pruner_step(
    pipe: "LukeNER", examples: Sequence[Example], items: List[Any], losses: Dict[str, float]
) -> Tuple[float, List[np.ndarray]]:
    """:func:`update_pruner`, and the pruner's logit of each doc's candidates in that one pass
    (-inf where no input holds the candidate): candidate selection reads them, so the pruner's
    windows run once per update."""
    from ...layers.skipped import LukeSkippedSpanWarning

    pruner = pipe.model.get_ref("span_pruner")
    docs = [eg.predicted for eg in examples]
    with warnings.catch_warnings():  # the classifier's pass of the same candidates says so already
        warnings.simplefilter("ignore", LukeSkippedSpanWarning)
        scores, backprop = pruner.begin_update((docs, items))
    logits = [np.where(s.scored, s.values[:, 0] if s.values.shape[1] else 0.0, -np.inf).astype(np.float32) for s in scores]
    targets = [pruner_targets(x.targets, pipe._nil) for x in items]
    # Over the candidates some input holds (those that cannot be encoded have no row).
    normalizer = sum(int(((t >= 0) & s.scored).sum()) for t, s in zip(targets, scores))
    if normalizer == 0:
        return 0.0, logits
    loss, grads = 0.0, []
    for t, s in zip(targets, scores):
        part, grad = binary_loss(s.values, t, normalizer, s.scored)
        loss += part
        grads.append(grad)
    backprop(grads)
    key = f"{pipe.name}_pruner"
    losses[key] = losses.get(key, 0.0) + loss
    return loss, logits


def pruning_of(value) -> Optional[SpanPruning]:
    """The factory's ``pruning`` setting as SpanPruning (a dict from a saved cfg, or None)."""
    if value is None or isinstance(value, SpanPruning):
        return value
    if isinstance(value, dict):
        return SpanPruning(**value)
    raise ValueError(f"pruning must be null or spacy-luke.span_pruning.v1 settings, got {value!r}.")
