"""LukeModel: the encoder over words and entities, and the base class of every LUKE model."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .attention import EntityAwareSelfAttention
from .attention_options import IMPLS
from .config import LukeConfig
from .embeddings import EntityEmbeddings, WordEmbeddings
from .encoder import Encoder, Pooler
from .masking import AttentionMask
from .outputs import LukeModelOutput
from .pretrained import PretrainedMixin


class LukePreTrainedModel(PretrainedMixin, nn.Module):
    """Shared by all LUKE models: config, weight init, attention switch, (de)serialization."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        if not isinstance(config, LukeConfig):
            raise TypeError(f"Expected a LukeConfig, got {type(config).__name__}.")
        self.config = config

    def init_weights(self) -> None:
        """Initialize every parameter as LUKE (and BERT) does: N(0, initializer_range), zero bias."""
        self.apply(self._init_module)

    def _init_module(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        else:
            for name, param in module.named_parameters(recurse=False):
                nn.init.zeros_(param)  # free-standing biases (LM / entity prediction heads)

    def set_attention_options(self, **changes) -> None:
        """Change the attention options (:class:`~.attention_options.AttentionOptions`) of every encoder.

        For one call only, in one thread, use :func:`~.attention_options.attention_options` instead.
        """
        for module in self.modules():
            if isinstance(module, Encoder):
                module.options = module.options.replace(**changes)

    def set_attention_implementation(self, impl: str) -> None:
        """``"sdpa"`` (fused, default) or ``"eager"`` (the four score blocks written out)."""
        if impl not in IMPLS:
            raise ValueError(f"Unknown attention implementation {impl!r}; choose one of {IMPLS}.")
        self.set_attention_options(impl=impl)

    def detect_shared_queries(self) -> bool:
        """Mark layers whose entity-aware queries equal ``query`` (plain attention is then exact)."""
        results = [m.detect_shared_queries() for m in self.modules() if isinstance(m, EntityAwareSelfAttention)]
        return all(results)

    def gradient_checkpointing_enable(self) -> None:
        for module in self.modules():
            if isinstance(module, Encoder):
                module.gradient_checkpointing = True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class LukeModel(LukePreTrainedModel):
    """Word and entity embeddings, the encoder and (optionally) the pooler."""

    def __init__(self, config: LukeConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = WordEmbeddings(config)
        self.entity_embeddings = EntityEmbeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None

    def _check_inputs(self, input_ids, inputs_embeds, entity_ids, entity_position_ids, attention_mask, entity_attention_mask):
        config = self.config
        if input_ids is None and inputs_embeds is None:
            raise ValueError("LukeModel needs input_ids (or inputs_embeds).")
        if input_ids is not None and inputs_embeds is not None:
            raise ValueError("Pass input_ids or inputs_embeds, not both.")
        ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if ref.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length); got shape {tuple(ref.shape)}.")
        batch, length = ref.shape
        limit = config.max_position_embeddings - config.pad_token_id - 1
        if length > limit:
            raise ValueError(
                f"The input has {length} word pieces, more than the model's {limit} positions. "
                "Truncate the text (tokenizer truncation=True) or split it into windows."
            )
        if input_ids is not None and input_ids.numel() and (int(input_ids.max()) >= config.vocab_size or int(input_ids.min()) < 0):
            raise ValueError(
                f"input_ids holds id {int(input_ids.max())} outside the word vocabulary (size {config.vocab_size}); "
                "the tokenizer does not match this checkpoint."
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, length):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(batch, length)}.")
        if entity_ids is None:
            return
        if entity_ids.dim() != 2 or entity_ids.shape[0] != batch:
            raise ValueError(f"entity_ids must be (batch={batch}, entities); got shape {tuple(entity_ids.shape)}.")
        if entity_position_ids is None:
            raise ValueError("entity_ids were given without entity_position_ids; the tokenizer returns both.")
        if entity_position_ids.dim() != 3 or tuple(entity_position_ids.shape[:2]) != tuple(entity_ids.shape):
            raise ValueError(
                f"entity_position_ids must be (batch, entities, max_mention_length) matching entity_ids "
                f"{tuple(entity_ids.shape)}; got {tuple(entity_position_ids.shape)}."
            )
        if entity_ids.numel():
            if int(entity_ids.max()) >= config.entity_vocab_size or int(entity_ids.min()) < 0:
                raise ValueError(
                    f"entity_ids holds id {int(entity_ids.max())} outside the entity vocabulary "
                    f"(size {config.entity_vocab_size}); the entity vocabulary does not match this checkpoint "
                    "(a -lite model needs the tokenizer loaded with lite=True)."
                )
            if int(entity_position_ids.max()) >= config.max_position_embeddings or int(entity_position_ids.min()) < -1:
                raise ValueError(
                    f"entity_position_ids must lie in [-1, {config.max_position_embeddings - 1}]; "
                    f"got values {int(entity_position_ids.min())}..{int(entity_position_ids.max())}."
                )
        if entity_attention_mask is not None and tuple(entity_attention_mask.shape) != tuple(entity_ids.shape):
            raise ValueError(
                f"entity_attention_mask has shape {tuple(entity_attention_mask.shape)}, expected {tuple(entity_ids.shape)}."
            )

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        entity_ids: Optional[torch.Tensor] = None,
        entity_attention_mask: Optional[torch.Tensor] = None,
        entity_token_type_ids: Optional[torch.Tensor] = None,
        entity_position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_dict: bool = True,
        **unused,
    ) -> LukeModelOutput:
        _reject_unknown(unused)
        self._check_inputs(input_ids, inputs_embeds, entity_ids, entity_position_ids, attention_mask, entity_attention_mask)
        word_hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        batch, length = word_hidden.shape[:2]
        device = word_hidden.device
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, device=device)
        mask = attention_mask
        entity_hidden = None
        if entity_ids is not None:
            entity_hidden = self.entity_embeddings(entity_ids, entity_position_ids, entity_token_type_ids)
            if entity_attention_mask is None:
                entity_attention_mask = torch.ones(entity_ids.shape, device=device)
            mask = torch.cat([attention_mask, entity_attention_mask.to(attention_mask.dtype)], dim=-1)
        word_hidden, entity_hidden, word_states, entity_states, attentions = self.encoder(
            word_hidden,
            entity_hidden,
            AttentionMask.from_token_mask(mask, word_hidden.dtype),
            output_hidden_states,
            output_attentions,
        )
        pooled = self.pooler(word_hidden) if self.pooler is not None else None
        return LukeModelOutput(
            last_hidden_state=word_hidden,
            pooler_output=pooled,
            entity_last_hidden_state=entity_hidden,
            hidden_states=tuple(word_states) if word_states is not None else None,
            entity_hidden_states=tuple(entity_states) if entity_states is not None and entity_ids is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )


def _reject_unknown(unused: dict) -> None:
    # Keywords transformers accepts that change nothing here.
    unused = {k: v for k, v in unused.items() if k not in ("head_mask",) or v is not None}
    if unused:
        raise TypeError(f"Unexpected keyword arguments {sorted(unused)} for a LUKE model's forward().")
