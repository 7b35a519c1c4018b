"""Running the encoder on the real tokens of a padded batch only ("unpadded" execution).

A padded batch of LUKE inputs wastes work on padding: every linear layer multiplies the padded
``(batch, words + entities)`` slots. In unpadded execution the encoder keeps the real tokens of
all rows in one flat ``(tokens, hidden)`` matrix, so the linear layers, LayerNorms and
activations (nearly all the work) see exactly the real tokens, in one large matrix product.
Only attention needs rows: the rows are gathered into small padded groups of similar length
(:class:`AttentionGroup`), each attended with one SDPA call, and scattered back.

A group is laid out as ``[words | entities]`` again (words padded to the group's longest word
part, entities to its longest entity part), so the padded entity-aware attention
(:meth:`EntityAwareSelfAttention.forward`) runs on it unchanged.

The encoder takes this path when its options say so (``AttentionOptions.unpad``, see
:mod:`.attention_options`); the spaCy pipes ask for it on each call.

The real tokens give the same states as in the padded batch (padding never changes a real
token's result); the padded slots of the returned states are zeros instead of the values the
padded computation would put there, which nothing reads.

Inference on the CPU (float32, or a 16-bit view cast once) also reuses memory
(:class:`Workspace`): the layers write their Q/K/V, attention context and output states into
buffers allocated once per forward pass, and the per-token work after attention (output
projection, feed-forward) runs in chunks of :data:`TOKEN_CHUNK` tokens. Without this every layer
allocates tens of megabytes afresh (``(tokens, 3072)`` feed-forward activations, ``(tokens,
2304)`` Q/K/V), and glibc hands blocks that large out as fresh mappings whose page faults cost
as much as the GELU that fills them; a chunk's activations also stay in cache between the two
feed-forward products.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from .masking import additive_from_real

#: Attention groups may hold at most this share of padded slots over real ones.
GROUP_MAX_PADDING = 0.1
#: ... and at most this many slots (bounds the memory of one SDPA call).
GROUP_MAX_SLOTS = 16384
#: Tokens per chunk of the per-token work in CPU inference (see :class:`Workspace`).
TOKEN_CHUNK = 1024
#: The hidden-state dtypes CPU inference runs with a :class:`Workspace` (the float model, or a 16-bit cast view).
WORKSPACE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass
class AttentionGroup:
    """Rows attended together: where each slot's token is in the flat matrix, and the mask."""

    slots: torch.Tensor  # (rows * length,) flat token index of each slot (0 for padding)
    n_rows: int
    length: int  # words + entities slots per row
    n_words: Optional[int]  # word slots per row (None: no entity part)
    mask: torch.Tensor  # (rows, 1, 1, length) additive: 0 for real slots, dtype min for padding
    real_slots: torch.Tensor  # slot indices holding real tokens
    real_tokens: torch.Tensor  # the flat token index of each of them

    def gather(self, flat: torch.Tensor, *shape: int) -> torch.Tensor:
        """The group's rows of ``flat`` (``(tokens, width)``): ``(n_rows, length, *shape)``, ``shape`` splitting ``width``.

        Padding slots hold token 0's values; the mask hides them.
        """
        return flat.index_select(0, self.slots).view(self.n_rows, self.length, *(shape or (-1,)))

    def real(self, rows: torch.Tensor) -> torch.Tensor:
        """``(n_rows, length, ...)`` values -> ``(real slots, width)``: those of the real slots, in slot order."""
        return rows.reshape(self.n_rows * self.length, -1).index_select(0, self.real_slots)


