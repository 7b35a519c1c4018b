"""The torch module the spacy-transformers LUKE layer calls: a ``LukeModel`` returning its word
and entity states (see :class:`~spacy_luke.layers.head_output.HeadOutput`: training calls run
the float weights with gradients, predictions run in the layer's precision mode)."""
from __future__ import annotations

from ..layers.head_output import HeadOutput


class EncoderOutputs(HeadOutput):
    """Calls a ``LukeModel``; returns ``(last_hidden_state, entity_last_hidden_state or None)`` as float32."""

    def forward(self, **inputs):
        out = self.run(**inputs)  # in the call's mode (training: the float weights; else the precision's view)
        entity_states = out.entity_last_hidden_state
        return out.last_hidden_state.float(), (entity_states.float() if entity_states is not None else None)
