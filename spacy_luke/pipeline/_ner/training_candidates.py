"""Which candidate spans luke_ner's head trains on in an update (``training_candidates``).

Without the setting, every training update classifies every candidate span of every sentence
(every span of up to ``max_mention_length`` tokens: about seven per word), although a sentence
holds about one entity per ten words and prediction with ``pruning`` sends only the pruner's best
``keep_per_word`` candidates per word to the head. With ``training_candidates`` set
(``spacy-luke.TrainingCandidates.v1``), each update's head pass gets, per doc:

1. every gold span (always: the rule never drops an entity);
2. the span pruner's kept candidates (the ones prediction would send to the head: the best
   ``ceil(keep_per_word x tokens)`` by pruner score), when ``pruning`` is set and the pruner has
   learned for ``pruner_warmup`` updates of this training run;
3. each other candidate with probability ``sample_share``, drawn from a generator seeded by
   ``(seed, update number)``: the same seed and the same updates select the same candidates.

With ``reweight`` (the default) a sampled candidate counts ``1 / sample_share`` in the loss, so
the loss stays an unbiased estimate of the loss over every candidate. The pruner itself learns on
every candidate, from the one pass whose scores choose the kept ones. Prediction is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from spacy.util import registry

from ...layers.call_plan import SpanItems
from ...layers.span_pruner import budget


@dataclass(frozen=True)
class TrainingCandidates:
    """luke_ner's candidate selection in training (see the module docstring)."""

    sample_share: float = 0.1
    use_pruner: bool = True
    pruner_warmup: int = 50
    reweight: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_share <= 1.0:
            raise ValueError(f"training_candidates: sample_share must be in [0, 1], got {self.sample_share}.")
        if self.pruner_warmup < 0:
            raise ValueError(f"training_candidates: pruner_warmup must be 0 or more, got {self.pruner_warmup}.")

    def generator(self, step: int) -> np.random.Generator:
        """The random generator of update number ``step``."""
        return np.random.default_rng([int(self.seed), int(step)])


@registry.misc("spacy-luke.TrainingCandidates.v1")
def make_training_candidates(
    sample_share: float = 0.1, use_pruner: bool = True, pruner_warmup: int = 50, reweight: bool = True, seed: int = 0
) -> TrainingCandidates:
    """The candidates luke_ner's head trains on: every gold span, the span pruner's kept ones, a sampled share of the rest.

    sample_share (float): probability that a candidate neither gold nor kept by the pruner is trained on in an update (1.0: all of them).
    use_pruner (bool): also train on the candidates the span pruner keeps (as prediction does); needs the pipe's pruning setting.
    pruner_warmup (int): updates the pruner learns before its kept candidates are used (until then: gold spans and the sampled share).
    reweight (bool): a sampled candidate counts 1 / sample_share in the loss, so the loss estimates the loss over every candidate.
    seed (int): seed of the sampling: the same seed and the same updates select the same candidates.
    """
    return TrainingCandidates(sample_share, use_pruner, pruner_warmup, reweight, seed)


def candidates_of(value) -> Optional[TrainingCandidates]:
    """The factory's ``training_candidates`` setting as TrainingCandidates (a dict, or None)."""
    if value is None or isinstance(value, TrainingCandidates):
        return value
    if isinstance(value, dict):
        return TrainingCandidates(**value)
    raise ValueError(f"training_candidates must be null or spacy-luke.TrainingCandidates.v1 settings, got {value!r}.")


def select(
    targets: np.ndarray,
    nil: int,
    rng: np.random.Generator,
    rule: TrainingCandidates,
    pruner_logits: Optional[np.ndarray] = None,
    keep: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """One doc's selected candidates: ``(indices, loss weights)``, indices in candidate order.

    targets: each candidate's gold label index (``nil``: not an entity, -1: unknown, never selected).
    pruner_logits: the pruner's logit of each candidate (-inf: no input holds it), or None;
    keep: how many of the best by pruner logit are kept.
    """
    n = len(targets)
    known = targets >= 0
    chosen = known & (targets != nil)
    if pruner_logits is not None and keep > 0:
        best = np.argsort(-pruner_logits, kind="stable")[:keep]
        best = best[np.isfinite(pruner_logits[best])]
        chosen[best] = True
    draws = rng.random(n)  # one draw per candidate, whatever is chosen: the sample depends on the seed only
    sampled = known & ~chosen & (draws < rule.sample_share)
    indices = np.flatnonzero(chosen | sampled)
    weights = np.ones(len(indices), dtype=np.float32)
    if rule.reweight and 0.0 < rule.sample_share < 1.0:
        weights[sampled[indices]] = 1.0 / rule.sample_share
    return indices, weights


def select_items(
    items: Sequence[SpanItems],
    n_words: Sequence[int],
    nil: int,
    rule: TrainingCandidates,
    step: int,
    pruner_logits: Optional[List[np.ndarray]] = None,
    keep_per_word: float = 1.0,
) -> List[SpanItems]:
    """Each doc's training items reduced to the selected candidates, with their loss ``weights``."""
    rng = rule.generator(step)
    selected = []
    for d, x in enumerate(items):
        logits = None if pruner_logits is None else pruner_logits[d]
        keep = budget(keep_per_word, n_words[d]) if logits is not None else 0
        indices, weights = select(x.targets, nil, rng, rule, logits, keep)
        entity_rows = None if x.entity_rows is None else x.entity_rows[indices]
        selected.append(SpanItems(x.spans[indices], entity_rows=entity_rows, targets=x.targets[indices], weights=weights))
    return selected
