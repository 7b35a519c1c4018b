"""Attention masks: which slots of a padded ``[words | entities]`` batch hold real tokens.

Scores are masked additively: 0 on a real key, the dtype's most negative value on padding, so
that softmax gives padding (practically) zero weight and a row never divides by zero. The mask is
made in the hidden states' dtype; under autocast it follows the queries (:func:`mask_for`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AttentionMask:
    """The real tokens of a padded joint sequence, as a flag per slot and as an additive mask."""

    token_mask: torch.Tensor  # (batch, length), nonzero = real token
    additive: torch.Tensor  # (batch, 1, 1, length): 0 for real keys, dtype min for padding

    @classmethod
    def from_token_mask(cls, token_mask: torch.Tensor, dtype: torch.dtype) -> "AttentionMask":
        additive = (1.0 - token_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        return cls(token_mask=token_mask, additive=additive)


def additive_from_real(real: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(rows, length)`` booleans (True = real slot) -> the ``(rows, 1, 1, length)`` additive mask."""
    additive = np.where(real, 0.0, torch.finfo(dtype).min)[:, None, None, :]
    return torch.from_numpy(additive).to(device=device, dtype=dtype)


def mask_for(mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``mask`` in the queries' dtype (under autocast the queries may be 16-bit)."""
    return mask if mask.dtype == query.dtype else mask.to(query.dtype)
