"""The torch module the spacy-transformers LUKE layer calls: a ``LukeModel`` returning its word
and entity states (see :class:`~spacy_luke.layers.head_output.HeadOutput`: training calls run
the float weights with gradients, predictions run in the layer's precision mode)."""
from __future__ import annotations

import torch

from ..layers.head_output import PIPE_ATTENTION_OPTIONS, HeadOutput
from ..model.attention_options import attention_options


class EncoderOutputs(HeadOutput):
    """Calls a ``LukeModel``; returns ``(last_hidden_state, entity_last_hidden_state or None)`` as float32."""

    def forward(self, **inputs):
        with attention_options(**PIPE_ATTENTION_OPTIONS):
            if torch.is_grad_enabled():
                out = self.head_model(**inputs)
            else:
                with torch.inference_mode(), self.precision.context(self.device):
                    out = self._inference_model()(**inputs)
        entity_states = out.entity_last_hidden_state
        return out.last_hidden_state.float(), (entity_states.float() if entity_states is not None else None)
