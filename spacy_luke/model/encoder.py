"""Post-LayerNorm transformer layers over the joint word + entity sequence, and the pooler."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .attention import Attention
from .config import LukeConfig
from .mode import Dropout, is_training
from .unpadded import UnpaddedLayout, Workspace

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unsupported hidden_act {name!r} in config.json; supported: {sorted(ACTIVATIONS)}.") from None


class Intermediate(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class Output(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Layer(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = Output(config)

    def forward_joint(self, hidden, n_words, attention_mask, output_attentions=False):
        """The layer over the joint ``[words | entities]`` sequence (``n_words`` None: words only)."""
        attended, probs = self.attention.forward_joint(hidden, n_words, attention_mask, output_attentions)
        return self.output(self.intermediate(attended), attended), probs

    def forward_unpadded(self, flat, layout, workspace: Optional[Workspace] = None):
        """The layer over the real tokens ``(tokens, hidden)`` of ``layout`` (see :mod:`.unpadded`).

        With a ``workspace`` (inference) the output goes into one of its buffers, and the work
        after attention runs chunk by chunk.
        """
        if workspace is None:
            attended = self.attention.forward_unpadded(flat, layout)
            return self.output(self.intermediate(attended), attended)
        context = self.attention.self.forward_unpadded(flat, layout, workspace)
        out = workspace.output_for(flat)
        for part in workspace.chunks():
            attended = self.attention.output(context[part], flat[part])
            out[part] = self.output(self.intermediate(attended), attended)
        return out

    def forward(self, word_hidden, entity_hidden, attention_mask, output_attentions=False):
        word_att, entity_att, probs = self.attention(word_hidden, entity_hidden, attention_mask, output_attentions)
        joint = word_att if entity_att is None else torch.cat([word_att, entity_att], dim=1)
        out = self.output(self.intermediate(joint), joint)
        n_words = word_hidden.shape[1]
        return out[:, :n_words], (None if entity_att is None else out[:, n_words:]), probs


class Encoder(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.layer = nn.ModuleList([Layer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        # Unpadded execution (see .unpadded): off by default, so padded slots keep the values the
        # padded computation gives them; the spaCy pipes switch it on.
        self.unpad = False

    def forward(
        self,
        word_hidden: torch.Tensor,
        entity_hidden: Optional[torch.Tensor],
        attention_mask: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        token_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[List], Optional[List], Optional[List]]:
        """The layers over ``[words | entities]``.

        ``attention_mask``: additive, ``(batch, 1, 1, length)``. ``token_mask``: ``(batch, length)``,
        nonzero for real tokens; with ``unpad`` set it lets the layers run on the real tokens only.
        """
        word_states: Optional[List[torch.Tensor]] = [] if output_hidden_states else None
        entity_states: Optional[List[torch.Tensor]] = [] if output_hidden_states else None
        attentions: Optional[List[torch.Tensor]] = [] if output_attentions else None
        # One joint [words | entities] sequence throughout: split only where states are returned.
        n_words = word_hidden.shape[1] if entity_hidden is not None else None
        split = word_hidden.shape[1]
        hidden = word_hidden if entity_hidden is None else torch.cat([word_hidden, entity_hidden], dim=1)
        unpadded = (
            self.unpad
            and token_mask is not None
            and not output_hidden_states
            and not output_attentions
            and not (self.gradient_checkpointing and is_training(self))
        )
        if unpadded:
            layout = UnpaddedLayout.build(token_mask, n_words, attention_mask.dtype)
            flat = layout.unpad(hidden)
            workspace = Workspace(flat) if Workspace.wanted(flat, is_training(self)) else None
            for layer in self.layer:
                flat = layer.forward_unpadded(flat, layout, workspace)
            hidden = layout.pad(flat)
        for layer in self.layer if not unpadded else ():
            if output_hidden_states:
                word_states.append(hidden[:, :split])
                entity_states.append(None if n_words is None else hidden[:, split:])
            if self.gradient_checkpointing and is_training(self):
                hidden, probs = torch.utils.checkpoint.checkpoint(
                    layer.forward_joint, hidden, n_words, attention_mask, output_attentions, use_reentrant=False
                )
            else:
                hidden, probs = layer.forward_joint(hidden, n_words, attention_mask, output_attentions)
            if output_attentions:
                attentions.append(probs)
        if output_hidden_states:
            word_states.append(hidden[:, :split])
            entity_states.append(None if n_words is None else hidden[:, split:])
        word_hidden = hidden[:, :split]
        entity_hidden = None if n_words is None else hidden[:, split:]
        return word_hidden, entity_hidden, word_states, entity_states, attentions


class Pooler(nn.Module):
    """tanh(dense(first token)), as BERT/RoBERTa."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))
