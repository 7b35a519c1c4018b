"""A thinc PyTorch shim whose calls never flip the module's train/eval flag.

thinc's ``PyTorchShim.predict`` calls ``model.eval()`` before and ``model.train()`` after every
prediction. That flag is shared by every thread using the pipe: one thread's ``train()`` turns
dropout on in the middle of another thread's forward pass, and predictions silently change.
Here each call says its mode through :func:`spacy_luke.model.mode.call_mode` (a context
variable: per thread), and the wrapped module ignores ``train()`` / ``eval()`` (see
``_Output.train`` in :mod:`spacy_luke.layers.luke_model`), so predictions can run from many
threads at once, even while another thread trains.
"""
from __future__ import annotations

from thinc.api import PyTorchShim

from ..model.mode import call_mode


class CallModeShim(PyTorchShim):
    def predict(self, inputs):
        with call_mode(False):
            return super().predict(inputs)

    def begin_update(self, inputs):
        with call_mode(True):
            output, backprop = super().begin_update(inputs)

        def backprop_in_training_mode(grads):
            # Backward may run forward again (gradient checkpointing): in training mode too.
            with call_mode(True):
                return backprop(grads)

        return output, backprop_in_training_mode
