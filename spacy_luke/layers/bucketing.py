"""Greedy bucketing of variable-size items into batches bounded by padded cost (no torch, no spaCy).

Used by the pipes (model inputs of word pieces + entity slots) and by the unpadded encoder
(attention groups of rows): one rule for both.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple


def bucket_by_cost(costs: Sequence[Tuple[int, int]], max_cost: int, max_padding: float = float("inf")) -> List[List[int]]:
    """Group items ``(n_words, n_entities)`` into batches that waste little on padding.

    Items are sorted by size (words + entities); a batch grows while its padded cost,
    ``len(batch) * (max words + max entities)``, stays within ``max_cost`` and within
    ``1 + max_padding`` times the real slots of its items. An item over ``max_cost`` gets a
    batch of its own. Returns lists of item indices.
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i][0] + costs[i][1], costs[i]))
    batches: List[List[int]] = []
    current: List[int] = []
    max_words = max_entities = real = 0
    for i in order:
        words, entities = costs[i]
        new_words, new_entities = max(max_words, words), max(max_entities, entities)
        padded = (len(current) + 1) * (new_words + new_entities)
        if current and (padded > max_cost or padded > (1.0 + max_padding) * (real + words + entities)):
            batches.append(current)
            current, new_words, new_entities, real = [], words, entities, 0
        current.append(i)
        max_words, max_entities = new_words, new_entities
        real += words + entities
    if current:
        batches.append(current)
    return batches
