"""Post-LayerNorm transformer layers over the joint word + entity sequence, and the pooler."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .attention import Attention
from .attention_options import AttentionOptions, resolve
from .config import LukeConfig
from .masking import AttentionMask
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

    def forward(self, hidden, n_words, attention_mask, options: AttentionOptions, output_attentions=False):
        """The layer over the joint ``[words | entities]`` sequence (``n_words`` None: words only)."""
        attended, probs = self.attention(hidden, n_words, attention_mask, options, output_attentions)
        return self.output(self.intermediate(attended), attended), probs

    def forward_unpadded(self, flat, layout, options: AttentionOptions, workspace: Optional[Workspace] = None):
        """The layer over the real tokens ``(tokens, hidden)`` of ``layout`` (see :mod:`.unpadded`).

        With a ``workspace`` (inference) the output goes into one of its buffers, and the work
        after attention runs chunk by chunk.
        """
        if workspace is None:
            attended = self.attention.forward_unpadded(flat, layout, options)
            return self.output(self.intermediate(attended), attended)
        context = self.attention.self.forward_unpadded(flat, layout, options, workspace)
        out = workspace.output_for(flat)
        for part in workspace.chunks():
            attended = self.attention.output(context[part], flat[part])
            out[part] = self.output(self.intermediate(attended), attended)
        return out


class Encoder(nn.Module):
    """The layers over ``[words | entities]``, run as its :class:`AttentionOptions` say.

    ``options`` is one immutable object, replaced as a whole (``set_attention_options`` on the
    model); a call may change it for itself with :func:`~.attention_options.attention_options`.
    """

    def __init__(self, config: LukeConfig, options: Optional[AttentionOptions] = None):
        super().__init__()
        self.layer = nn.ModuleList([Layer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        # Unpadded execution (see .unpadded) is off by default, so padded slots keep the values
        # the padded computation gives them; the spaCy pipes ask for it on each call.
        self.options = options if options is not None else AttentionOptions()

    @property
    def unpad(self) -> bool:
        """Whether the layers run on the real tokens only (``options.unpad``)."""
        return self.options.unpad

    @unpad.setter
    def unpad(self, value: bool) -> None:
        self.options = self.options.replace(unpad=bool(value))

    def forward(
        self,
        word_hidden: torch.Tensor,
        entity_hidden: Optional[torch.Tensor],
        mask: AttentionMask,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        layers: Optional[int] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[List], Optional[List], Optional[List]]:
        """The layers over ``[words | entities]`` (``mask``: that joint sequence's real tokens);
        only the first ``layers`` of them when given (a span pruner's cheap features)."""
        stack = self.layer if layers is None else self.layer[:layers]
        options = resolve(self.options)
        word_states: Optional[List[torch.Tensor]] = [] if output_hidden_states else None
        entity_states: Optional[List[torch.Tensor]] = [] if output_hidden_states else None
        attentions: Optional[List[torch.Tensor]] = [] if output_attentions else None
        # One joint [words | entities] sequence throughout: split only where states are returned.
        n_words = word_hidden.shape[1] if entity_hidden is not None else None
        split = word_hidden.shape[1]
        hidden = word_hidden if entity_hidden is None else torch.cat([word_hidden, entity_hidden], dim=1)
        checkpointing = self.gradient_checkpointing and is_training(self)
        # Hidden states, attentions and checkpointed training need every slot: the padded path.
        unpadded = options.unpad and not output_hidden_states and not output_attentions and not checkpointing
        if unpadded:
            layout = UnpaddedLayout.build(mask.token_mask, n_words, mask.additive.dtype)
            flat = layout.unpad(hidden)
            workspace = Workspace(flat) if Workspace.wanted(flat, is_training(self)) else None
            for layer in stack:
                flat = layer.forward_unpadded(flat, layout, options, workspace)
            hidden = layout.pad(flat)
        for layer in stack if not unpadded else ():
            if output_hidden_states:
                word_states.append(hidden[:, :split])
                entity_states.append(None if n_words is None else hidden[:, split:])
            if checkpointing:
                hidden, probs = torch.utils.checkpoint.checkpoint(
                    layer, hidden, n_words, mask.additive, options, output_attentions, use_reentrant=False
                )
            else:
                hidden, probs = layer(hidden, n_words, mask.additive, options, output_attentions)
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
