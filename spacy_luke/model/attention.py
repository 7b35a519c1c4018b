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

Fast paths, each switchable and tested against the plain path:

- shared queries (``queries_shared``): detected after loading and re-checked whenever the query
  weights change (a training step, ``load_state_dict``), so toggling ``train()``/``eval()`` (as
  thinc does around every prediction) never leaves the shortcut stale or switched off;
- fused QKV (``fused_qkv``, off by default): with shared queries and in eval mode, one
  ``(3 * hidden) x hidden`` product instead of three, from a fused copy of the weights built after
  loading (the checkpoint keeps its separate ``query``/``key``/``value`` tensors). It costs one more
  copy of those weights and gave no gain on a 2-core AVX2 CPU; it is meant for GPUs.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .config import LukeConfig
from .mode import Dropout, is_training

if TYPE_CHECKING:
    from .unpadded import UnpaddedLayout, Workspace

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
        self.dropout = Dropout(config.attention_probs_dropout_prob)
        self.impl = "sdpa"
        self.fused_qkv = False
        # Set by `detect_shared_queries` after loading: True when the 4 queries are identical.
        self.queries_shared = False
        # (weights key, shared?) of the last check; ``frozen_shared`` fixes the answer (inference views).
        self._shared_cache: Optional[Tuple[tuple, bool]] = None
        self._fused_cache: Optional[Tuple[tuple, torch.Tensor, torch.Tensor]] = None
        self.frozen_shared: Optional[bool] = None

    def _weights_key(self, names: Optional[Tuple[str, ...]] = None) -> tuple:
        """Identity, version, device and storage of the named projections' tensors (changes with the weights)."""
        if names is None:
            names = ("query", "w2e_query", "e2w_query", "e2e_query") if self.use_entity_aware_attention else ()
        key = []
        for name in names:
            proj = getattr(self, name, None)
            weight = getattr(proj, "weight", None)
            if not isinstance(weight, torch.Tensor):
                return ()
            for tensor in (weight, proj.bias):
                key.append((id(tensor), tensor._version, tensor.device, tensor.data_ptr()))
        return tuple(key)

    @torch.no_grad()
    def detect_shared_queries(self) -> bool:
        """Whether the entity-aware queries equal ``query`` (then plain attention is exact)."""
        if self.frozen_shared is not None:
            self.queries_shared = self.frozen_shared
            return self.frozen_shared
        shared = True
        if self.use_entity_aware_attention:
            for proj in (self.w2e_query, self.e2w_query, self.e2e_query):
                if proj.weight.is_meta or not (
                    torch.equal(proj.weight, self.query.weight) and torch.equal(proj.bias, self.query.bias)
                ):
                    shared = False
                    break
        self.queries_shared = shared
        self._shared_cache = (self._weights_key(), shared)
        return shared

    def _queries_are_shared(self) -> bool:
        """``queries_shared``, re-detected (in eval mode) when the query weights changed since the last check."""
        if self.frozen_shared is not None:
            return self.frozen_shared
        cache = self._shared_cache
        if cache is None or cache[0] != self._weights_key():
            return self.detect_shared_queries()
        self.queries_shared = cache[1]
        return cache[1]

    def _fused_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        key = self._weights_key(("query", "key", "value"))
        cache = self._fused_cache
        if cache is None or cache[0] != key:
            with torch.no_grad():
                weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
                bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
            cache = self._fused_cache = (key, weight, bias)
        return cache[1], cache[2]

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
        context, probs = self.forward_joint(hidden, n_words if entity_hidden is not None else None, attention_mask, output_attentions)
        word_out = context[:, :n_words]
        entity_out = None if entity_hidden is None else context[:, n_words:]
        return word_out, entity_out, probs

    def forward_joint(
        self,
        hidden: torch.Tensor,
        n_words: Optional[int],
        attention_mask: Optional[torch.Tensor],
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Attention over the joint ``[words | entities]`` sequence (``n_words`` None: words only)."""
        has_entities = n_words is not None and n_words < hidden.shape[1]
        if n_words is None:
            n_words = hidden.shape[1]
        if is_training(self) and torch.is_grad_enabled():
            self._shared_cache = None  # the optimizer may change the queries: check again in eval
        shared = not is_training(self) and self._queries_are_shared()
        entity_aware = has_entities and self.use_entity_aware_attention and not shared
        scale = 1.0 / math.sqrt(self.head_size)
        probs = None
        if self.fused_qkv and not entity_aware and not is_training(self) and not output_attentions and not torch.is_grad_enabled():
            weight, bias = self._fused_weights()
            batch, length, _ = hidden.shape
            qkv = F.linear(hidden, weight, bias).view(batch, length, 3, self.num_heads, self.head_size)
            query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            key = self._split(self.key(hidden))
            value = self._split(self.value(hidden))
            query = None
        if output_attentions or self.impl == "eager":
            if entity_aware:
                word_hidden, entity_hidden = hidden[:, :n_words], hidden[:, n_words:]
                q_ww = self._split(self.query(word_hidden))
                q_we = self._split(self.w2e_query(word_hidden))
                q_ew = self._split(self.e2w_query(entity_hidden))
                q_ee = self._split(self.e2e_query(entity_hidden))
                k_w, k_e = key[:, :, :n_words], key[:, :, n_words:]
                word_scores = torch.cat([q_ww @ k_w.transpose(-1, -2), q_we @ k_e.transpose(-1, -2)], dim=3)
                entity_scores = torch.cat([q_ew @ k_w.transpose(-1, -2), q_ee @ k_e.transpose(-1, -2)], dim=3)
                scores = torch.cat([word_scores, entity_scores], dim=2)
            else:
                if query is None:
                    query = self._split(self.query(hidden))
                scores = query @ key.transpose(-1, -2)
            scores = scores * scale
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = torch.softmax(scores, dim=-1)
            context = self.dropout(probs) @ value
        else:
            if entity_aware:
                word_hidden, entity_hidden = hidden[:, :n_words], hidden[:, n_words:]
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
                # Values padded to the same doubled width: SDPA's fused kernels need equal q/v head
                # sizes (with unequal ones it falls back to its math path, 2-4x slower on CPU).
                value = torch.cat([value, torch.zeros_like(value)], dim=-1)
            elif query is None:
                query = self._split(self.query(hidden))
            if attention_mask is not None and attention_mask.dtype != query.dtype:
                attention_mask = attention_mask.to(query.dtype)  # autocast: the mask follows the queries
            context = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=self.dropout_prob if is_training(self) else 0.0,
                scale=scale,
            )
            context = context[..., : self.head_size]
        batch = context.shape[0]
        context = context.transpose(1, 2).reshape(batch, -1, self.num_heads * self.head_size)
        return context, probs


    def forward_unpadded(
        self, flat: torch.Tensor, layout: "UnpaddedLayout", workspace: Optional["Workspace"] = None
    ) -> torch.Tensor:
        """Attention over the real tokens ``flat`` (``(tokens, hidden)``) of ``layout``'s rows.

        Shared queries: the Q/K/V projections run once over all tokens (one large product), and
        each attention group gathers its rows for one SDPA call. Entity-aware queries: each group
        runs :meth:`forward_joint` on its ``[words | entities]`` rows. With a ``workspace``
        (inference), the projections and the context are written into its buffers.
        """
        if workspace is not None:
            return self._forward_unpadded_inference(flat, layout, workspace)
        if is_training(self) and torch.is_grad_enabled():
            self._shared_cache = None  # the optimizer may change the queries: check again in eval
        shared = not is_training(self) and self._queries_are_shared()
        entity_aware = layout.has_entities and self.use_entity_aware_attention and not shared
        hidden_size = self.num_heads * self.head_size
        pieces = []
        if entity_aware:
            for group in layout.groups:
                rows = flat.index_select(0, group.slots).view(group.n_rows, group.length, -1)
                context, _ = self.forward_joint(rows, group.n_words, group.mask)
                pieces.append(context.reshape(-1, hidden_size).index_select(0, group.real_slots))
        else:
            if self.fused_qkv and not is_training(self) and not torch.is_grad_enabled():
                weight, bias = self._fused_weights()
                query, key, value = F.linear(flat, weight, bias).split(hidden_size, dim=-1)
            else:
                query, key, value = self.query(flat), self.key(flat), self.value(flat)
            scale = 1.0 / math.sqrt(self.head_size)
            dropout = self.dropout_prob if is_training(self) else 0.0
            for group in layout.groups:

                def rows(x: torch.Tensor) -> torch.Tensor:
                    return x.index_select(0, group.slots).view(group.n_rows, group.length, self.num_heads, self.head_size).transpose(1, 2)

                q = rows(query)
                context = F.scaled_dot_product_attention(
                    q, rows(key), rows(value), attn_mask=group.mask.to(q.dtype), dropout_p=dropout, scale=scale
                )
                pieces.append(context.transpose(1, 2).reshape(-1, hidden_size).index_select(0, group.real_slots))
        if not pieces:
            return flat.new_zeros(flat.shape)
        values = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return values.new_zeros(flat.shape[0], hidden_size).index_copy(0, layout.real_tokens, values)

    def _forward_unpadded_inference(self, flat: torch.Tensor, layout: "UnpaddedLayout", workspace: "Workspace") -> torch.Tensor:
        """:meth:`forward_unpadded` in inference, into ``workspace.context`` (which it returns)."""
        context = workspace.context
        hidden_size = self.num_heads * self.head_size
        shared = self._queries_are_shared()
        if layout.has_entities and self.use_entity_aware_attention and not shared:
            for group in layout.groups:
                rows = flat.index_select(0, group.slots).view(group.n_rows, group.length, -1)
                values, _ = self.forward_joint(rows, group.n_words, group.mask)
                context.index_copy_(0, group.real_tokens, values.reshape(-1, hidden_size).index_select(0, group.real_slots))
            return context
        qkv = workspace.qkv
        self._project_qkv(flat, qkv, workspace)
        scale = 1.0 / math.sqrt(self.head_size)
        for group in layout.groups:
            rows = qkv.index_select(0, group.slots).view(group.n_rows, group.length, 3, self.num_heads, self.head_size)
            query, key, value = rows.permute(2, 0, 3, 1, 4).unbind(0)
            values = F.scaled_dot_product_attention(query, key, value, attn_mask=group.mask.to(query.dtype), scale=scale)
            context.index_copy_(0, group.real_tokens, values.transpose(1, 2).reshape(-1, hidden_size).index_select(0, group.real_slots))
        return context

    def _project_qkv(self, flat: torch.Tensor, qkv: torch.Tensor, workspace: "Workspace") -> None:
        """``[query | key | value](flat)`` into ``qkv`` (``(tokens, 3 * hidden)``)."""
        fused = getattr(self, "qkv_quantized", None)
        if fused is not None:
            # int8 view: one quantized product for all three, chunk by chunk.
            for part in workspace.chunks():
                qkv[part] = fused(flat[part])
            return
        hidden_size = self.num_heads * self.head_size
        for index, proj in enumerate((self.query, self.key, self.value)):
            columns = qkv[:, index * hidden_size : (index + 1) * hidden_size]
            if type(proj) is nn.Linear:
                torch.addmm(proj.bias, flat, proj.weight.t(), out=columns)
            else:
                for part in workspace.chunks():
                    columns[part] = proj(flat[part])


class AttentionOutput(nn.Module):
    """Output projection, dropout, residual and post-LayerNorm."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.self = EntityAwareSelfAttention(config)
        self.output = AttentionOutput(config)

    def forward_joint(self, hidden, n_words, attention_mask, output_attentions=False):
        """Self-attention and output over the joint ``[words | entities]`` sequence."""
        context, probs = self.self.forward_joint(hidden, n_words, attention_mask, output_attentions)
        return self.output(context, hidden), probs

    def forward_unpadded(self, flat, layout):
        """Self-attention and output over the real tokens (see :mod:`.unpadded`)."""
        return self.output(self.self.forward_unpadded(flat, layout), flat)

    def forward(self, word_hidden, entity_hidden, attention_mask, output_attentions=False):
        word_out, entity_out, probs = self.self(word_hidden, entity_hidden, attention_mask, output_attentions)
        if entity_hidden is None:
            return self.output(word_out, word_hidden), None, probs
        n_words = word_hidden.shape[1]
        out = self.output(torch.cat([word_out, entity_out], dim=1), torch.cat([word_hidden, entity_hidden], dim=1))
        return out[:, :n_words], out[:, n_words:], probs
