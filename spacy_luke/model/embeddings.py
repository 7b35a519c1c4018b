"""Input embeddings: word pieces (RoBERTa style) and entities (mention-averaged positions)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .config import LukeConfig
from .mode import Dropout


def word_position_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """RoBERTa positions: non-padding pieces count from ``padding_idx + 1``; padding keeps ``padding_idx``."""
    mask = input_ids.ne(padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + padding_idx


class WordEmbeddings(nn.Module):
    """Word-piece + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        if position_ids is None:
            if input_ids is not None:
                position_ids = word_position_ids(input_ids, self.padding_idx)
            else:
                position_ids = torch.arange(
                    self.padding_idx + 1, length + self.padding_idx + 1, device=inputs_embeds.device
                ).expand(batch, length)
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


def mean_position_embeddings(table: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Mean of ``table`` rows over each entity's valid (``!= -1``) positions; zeros for none.

    ``position_ids`` is ``(..., max_mention_length)``. Done as one ``embedding_bag`` over the
    valid positions only, never materializing ``(..., max_mention_length, hidden)``.
    """
    lead = position_ids.shape[:-1]
    flat = position_ids.reshape(-1, position_ids.shape[-1])
    valid = flat != -1
    counts = valid.sum(dim=1)
    offsets = torch.cumsum(counts, dim=0) - counts
    means = F.embedding_bag(flat[valid], table, offsets, mode="mean")
    return means.reshape(*lead, table.shape[1])


class EntityEmbeddings(nn.Module):
    """Entity + mention-position + token-type embeddings.

    An entity's position embedding is the mean of the (entity-side) position embeddings of the
    word pieces of its mention; ``entity_position_ids`` is ``(batch, entities, max_mention_length)``
    with ``-1`` padding.
    """

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.entity_embeddings = nn.Embedding(config.entity_vocab_size, config.entity_emb_size)
        if config.entity_emb_size != config.hidden_size:
            self.entity_embedding_dense = nn.Linear(config.entity_emb_size, config.hidden_size, bias=False)
        else:
            self.entity_embedding_dense = None
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def mention_positions(self, position_ids: torch.Tensor) -> torch.Tensor:
        """``(batch, entities, hidden)``: each entity's mean mention-position embedding."""
        return mean_position_embeddings(self.position_embeddings.weight, position_ids)

    def forward(
        self,
        entity_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        embeddings = self.entity_embeddings(entity_ids)
        if self.entity_embedding_dense is not None:
            embeddings = self.entity_embedding_dense(embeddings)
        embeddings = embeddings + self.mention_positions(position_ids).to(embeddings.dtype)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))
