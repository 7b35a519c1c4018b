"""Self-attention over words and entities, with LUKE's entity-aware query projections.

Keys and values are shared by words and entities. With entity-aware attention, the query
projection depends on the (query type, key type) pair: word->word uses ``query``,
word->entity ``w2e_query``, entity->word ``e2w_query``, entity->entity ``e2e_query``.

The mechanisms live in their own modules; this one combines them:

- scaled dot-product attention, ``"sdpa"`` or ``"eager"`` (:mod:`.sdpa`). With entity-aware
  queries, eager computes the four score blocks separately, as the paper writes it; sdpa makes one
  call where the queries become ``[q_to_words | q_to_entities]`` (head dimension doubled) against
  keys that are ``[k | 0]`` for words and ``[0 | k]`` for entities, so each dot product picks the
  right query;
- the Q/K/V projections of plain attention (:mod:`.qkv`);
- the masks (:mod:`.masking`) and the unpadded path (:mod:`.unpadded`).

Which ones run is said by the :class:`~.attention_options.AttentionOptions` each call receives
from the encoder, never by attributes set on this module.

Shared queries: when the four query projections are equal (true of every pretrained checkpoint)
plain attention is exact, and used in inference. The answer is detected after loading and
re-checked whenever the query weights change (a training step, ``load_state_dict``), so toggling
``train()``/``eval()`` (as thinc does around every prediction) never leaves it stale. An inference
view (``views.linear_views.attention_view``: int8, oneDNN) fixes it when it is built.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Tuple

import torch
from torch import nn

from .attention_options import AttentionOptions
from .config import LukeConfig
from .mode import Dropout, is_training
from .qkv import FusableQkv, QkvProjection, weights_key
from .sdpa import ScaledDotProductAttention

if TYPE_CHECKING:
    from .unpadded import UnpaddedLayout, Workspace

_QUERIES = ("query", "w2e_query", "e2w_query", "e2e_query")


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
        self.attend = ScaledDotProductAttention(config.attention_probs_dropout_prob)
        self.qkv: QkvProjection = FusableQkv()
        # (weights key, shared?) of the last shared-query check.
        self._shared_cache: Optional[Tuple[tuple, bool]] = None
        # The answer fixed by an inference view (whose projections may have no weights to compare).
        self._frozen_shared: Optional[bool] = None

    # -- shared queries ------------------------------------------------------------------------

    @property
    def queries_shared(self) -> bool:
        """Whether the last check found the entity-aware queries equal to ``query`` (never in training mode)."""
        if self._frozen_shared is not None:
            return self._frozen_shared
        cache = self._shared_cache
        return not self.training and cache is not None and cache[1]

    @property
    def frozen_shared(self) -> Optional[bool]:
        """The shared-query answer an inference view fixed when it was built (None: checked on the weights)."""
        return self._frozen_shared

    def _query_layers(self) -> Tuple[Optional[nn.Module], ...]:
        return tuple(getattr(self, name, None) for name in _QUERIES) if self.use_entity_aware_attention else ()

    @torch.no_grad()
    def detect_shared_queries(self) -> bool:
        """Whether the entity-aware queries equal ``query`` (then plain attention is exact)."""
        if self._frozen_shared is not None:
            return self._frozen_shared
        shared = True
        if self.use_entity_aware_attention:
            for proj in (self.w2e_query, self.e2w_query, self.e2e_query):
                if proj.weight.is_meta or not (
                    torch.equal(proj.weight, self.query.weight) and torch.equal(proj.bias, self.query.bias)
                ):
                    shared = False
                    break
        self._shared_cache = (weights_key(self._query_layers()), shared)
        return shared

    def _queries_are_shared(self) -> bool:
        """The shared-query answer, re-detected when the query weights changed since the last check."""
        if self._frozen_shared is not None:
            return self._frozen_shared
        cache = self._shared_cache
        if cache is None or cache[0] != weights_key(self._query_layers()):
            return self.detect_shared_queries()
        return cache[1]

    def _plain_for_shared_queries(self, options: AttentionOptions) -> bool:
        """Whether this call may run plain attention because the queries are shared."""
        if is_training(self) and torch.is_grad_enabled():
            self._shared_cache = None  # the optimizer may change the queries: check again in eval
        return options.shared_queries and not is_training(self) and self._queries_are_shared()

    def _fuse_qkv(self, options: AttentionOptions) -> bool:
        """Whether plain attention may project Q, K and V with one fused product in this call."""
        return options.fused_qkv and self.qkv.can_fuse and not is_training(self) and not torch.is_grad_enabled()

    # -- padded --------------------------------------------------------------------------------

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(
        self,
        hidden: torch.Tensor,
        n_words: Optional[int],
        attention_mask: Optional[torch.Tensor],
        options: AttentionOptions,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Attention over the joint ``[words | entities]`` sequence (``n_words`` None: words only).

        ``attention_mask``: additive, ``(batch, 1, 1, length)``. Returns the context
        ``(batch, length, hidden)`` and, with ``output_attentions``, the probabilities.
        """
        has_entities = n_words is not None and n_words < hidden.shape[1]
        if n_words is None:
            n_words = hidden.shape[1]
        plain = self._plain_for_shared_queries(options)
        entity_aware = has_entities and self.use_entity_aware_attention and not plain
        scale = 1.0 / math.sqrt(self.head_size)
        eager = output_attentions or options.impl == "eager"
        if not entity_aware and self._fuse_qkv(options) and not output_attentions:
            layers = (self.query, self.key, self.value)
            query, key, value = (self._split(x) for x in self.qkv.project(layers, hidden, fused=True))
        else:
            # Keys and values before the queries: the order autograd sums their gradients in.
            key = self._split(self.key(hidden))
            value = self._split(self.value(hidden))
            query = None
        if not entity_aware:
            if query is None:
                query = self._split(self.query(hidden))
            context, probs = self.attend(query, key, value, attention_mask, scale=scale, eager=eager)
        elif eager:
            word_hidden, entity_hidden = hidden[:, :n_words], hidden[:, n_words:]
            q_ww = self._split(self.query(word_hidden))
            q_we = self._split(self.w2e_query(word_hidden))
            q_ew = self._split(self.e2w_query(entity_hidden))
            q_ee = self._split(self.e2e_query(entity_hidden))
            k_w, k_e = key[:, :, :n_words], key[:, :, n_words:]
            word_scores = torch.cat([q_ww @ k_w.transpose(-1, -2), q_we @ k_e.transpose(-1, -2)], dim=3)
            entity_scores = torch.cat([q_ew @ k_w.transpose(-1, -2), q_ee @ k_e.transpose(-1, -2)], dim=3)
            scores = torch.cat([word_scores, entity_scores], dim=2)
            context, probs = self.attend.from_scores(scores, value, attention_mask, scale=scale)
        else:
            word_hidden, entity_hidden = hidden[:, :n_words], hidden[:, n_words:]
            q_word = torch.cat([self._split(self.query(word_hidden)), self._split(self.w2e_query(word_hidden))], dim=-1)
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
            context = self.attend.fused(query, key, value, attention_mask, scale=scale)[..., : self.head_size]
            probs = None
        batch = context.shape[0]
        context = context.transpose(1, 2).reshape(batch, -1, self.num_heads * self.head_size)
        return context, probs

    # -- unpadded ------------------------------------------------------------------------------

    def forward_unpadded(
        self,
        flat: torch.Tensor,
        layout: "UnpaddedLayout",
        options: AttentionOptions,
        workspace: Optional["Workspace"] = None,
    ) -> torch.Tensor:
        """Attention over the real tokens ``flat`` (``(tokens, hidden)``) of ``layout``'s rows.

        Shared queries: the Q/K/V projections run once over all tokens (one large product), and
        each attention group gathers its rows for one SDPA call. Entity-aware queries: each group
        runs :meth:`forward` on its ``[words | entities]`` rows. With a ``workspace``
        (inference), the projections and the context are written into its buffers.
        """
        plain = self._plain_for_shared_queries(options)
        entity_aware = layout.has_entities and self.use_entity_aware_attention and not plain
        if workspace is not None:
            return self._unpadded_into(flat, layout, options, workspace, entity_aware)
        if entity_aware:
            pieces = [group.real(self.forward(group.gather(flat), group.n_words, group.mask, options)[0]) for group in layout.groups]
            return layout.collect(pieces, flat)
        query, key, value = self.qkv.project((self.query, self.key, self.value), flat, fused=self._fuse_qkv(options))
        scale = 1.0 / math.sqrt(self.head_size)
        pieces = []
        for group in layout.groups:

            def rows(x: torch.Tensor) -> torch.Tensor:
                return group.gather(x, self.num_heads, self.head_size).transpose(1, 2)

            context = self.attend.fused(rows(query), rows(key), rows(value), group.mask, scale=scale)
            pieces.append(group.real(context.transpose(1, 2)))
        return layout.collect(pieces, flat)

    def _unpadded_into(
        self, flat: torch.Tensor, layout: "UnpaddedLayout", options: AttentionOptions, workspace: "Workspace", entity_aware: bool
    ) -> torch.Tensor:
        """:meth:`forward_unpadded` in inference, into ``workspace.context`` (which it returns)."""
        context = workspace.context
        if entity_aware:
            for group in layout.groups:
                values, _ = self.forward(group.gather(flat), group.n_words, group.mask, options)
                context.index_copy_(0, group.real_tokens, group.real(values))
            return context
        qkv = workspace.qkv
        self.qkv.project_into((self.query, self.key, self.value), flat, qkv, workspace)
        scale = 1.0 / math.sqrt(self.head_size)
        for group in layout.groups:
            query, key, value = group.gather(qkv, 3, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
            values = self.attend.fused(query, key, value, group.mask, scale=scale)
            context.index_copy_(0, group.real_tokens, group.real(values.transpose(1, 2)))
        return context

    # -- inference views ------------------------------------------------------------------------

    @property
    def qkv_quantized(self) -> Optional[nn.Module]:
        """The one ``[query | key | value]`` layer of an inference view's projections (None elsewhere)."""
        return getattr(self.qkv, "stacked", None)


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

    def forward(self, hidden, n_words, attention_mask, options: AttentionOptions, output_attentions=False):
        """Self-attention and output over the joint ``[words | entities]`` sequence."""
        context, probs = self.self(hidden, n_words, attention_mask, options, output_attentions)
        return self.output(context, hidden), probs

    def forward_unpadded(self, flat, layout, options: AttentionOptions):
        """Self-attention and output over the real tokens (see :mod:`.unpadded`)."""
        return self.output(self.self.forward_unpadded(flat, layout, options), flat)
