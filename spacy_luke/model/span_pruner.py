"""A learned span pruner for entity span classification: which candidates deserve the full LUKE pass.

LUKE's NER scores every candidate span as an entity of one joint ``[words | entities]`` input,
so its cost grows with the candidates (every span of up to ``max_mention_length`` words: about
eight per word), while a sentence holds about one entity per ten words. The pruner is a cheap
first stage: it runs the encoder's first ``layers`` layers over the words alone (no entities),
scores each candidate from its first and last word states and its width, and the pipe keeps the
best candidates for the full pass (``spacy_luke.pipeline._ner.span_pruning``).

Its settings live in the checkpoint's config.json (``"span_pruner": {"layers", "hidden_width",
"max_width", "trained"}``) and its tensors under ``span_pruner.`` in model.safetensors, so a
saved pipe carries it. It learns from the gold entities (binary: entity or not, any label) on
word states the NER loss computes nothing through (they are detached), so training it never
changes the encoder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .masking import AttentionMask

#: The key of the pruner's settings in config.json (``LukeConfig.extra``).
CONFIG_KEY = "span_pruner"


@dataclass(frozen=True)
class SpanPrunerConfig:
    """The shape of a span pruner.

    layers: encoder layers run over the words for its features (1..num_hidden_layers).
    hidden_width: width of its hidden layer.
    max_width: span widths (in word pieces) with their own embedding; longer ones share the last.
    trained: whether it has learned from any example (an untrained pruner keeps random spans).
    """

    layers: int = 2
    hidden_width: int = 128
    max_width: int = 32
    trained: bool = False

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SpanPrunerConfig":
        known = {key: data[key] for key in ("layers", "hidden_width", "max_width", "trained") if key in data}
        return cls(**known)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def pruner_config_of(config) -> Optional[SpanPrunerConfig]:
    """The span pruner settings of a LukeConfig, or None when it has none."""
    data = config.extra.get(CONFIG_KEY)
    return SpanPrunerConfig.from_dict(data) if data else None


class SpanPruner(nn.Module):
    """``score = w . relu(A h_first + B h_last + E[width] + b) + c``: one logit per candidate span."""

    def __init__(self, hidden_size: int, settings: SpanPrunerConfig):
        super().__init__()
        self.settings = settings
        self.first = nn.Linear(hidden_size, settings.hidden_width)
        self.last = nn.Linear(hidden_size, settings.hidden_width, bias=False)
        self.width = nn.Embedding(settings.max_width, settings.hidden_width)
        # "classifier": the precision views keep a layer of that name in float32 (the logits).
        self.classifier = nn.Linear(settings.hidden_width, 1)

    def forward(self, words: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """``(batch, spans)`` logits from word states ``(batch, length, hidden)`` and the spans'
        first and last word-piece positions ``(batch, spans)``."""
        widths = (ends - starts).clamp(0, self.settings.max_width - 1)
        hidden = self.first(_rows(words, starts)) + self.last(_rows(words, ends)) + self.width(widths)
        return self.classifier(F.relu(hidden)).squeeze(-1)


def add_span_pruner(head, settings: SpanPrunerConfig) -> None:
    """Give ``head`` (a LukeForEntitySpanClassification) a new, untrained span pruner on the
    device and dtype of its weights; its settings go into the head's config."""
    config = head.config
    if not 1 <= settings.layers <= config.num_hidden_layers:
        raise ValueError(
            f"A span pruner reads 1..{config.num_hidden_layers} encoder layers (num_hidden_layers), "
            f"got layers={settings.layers}."
        )
    settings = replace(settings, trained=False)
    param = next(head.parameters())
    pruner = SpanPruner(config.hidden_size, settings).to(device=param.device, dtype=param.dtype)
    pruner.apply(head._init_module)
    head.span_pruner = pruner
    config.extra[CONFIG_KEY] = settings.to_dict()


def mark_trained(head, trained: bool = True) -> None:
    """Record (in the pruner and the config) whether ``head``'s span pruner has learned."""
    pruner = getattr(head, "span_pruner", None)
    if pruner is not None and pruner.settings.trained != trained:
        pruner.settings = replace(pruner.settings, trained=trained)
        head.config.extra[CONFIG_KEY] = pruner.settings.to_dict()


def prefix_word_states(luke, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int) -> torch.Tensor:
    """The word states after the first ``layers`` layers of ``luke`` (a LukeModel) over the words alone."""
    hidden = luke.embeddings(input_ids, None, None, None)
    mask = AttentionMask.from_token_mask(attention_mask, hidden.dtype)
    return luke.encoder(hidden, None, mask, layers=layers)[0]


def _rows(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    index = positions.to(hidden.device).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.gather(hidden, 1, index)
