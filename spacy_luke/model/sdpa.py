"""Scaled dot-product attention over head-split queries, keys and values.

``softmax(q k^T * scale + mask) v``, with dropout on the probabilities in training. Two
implementations, chosen per call (:attr:`AttentionOptions.impl <.attention_options.AttentionOptions>`)
and tested against each other and against transformers:

- ``"sdpa"``: one ``torch.nn.functional.scaled_dot_product_attention`` call (fused kernels);
- ``"eager"``: the scores written out; the only one that can return the probabilities.

The scale is always given explicitly: entity-aware attention doubles the head width (see
:mod:`.attention`) but keeps ``1 / sqrt(head_size)``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .masking import mask_for
from .mode import Dropout, is_training


class ScaledDotProductAttention(nn.Module):
    """Attention of ``(batch, heads, length, head)`` queries over keys and values (no parameters)."""

    def __init__(self, dropout_prob: float):
        super().__init__()
        self.dropout = Dropout(dropout_prob)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: Optional[torch.Tensor],
        *,
        scale: float,
        eager: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The context, and the probabilities when ``eager`` (else None)."""
        if eager:
            return self.from_scores(query @ key.transpose(-1, -2), value, mask, scale=scale)
        return self.fused(query, key, value, mask, scale=scale), None

    def from_scores(
        self, scores: torch.Tensor, value: torch.Tensor, mask: Optional[torch.Tensor], *, scale: float
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Eager attention from the unscaled scores ``q k^T``: (context, probabilities)."""
        scores = scores * scale
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        return self.dropout(probs) @ value, probs

    def fused(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Optional[torch.Tensor], *, scale: float
    ) -> torch.Tensor:
        """One ``scaled_dot_product_attention`` call: the context."""
        return F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=None if mask is None else mask_for(mask, query),
            dropout_p=self.dropout.p if is_training(self) else 0.0,
            scale=scale,
        )
