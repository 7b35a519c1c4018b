"""The shim of the spacy-transformers LUKE layer: :class:`~spacy_luke.layers.luke_shim.LukeShim`
holding a bare ``LukeModel`` whose calls return the word states and the entity states.

Parameter writes are counted later than LukeShim counts them. spaCy calls the ``transformer``
pipe's ``finish_update`` right after its ``update``, i.e. between the forward pass of a batch
and the backward pass its listeners trigger; bumping the weights' version counters there would
make that backward pass fail (autograd saw the weights at version n). So the writes (thinc's
optimizer updates the weights in place through numpy, as with spacy-transformers' own models)
are counted when no graph is open: at the next forward pass, or right away outside training.

Everything else (loading a checkpoint folder, the device, the precision mode of predictions,
per-call train/eval mode, serializing the weights with the tokenizer files and entity
vocabulary as one self-contained blob) is LukeShim's.
"""
from __future__ import annotations

from thinc.api import PyTorchShim

from ..layers.luke_shim import LukeShim

ENCODER_HEAD = "LukeModel"


class LukeEncoderShim(LukeShim):
    """A LukeShim over ``LukeModel`` whose calls return ``(last_hidden_state, entity_last_hidden_state)``
    (the second is None without entity inputs), both float32."""

    def __init__(self, *, mixed_precision: bool = False, grad_scaler_config=None):
        super().__init__(head=ENCODER_HEAD, output="last_hidden_state", mixed_precision=mixed_precision,
                         grad_scaler_config=grad_scaler_config)
        self.window_encoder = None  # the layer's WindowEncoder, built for the loaded tokenizer
        self._written = {}  # the parameters updated in place, writes not counted yet (an ordered set: a tensor hashes as itself)
        self._graph_open = False  # a training forward pass awaits its backward pass

    def attach(self, head_model, pieces, device=None) -> None:
        super().attach(head_model, pieces, device=device)
        from .encoder_outputs import EncoderOutputs

        self._model = EncoderOutputs(head_model, self.output, self._model.precision)

    def finish_update(self, optimizer) -> None:
        if self._model is None:
            return
        for param in self._model.parameters():
            if param.grad is not None:
                self._written[param] = None
        PyTorchShim.finish_update(self, optimizer)
        if not self._graph_open:
            self._count_writes()

    def _count_writes(self) -> None:
        """Bump the version counters of the weights written in place, so that what is keyed on
        them (precision views, fused Q/K/V, the shared-query check) is built again."""
        if self._written:
            from torch.autograd.graph import increment_version

            written, self._written = list(self._written), {}
            for param in written:
                increment_version(param)

    def predict(self, inputs):
        if not self._graph_open:
            self._count_writes()
        return super().predict(inputs)

    def begin_update(self, inputs):
        self._count_writes()  # a new graph: the last one is done (or abandoned)
        output, backprop = super().begin_update(inputs)
        self._graph_open = True

        def backprop_and_close(grads):
            try:
                return backprop(grads)
            finally:
                self._graph_open = False

        return output, backprop_and_close

    def copy(self) -> "LukeEncoderShim":
        """A copy with its own weights (``nlp.replace_listeners``): through the serialized form,
        so the tokenizer objects are rebuilt rather than deep-copied."""
        copied = LukeEncoderShim(mixed_precision=self._mixed_precision, grad_scaler_config=self._grad_scaler_config)
        copied.device_name = self.device_name
        copied.precision = self.precision
        if self.is_loaded:
            copied.from_bytes(self.to_bytes())
        return copied
