"""Probabilities, losses and P/R/F: the numpy helpers every LUKE pipe shares.

Losses are sums over the rows that count, divided by ``normalizer`` (the number of rows the
whole update counts), so that a batch split into passes gets the same gradients as one pass.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    normalizer: float,
    mask: Optional[np.ndarray] = None,
    weights: Optional[np.ndarray] = None,
) -> Tuple[float, np.ndarray]:
    """Summed cross entropy / normalizer over rows with ``targets >= 0`` (and ``mask``), each row
    times its ``weights`` (default 1), and its gradient."""
    grad = np.zeros_like(logits, dtype=np.float32)
    counted = targets >= 0 if mask is None else mask & (targets >= 0)
    rows = np.flatnonzero(counted)
    if len(rows) == 0:
        return 0.0, grad
    probs = softmax(logits[rows].astype(np.float64))
    picked = probs[np.arange(len(rows)), targets[rows]]
    row_losses = -np.log(np.clip(picked, 1e-12, None))
    probs[np.arange(len(rows)), targets[rows]] -= 1.0
    if weights is not None:
        row_weights = np.asarray(weights, dtype=np.float64)[rows]
        row_losses = row_losses * row_weights
        probs *= row_weights[:, None]
    loss = float(row_losses.sum() / normalizer)
    grad[rows] = probs / normalizer
    return loss, grad


def binary_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, normalizer: int, mask: Optional[np.ndarray] = None
) -> Tuple[float, np.ndarray]:
    """Summed (over labels) binary cross entropy with logits / normalizer, and its gradient.

    ``targets`` is a 0/1 float matrix; rows whose first value is negative (or not in ``mask``)
    are ignored.
    """
    grad = np.zeros_like(logits, dtype=np.float32)
    counted = targets[:, 0] >= 0 if len(targets) else np.zeros(0, dtype=bool)
    if mask is not None:
        counted = counted & mask
    rows = np.flatnonzero(counted)
    if len(rows) == 0:
        return 0.0, grad
    x, y = logits[rows].astype(np.float64), targets[rows].astype(np.float64)
    loss = float((np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))).sum() / normalizer)
    grad[rows] = (sigmoid(x) - y) / normalizer
    return loss, grad


def prf(tp: int, n_pred: int, n_gold: int) -> Tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f
