"""The torch module a LUKE thinc layer wraps: one LUKE head model, returning the one tensor a pipe reads.

Each call says whether it trains through ``spacy_luke.model.mode.call_mode`` (set per call by
:class:`spacy_luke.layers.luke_shim.LukeShim`: ``predict`` / ``begin_update``), the one signal the
model's modules read too; the module ignores ``train()`` / ``eval()`` and never asks
``torch.is_grad_enabled()``. A call outside ``call_mode`` is an error.

- A training call runs the float weights (with gradients, unless the caller turned them off: a
  training call inside ``torch.no_grad()`` still runs the float weights, with dropout, and records
  no graph), under the autocast of the pipe's ``training_precision`` (:mod:`.training_precision`;
  none for float32), its float outputs returned in float32.
- A prediction runs under ``torch.inference_mode`` (also when gradients are enabled) what the
  layer's engine builds (:mod:`.engines`): for ``"torch"`` the precision mode's inference view
  (``spacy_luke.model.views.precision``: the 16-bit cast copy, the int8 view) with its autocast on
  this device, if it has one; for ``"onnxruntime"`` the head exported to ONNX. Each is built once
  per weight version and engine, under a lock, so threads share it.

Every call runs with the pipes' attention options (real positions only).
"""
from __future__ import annotations

import threading
from typing import Optional

import torch

from ..model.attention_options import attention_options
from ..model.mode import call_mode, call_training
from .engines import DEFAULT_ENGINE, Engine, get_engine
from .training_precision import TrainingAutocast

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


def training_call() -> bool:
    """Whether the current call trains (``call_mode``); a RuntimeError outside ``call_mode``."""
    training = call_training()
    if training is None:
        raise RuntimeError(
            "A LUKE layer's module was called outside spacy_luke.model.mode.call_mode(...), so the call does not say "
            "whether it trains: call it through its LukeShim (predict / begin_update), or inside call_mode."
        )
    return training


class HeadOutput(torch.nn.Module):
    """Calls ``head_model`` (a ``Luke*`` module) and returns its ``output`` tensor."""

    def __init__(self, head_model: torch.nn.Module, output: str, precision, engine: str = DEFAULT_ENGINE, requested: str = ""):
        super().__init__()
        self.head_model = head_model
        self.output = output
        self.precision = precision  # a spacy_luke.model.views.precision.Precision, placed on the device
        self.engine = engine  # the name of an engine of .engines
        # The precision the pipe asked for: what an engine that builds its own module runs (ONNX
        # Runtime's graph needs no torch kernels; ``precision`` may be a fallback of it).
        self.requested = requested or precision.name
        # The autocast of training calls (.training_precision; float32: none). The shim sets it.
        self.training_autocast = TrainingAutocast("float32")
        # (weights key, {engine name: module}) of the modules predictions run: the precision's
        # inference view, or what another engine built. Not a registered submodule.
        self._view_cache = None
        self._view_lock = threading.Lock()

    def train(self, mode: bool = True):
        # thinc calls train()/eval() around calls; the flag is shared by all threads, so it is
        # ignored: each call says its mode (LukeShim, call_mode).
        return self

    def _weights_key(self):
        return tuple((p._version, p.data_ptr()) for p in self.head_model.parameters())

    def _inference_model(self, engine: Optional[Engine] = None):
        """What predictions run with ``engine`` (default: the layer's, on this device), built once
        per weight version: what the engine builds, else the precision's inference view (or the model itself)."""
        engine = engine or get_engine(self.engine).on(self.device)
        if engine.build is None and self.precision.view is None:
            return self.head_model
        key = self._weights_key()
        cache = self._view_cache  # one read: another thread may replace it meanwhile
        view = cache[1].get(engine.name) if cache is not None and cache[0] == key else None
        if view is None:
            with self._view_lock:  # build the view once, not once per waiting thread
                cache = self._view_cache
                if cache is None or cache[0] != key:
                    cache = (key, {})
                view = cache[1].get(engine.name)
                if view is None:
                    if engine.build is not None:
                        view = engine.build(self.head_model, self.output, self.requested)
                    else:
                        view = self.precision.inference_module(self.head_model)
                    # A new dict: threads reading the old one meanwhile never see it change.
                    cache = self._view_cache = (key, {**cache[1], engine.name: view})
        return view

    def run(self, **inputs):
        """The head's output object for one call, in the call's mode (see the module docstring)."""
        with attention_options(**PIPE_ATTENTION_OPTIONS):  # this call only: thread-safe
            if training_call():
                with self.training_autocast.context():
                    return self.head_model(**inputs)
            with torch.inference_mode(), self.precision.context(self.device):
                return self._inference_model()(**inputs)

    def forward(self, **inputs):
        output = read_output(self.run(**inputs), self.output)
        if self.training_autocast.dtype_name is None:
            return output
        return tuple(_float32(x) for x in output) if isinstance(output, tuple) else _float32(output)

    def span_pruner_logits(self, **inputs):
        """The head's span pruner logits, in the call's mode. A prediction runs the precision mode's
        torch view (also with another engine, whose module holds the full head only); a training
        call the float head with its encoder as predictions run it (no dropout: the pruner learns
        the features it will see; the word states carry no gradient, so only the pruner learns)."""
        with attention_options(**PIPE_ATTENTION_OPTIONS):
            if training_call():
                with call_mode(False), self.training_autocast.context():
                    return _float32(self.head_model.span_pruner_logits(**inputs))
            with torch.inference_mode(), self.precision.context(self.device):
                return self._inference_model(get_engine(DEFAULT_ENGINE)).span_pruner_logits(**inputs)

    @property
    def device(self) -> torch.device:
        param = next(self.head_model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")


def _float32(tensor):
    """A 16-bit float output of an autocast pass as float32 (integer outputs as they are)."""
    return tensor.float() if tensor.is_floating_point() and tensor.dtype != torch.float32 else tensor