@dataclass
class UnpaddedLayout:
    """The real tokens of a padded ``(batch, length)`` joint sequence and their attention groups."""

    flat_index: torch.Tensor  # (tokens,) index of each real token in the (batch * length) slots
    batch: int
    length: int
    groups: List[AttentionGroup]
    has_entities: bool
    real_tokens: torch.Tensor  # the groups' real_tokens, concatenated (the order attention returns them in)

    @property
    def n_tokens(self) -> int:
        return int(self.flat_index.shape[0])

    @classmethod
    def build(
        cls,
        token_mask: torch.Tensor,
        n_words: Optional[int],
        dtype: torch.dtype,
        *,
        max_padding: float = GROUP_MAX_PADDING,
        max_slots: int = GROUP_MAX_SLOTS,
    ) -> "UnpaddedLayout":
        """The layout of ``token_mask`` (``(batch, length)``, nonzero = real token).

        ``n_words``: the length of the word part of the joint sequence (None: words only).
        ``dtype``: the dtype of the attention masks.
        """
        device = token_mask.device
        mask = token_mask.detach().to("cpu", torch.bool).numpy()
        batch, length = mask.shape
        split = length if n_words is None else n_words
        word_counts = mask[:, :split].sum(axis=1)
        entity_counts = mask[:, split:].sum(axis=1)
        counts = word_counts + entity_counts
        flat_index = np.flatnonzero(mask.reshape(-1))
        row_first = np.cumsum(counts) - counts  # each row's first token in the flat order
        # Rows by size, then greedy groups within the padding and size limits.
        order = np.lexsort((entity_counts, word_counts, counts))
        groups: List[AttentionGroup] = []
        current: List[int] = []
        max_w = max_e = real = 0

        def close(rows: List[int]) -> None:
            rows_arr = np.asarray(rows, dtype=np.int64)
            w = int(word_counts[rows_arr].max())
            e = int(entity_counts[rows_arr].max()) if n_words is not None else 0
            width = w + e
            cols = np.arange(width, dtype=np.int64)
            is_word_slot = cols < w
            # For each slot: its position within the row's words (or entities), and whether it is real.
            within = np.where(is_word_slot, cols, cols - w)[None, :]
            limit = np.where(is_word_slot[None, :], word_counts[rows_arr, None], entity_counts[rows_arr, None])
            real_slot = within < limit
            start = row_first[rows_arr, None] + np.where(is_word_slot[None, :], 0, word_counts[rows_arr, None])
            slots = np.where(real_slot, start + within, 0).reshape(-1)
            real_flat = np.flatnonzero(real_slot.reshape(-1))
            groups.append(
                AttentionGroup(
                    slots=torch.from_numpy(slots).to(device),
                    n_rows=len(rows),
                    length=width,
                    n_words=w if n_words is not None else None,
                    mask=additive_from_real(real_slot, dtype, device),
                    real_slots=torch.from_numpy(real_flat).to(device),
                    real_tokens=torch.from_numpy(slots[real_flat]).to(device),
                )
            )

        for row in order.tolist():
            if counts[row] == 0:
                continue  # a row without real tokens: nothing to attend
            w, e = int(word_counts[row]), int(entity_counts[row])
            new_w, new_e = max(max_w, w), max(max_e, e)
            padded = (len(current) + 1) * (new_w + new_e)
            if current and (padded > max_slots or padded > (1.0 + max_padding) * (real + w + e)):
                close(current)
                current, new_w, new_e, real = [], w, e, 0
            current.append(row)
            max_w, max_e = new_w, new_e
            real += w + e
        if current:
            close(current)
        real_tokens = torch.cat([g.real_tokens for g in groups]) if groups else torch.zeros(0, dtype=torch.long, device=device)
        return cls(
            real_tokens=real_tokens,
            flat_index=torch.from_numpy(flat_index).to(device),
            batch=batch,
            length=length,
            groups=groups,
            has_entities=n_words is not None and bool(entity_counts.any()),
        )

    def unpad(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(batch, length, hidden)`` -> ``(tokens, hidden)``: the real tokens, row by row."""
        return hidden.reshape(self.batch * self.length, -1).index_select(0, self.flat_index)

    def pad(self, flat: torch.Tensor) -> torch.Tensor:
        """``(tokens, hidden)`` -> ``(batch, length, hidden)``, zeros in the padded slots."""
        out = flat.new_zeros(self.batch * self.length, flat.shape[-1])
        return out.index_copy(0, self.flat_index, flat).view(self.batch, self.length, -1)

    def collect(self, pieces: List[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """The groups' :meth:`AttentionGroup.real` values (in group order) -> ``(tokens, width)`` in token order.

        ``like``: the ``(tokens, hidden)`` input (zeros of its shape when there is no group).
        """
        if not pieces:
            return like.new_zeros(like.shape)
        values = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return values.new_zeros(like.shape[0], values.shape[-1]).index_copy(0, self.real_tokens, values)


class Workspace:
    """Buffers that every layer of one unpadded CPU inference pass reuses.

    ``hidden``: two ``(tokens, hidden)`` state buffers, used in turn as layer outputs (a layer
    never writes into its own input); ``context``: the attention context; ``qkv``: the
    ``(tokens, 3 * hidden)`` Q/K/V projections of the shared-query path.
    """

    def __init__(self, like: torch.Tensor, chunk: Optional[int] = None):
        chunk = TOKEN_CHUNK if chunk is None else chunk
        if chunk < 1:
            raise ValueError(f"Workspace chunk must be at least 1 token, got {chunk}.")
        self.n_tokens, self.width = like.shape
        self.chunk = chunk
        self._like = like
        self._hidden: List[torch.Tensor] = []
        self._context: Optional[torch.Tensor] = None
        self._qkv: Optional[torch.Tensor] = None

    @staticmethod
    def wanted(hidden: torch.Tensor, training: bool) -> bool:
        """Whether to run with a workspace: CPU inference in a :data:`WORKSPACE_DTYPES` dtype, without autograd or autocast.

        (Under autocast a layer's outputs need not have its input's dtype, so they cannot go into its buffers.)
        """
        return (
            hidden.device.type == "cpu"
            and hidden.dtype in WORKSPACE_DTYPES
            and not training
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        )

    def chunks(self) -> List[slice]:
        """Consecutive token slices of at most ``chunk`` tokens covering all tokens."""
        return [slice(start, min(start + self.chunk, self.n_tokens)) for start in range(0, self.n_tokens, self.chunk)]

    def output_for(self, layer_input: torch.Tensor) -> torch.Tensor:
        """A ``(tokens, hidden)`` buffer for a layer's output that is not ``layer_input``."""
        for buffer in self._hidden:
            if buffer.data_ptr() != layer_input.data_ptr():
                return buffer
        buffer = self._like.new_empty(self.n_tokens, self.width)
        self._hidden.append(buffer)
        return buffer

    @property
    def context(self) -> torch.Tensor:
        if self._context is None:
            self._context = self._like.new_empty(self.n_tokens, self.width)
        return self._context

    @property
    def qkv(self) -> torch.Tensor:
        if self._qkv is None:
            self._qkv = self._like.new_empty(self.n_tokens, 3 * self.width)
        return self._qkv
