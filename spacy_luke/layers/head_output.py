"""The torch module a LUKE thinc layer wraps: one LUKE head model, returning the one tensor a pipe reads.

Training calls run the float weights with gradients. Prediction calls run under
``torch.inference_mode`` in the layer's precision mode (``spacy_luke.model.precision``): its
inference view (the 16-bit cast copy, the int8 view: built once per weight version, under a lock,
so threads share it) and its autocast on this device, if it has one. Every call runs with the pipes' attention options (real
positions only). The module ignores ``train()`` / ``eval()``: each call says its mode through
``spacy_luke.model.mode.call_mode`` (see :class:`spacy_luke.layers.luke_shim.LukeShim`).
With ``engine="onnxruntime"`` predictions on the CPU run the head exported to ONNX instead
(:mod:`.engines`: exported once per weight version, like the views).
"""
from __future__ import annotations

import threading

import torch

from ..model.attention_options import attention_options
from .engines import ort_head, runs_here

#: The attention options the pipes' calls run with (see ``spacy_luke.model.attention_options``):
#: the pipes read real positions only, so the layers skip the padded slots' work.
PIPE_ATTENTION_OPTIONS = {"unpad": True}
#: Outputs made of several fields of the head's output object (the linker's logits and the entity
#: rows they score, integers, never cast to floats).
OUTPUT_FIELDS = {"candidates": ("candidate_logits", "candidate_ids")}


def read_output(output_object, output: str):
    """The tensor (or tuple of tensors) ``output`` of a head's output object."""
    fields = OUTPUT_FIELDS.get(output)
    if fields is None:
        return getattr(output_object, output)
    return tuple(getattr(output_object, name) for name in fields)


class HeadOutput(torch.nn.Module):
    """Calls ``head_model`` (a ``Luke*`` module) and returns its ``output`` tensor."""

    def __init__(self, head_model: torch.nn.Module, output: str, precision, engine: str = "torch", requested: str = ""):
        super().__init__()
        self.head_model = head_model
        self.output = output
        self.precision = precision  # a spacy_luke.model.precision.Precision, placed on the device
        self.engine = engine
        # The precision the pipe asked for: the graph ONNX Runtime runs ("float32" or "int8"),
        # which needs no torch kernels (``precision`` may be a fallback of it).
        self.requested = requested or precision.name
        # (weights key, {on ONNX Runtime: module}) of the views predictions run: the precision's
        # inference view, or the head exported to ONNX Runtime. Not a registered submodule.
        self._view_cache = None
        self._view_lock = threading.Lock()

    def train(self, mode: bool = True):
        # thinc calls train()/eval() around calls; the flag is shared by all threads, so it is
        # ignored: each call says its mode (LukeShim, call_mode).
        return self

    def _weights_key(self):
        return tuple((p._version, p.data_ptr()) for p in self.head_model.parameters())

    def _inference_model(self, allow_ort: bool = True):
        """What predictions run, built once per weight version: the ONNX Runtime head when the
        engine runs here (and ``allow_ort``), else the precision's inference view (or the model itself)."""
        on_ort = allow_ort and runs_here(self.engine, self.device)
        if not on_ort and self.precision.view is None:
            return self.head_model
        key = self._weights_key()
        cache = self._view_cache  # one read: another thread may replace it meanwhile
        view = cache[1].get(on_ort) if cache is not None and cache[0] == key else None
        if view is None:
            with self._view_lock:  # build the view once, not once per waiting thread
                cache = self._view_cache
                if cache is None or cache[0] != key:
                    cache = (key, {})
                view = cache[1].get(on_ort)
                if view is None:
                    if on_ort:
                        view = ort_head(self.head_model, self.output, self.requested)
                    else:
                        view = self.precision.inference_module(self.head_model)
                    # A new dict: threads reading the old one meanwhile never see it change.
                    cache = self._view_cache = (key, {**cache[1], on_ort: view})
        return view

    def span_pruner_logits(self, **inputs):
        """The head's span pruner logits (a prediction: the torch view of the precision mode,
        also when the engine is ONNX Runtime, whose graph holds the full head only)."""
        with attention_options(**PIPE_ATTENTION_OPTIONS), torch.inference_mode(), self.precision.context(self.device):
            return self._inference_model(allow_ort=False).span_pruner_logits(**inputs)

    def forward(self, **inputs):
        with attention_options(**PIPE_ATTENTION_OPTIONS):  # this call only: thread-safe
            if torch.is_grad_enabled():  # training (begin_update): the float weights, with gradients
                return read_output(self.head_model(**inputs), self.output)
            with torch.inference_mode(), self.precision.context(self.device):
                return read_output(self._inference_model()(**inputs), self.output)

    @property
    def device(self) -> torch.device:
        param = next(self.head_model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")
