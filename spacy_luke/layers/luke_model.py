"""Thinc glue: a registered architecture that holds a LUKE torch module for a spaCy pipe.

The architecture only records settings. The torch module is built from a checkpoint when the
pipe loads its weights (``initialize``, first use, or ``from_disk``) and is then wrapped with
thinc's ``PyTorchWrapper_v2``, so spaCy's optimizer, ``use_params`` and GPU handling apply.
torch is imported only when a module is attached.

Input: a padded batch (``LukeBatch``: a dict of int64 numpy arrays, the model's forward
keywords). Output: the float array the head produces (``output``: "logits" for the
classification heads, "entity_last_hidden_state" for entity vectors).
"""

import threading
from typing import Any, Dict, Optional

import numpy as np
from spacy.util import registry
from thinc.api import Model

LukeBatch = Dict[str, np.ndarray]
LukeHeadModel = Model[LukeBatch, Any]

OUTPUTS = ("logits", "entity_last_hidden_state")


def build_luke_head_model(
    name: str, *, head: str, output: str = "logits", mixed_precision: bool = False, grad_scaler_config: Optional[dict] = None
) -> LukeHeadModel:
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {OUTPUTS}.")
    return Model(
        name,
        _forward,
        attrs={
            "head": head,
            "output": output,
            "mixed_precision": mixed_precision,
            "grad_scaler_config": dict(grad_scaler_config or {}),
        },
    )


@registry.architectures("spacy-luke.EntitySpanClassifier.v1")
def entity_span_classifier(mixed_precision: bool = False, grad_scaler_config: dict = {}) -> LukeHeadModel:
    """LUKE with the entity-span classification head (NER): logits per candidate span.

    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """
    return build_luke_head_model(
        "luke_entity_span_classifier",
        head="LukeForEntitySpanClassification",
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
    )


@registry.architectures("spacy-luke.EntityClassifier.v1")
def entity_classifier(mixed_precision: bool = False, grad_scaler_config: dict = {}) -> LukeHeadModel:
    """LUKE with the entity classification head (entity typing): logits of the one marked span per input.

    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """
    return build_luke_head_model(
        "luke_entity_classifier",
        head="LukeForEntityClassification",
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
    )


@registry.architectures("spacy-luke.EntityPairClassifier.v1")
def entity_pair_classifier(mixed_precision: bool = False, grad_scaler_config: dict = {}) -> LukeHeadModel:
    """LUKE with the entity pair classification head (relation extraction): logits of the marked (head, tail) pair.

    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """
    return build_luke_head_model(
        "luke_entity_pair_classifier",
        head="LukeForEntityPairClassification",
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
    )


@registry.architectures("spacy-luke.EntityEncoder.v1")
def entity_encoder(mixed_precision: bool = False) -> LukeHeadModel:
    """The LUKE encoder alone (entity vectors): the last hidden state of each entity input.

    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    """
    return build_luke_head_model(
        "luke_entity_encoder", head="LukeModel", output="entity_last_hidden_state", mixed_precision=mixed_precision
    )


def has_torch_module(model: LukeHeadModel) -> bool:
    return bool(model.layers)


def get_torch_module(model: LukeHeadModel):
    """The LUKE torch module (a ``Luke*`` class instance) held by ``model``."""
    if not model.layers:
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return model.layers[0].shims[0]._model.luke_model


_FORK_HOOK_INSTALLED = False


def _single_threaded_after_fork() -> None:
    """torch's OpenMP pool is not fork-safe: a forked child (``nlp.pipe(n_process=2)``) that
    used it would hang. Children run torch single-threaded, as one process per core intends."""
    global _FORK_HOOK_INSTALLED
    if not _FORK_HOOK_INSTALLED:
        import os

        import torch

        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_HOOK_INSTALLED = True


#: The attention options the pipes' calls run with (see ``spacy_luke.model.attention_options``):
#: the pipes read real positions only, so the layers skip the padded slots' work.
PIPE_ATTENTION_OPTIONS = {"unpad": True}


def set_torch_module(model: LukeHeadModel, luke_model, precision: str = "float32") -> None:
    """Attach (or replace) the torch module, on thinc's current device.

    precision: how predictions run, a mode of ``spacy_luke.model.precision.PRECISIONS`` (its
    autocast, its inference view, its fallback on this device). Training always runs on the float
    weights; predictions run under ``torch.inference_mode``.
    """
    import torch

    from ..model.attention_options import attention_options
    from ..model.precision import get_precision

    _single_threaded_after_fork()
    from thinc.api import ArgsKwargs, PyTorchGradScaler, PyTorchWrapper_v2, get_torch_default_device, torch2xp, xp2torch

    from .call_mode_shim import CallModeShim

    output = model.attrs["output"]
    device = get_torch_default_device()

    class _Output(torch.nn.Module):
        """Calls the LUKE model and returns the one tensor the pipe uses."""

        def __init__(self, luke_model, precision):
            super().__init__()
            self.luke_model = luke_model
            self.precision = precision  # a spacy_luke.model.precision.Precision
            # (weights key, module) of the precision's inference view; not a registered submodule.
            self._view_cache = None
            self._view_lock = threading.Lock()

        def train(self, mode: bool = True):
            # thinc's shim calls train()/eval() around every call; the flag is shared by all
            # threads, so it is ignored: each call says its mode (CallModeShim, call_mode).
            return self

        def _weights_key(self):
            return tuple((p._version, p.data_ptr()) for p in self.luke_model.parameters())

        def _inference_model(self):
            if self.precision.view is None:
                return self.luke_model
            key = self._weights_key()
            cache = self._view_cache  # one read: another thread may replace it meanwhile
            if cache is None or cache[0] != key:
                with self._view_lock:  # build the view once, not once per waiting thread
                    cache = self._view_cache
                    if cache is None or cache[0] != key:
                        cache = self._view_cache = (key, self.precision.inference_module(self.luke_model))
            return cache[1]

        def forward(self, **inputs):
            with attention_options(**PIPE_ATTENTION_OPTIONS):  # this call only: thread-safe
                if torch.is_grad_enabled():  # training (begin_update): the float weights, with gradients
                    return getattr(self.luke_model(**inputs), output)
                with torch.inference_mode(), self.precision.context(device):
                    return getattr(self._inference_model()(**inputs), output)

    def convert_inputs(_model, X: LukeBatch, is_train: bool):
        kwargs = {key: xp2torch(model.ops.asarray(value), device=device) for key, value in X.items()}
        return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: X

    def convert_outputs(_model, inputs_outputs, is_train: bool):
        _, Y_torch = inputs_outputs

        def backprop(dY):
            return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": xp2torch(dY, device=device)})

        return torch2xp(Y_torch.float()), backprop

    scaler = PyTorchGradScaler(**model.attrs["grad_scaler_config"]) if model.attrs["mixed_precision"] else None
    wrapper = PyTorchWrapper_v2(
        _Output(luke_model.to(device), get_precision(precision).on(device)),
        convert_inputs=convert_inputs,
        convert_outputs=convert_outputs,
        mixed_precision=model.attrs["mixed_precision"],
        grad_scaler=scaler,
        device=device,
    )
    wrapper.shims[0] = CallModeShim(
        wrapper.shims[0]._model, mixed_precision=model.attrs["mixed_precision"], grad_scaler=scaler, device=device
    )
    # At rest the LUKE module is in eval mode; each call says whether it trains (CallModeShim).
    luke_model.eval()
    model._layers[:] = [wrapper]


def _forward(model: LukeHeadModel, X: LukeBatch, is_train: bool):
    if not model.layers:
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return model.layers[0](X, is_train)
