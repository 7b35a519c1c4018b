"""Self-attention over words and entities, with LUKE's entity-aware query projections.

Keys and values are shared by words and entities. With entity-aware attention, the query
projection depends on the (query type, key type) pair: word->word uses ``query``,
word->entity ``w2e_query``, entity->word ``e2w_query``, entity->entity ``e2e_query``.

Two implementations, switchable per module (``impl``) and tested against each other:

- ``"eager"``: four score blocks computed separately, as the paper writes it.
- ``"sdpa"``: one ``scaled_dot_product_attention`` call. Entity-aware queries become
  ``[q_to_words | q_to_entities]`` (head dimension doubled) against keys that are ``[k | 0]`` for
  words and ``[0 | k]`` for entities, so each dot product picks the right query; the scale is
  set explicitly to ``1/sqrt(head_size)``. When the four query projections are equal (true of
  every pretrained checkpoint) plain attention is used instead.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import LukeConfig

ATTENTION_IMPLS = ("sdpa", "eager")


class EntityAwareSelfAttention(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        hidden = config.hidden_size
        self.use_entity_aware_attention = config.use_entity_aware_attention
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        if self.use_entity_aware_attention:
            self.w2e_query = nn.Linear(hidden, hidden)
            self.e2w_query = nn.Linear(hidden, hidden)
            self.e2e_query = nn.Linear(hidden, hidden)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.impl = "sdpa"
        # Set by `detect_shared_queries` after loading: True when the 4 queries are identical.
        self.queries_shared = False

    @torch.no_grad()
    def detect_shared_queries(self) -> bool:
        """Whether the entity-aware queries equal ``query`` (then plain attention is exact)."""
        shared = True
        if self.use_entity_aware_attention:
            for proj in (self.w2e_query, self.e2w_query, self.e2e_query):
                if proj.weight.is_meta or not (
                    torch.equal(proj.weight, self.query.weight) and torch.equal(proj.bias, self.query.bias)
                ):
                    shared = False
                    break
        self.queries_shared = shared
        return shared

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(
        self,
        word_hidden: torch.Tensor,
        entity_hidden: Optional[torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        n_words = word_hidden.shape[1]
        hidden = word_hidden if entity_hidden is None else torch.cat([word_hidden, entity_hidden], dim=1)
        key = self._split(self.key(hidden))
        value = self._split(self.value(hidden))
        entity_aware = (
            entity_hidden is not None
            and self.use_entity_aware_attention
            and not (self.queries_shared and not self.training)
        )
        scale = 1.0 / math.sqrt(self.head_size)
        probs = None
        if output_attentions or self.impl == "eager":
            if entity_aware:
                q_ww = self._split(self.query(word_hidden))
                q_we = self._split(self.w2e_query(word_hidden))
                q_ew = self._split(self.e2w_query(entity_hidden))
                q_ee = self._split(self.e2e_query(entity_hidden))
                k_w, k_e = key[:, :, :n_words], key[:, :, n_words:]
                word_scores = torch.cat([q_ww @ k_w.transpose(-1, -2), q_we @ k_e.transpose(-1, -2)], dim=3)
                entity_scores = torch.cat([q_ew @ k_w.transpose(-1, -2), q_ee @ k_e.transpose(-1, -2)], dim=3)
                scores = torch.cat([word_scores, entity_scores], dim=2)
            else:
                query = self._split(self.query(hidden))
                scores = query @ key.transpose(-1, -2)
            scores = scores * scale
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = torch.softmax(scores, dim=-1)
            context = self.dropout(probs) @ value
        else:
            if entity_aware:
                q_word = torch.cat(
                    [self._split(self.query(word_hidden)), self._split(self.w2e_query(word_hidden))], dim=-1
                )
                q_entity = torch.cat(
                    [self._split(self.e2w_query(entity_hidden)), self._split(self.e2e_query(entity_hidden))], dim=-1
                )
                query = torch.cat([q_word, q_entity], dim=2)
                zeros_w = key.new_zeros(key.shape[0], key.shape[1], n_words, self.head_size)
                zeros_e = key.new_zeros(key.shape[0], key.shape[1], key.shape[2] - n_words, self.head_size)
                key = torch.cat(
                    [torch.cat([key[:, :, :n_words], zeros_w], dim=-1), torch.cat([zeros_e, key[:, :, n_words:]], dim=-1)],
                    dim=2,
                )
            else:
                query = self._split(self.query(hidden))
            context = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=self.dropout_prob if self.training else 0.0,
                scale=scale,
            )
        batch = context.shape[0]
        context = context.transpose(1, 2).reshape(batch, -1, self.num_heads * self.head_size)
        word_out = context[:, :n_words]
        entity_out = None if entity_hidden is None else context[:, n_words:]
        return word_out, entity_out, probs


class AttentionOutput(nn.Module):
    """Output projection, dropout, residual and post-LayerNorm."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.self = EntityAwareSelfAttention(config)
        self.output = AttentionOutput(config)

    def forward(self, word_hidden, entity_hidden, attention_mask, output_attentions=False):
        word_out, entity_out, probs = self.self(word_hidden, entity_hidden, attention_mask, output_attentions)
        if entity_hidden is None:
            return self.output(word_out, word_hidden), None, probs
        n_words = word_hidden.shape[1]
        out = self.output(torch.cat([word_out, entity_out], dim=1), torch.cat([word_hidden, entity_hidden], dim=1))
        return out[:, :n_words], out[:, n_words:], probs
