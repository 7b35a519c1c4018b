"""The head layer: a thinc layer that owns a LUKE torch module and its tokenizer, and runs one
padded batch through it.

``Model[LukeBatch, Array]``: a padded batch (a dict of int64 numpy arrays, the model's forward
keywords) in, the float array the head produces out (``output``: "logits" for the classification
heads, "entity_last_hidden_state" for entity vectors; "candidates" for entity linking, a pair
``(logits, entity rows)``). A layer is built empty: its :class:`LukeShim` receives the weights
and the piece encoder later (:func:`load_luke_folder`, called by a pipe's ``initialize``, first
use or ``from_disk``; or ``Model.from_bytes``). It serializes them itself, holds them on thinc's
current device (or the one :meth:`LukeShim.set_device` names), and runs them in the precision
mode its pipe sets (:func:`set_precision`).

The functions below take the head layer or any model that holds one (a pipe's items model:
the head is found by its ref ``"luke_head"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch

from .luke_shim import LukePieces, LukeShim

LukeBatch = Dict[str, np.ndarray]
LukeHeadModel = Model[LukeBatch, Any]

OUTPUTS = ("logits", "entity_last_hidden_state", "candidates")
HEAD_REF = "luke_head"


def build_luke_head_model(
    name: str, *, head: str, output: str = "logits", mixed_precision: bool = False, grad_scaler_config: Optional[dict] = None
) -> LukeHeadModel:
    """A thinc layer running the ``spacy_luke.model`` class ``head``, returning its ``output``."""
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {OUTPUTS}.")
    shim = LukeShim(head=head, output=output, mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config)
    return Model(name, _forward, shims=[shim], attrs={"head": head, "output": output, "mixed_precision": mixed_precision})


def head_layer(model: Model) -> LukeHeadModel:
    """The head layer of ``model`` (itself, or its ``luke_head`` ref)."""
    if model.shims and isinstance(model.shims[0], LukeShim):
        return model
    if model.has_ref(HEAD_REF):
        return model.get_ref(HEAD_REF)
    raise ValueError(f"The {model.name} model holds no LUKE head layer.")


def luke_shim(model: Model) -> LukeShim:
    return head_layer(model).shims[0]


def has_torch_module(model: Model) -> bool:
    """Whether ``model`` holds a torch module (it may lack a tokenizer if one was attached by hand)."""
    return luke_shim(model).head_model is not None


def is_loaded(model: Model) -> bool:
    """Whether ``model`` holds weights and the tokenizer that goes with them."""
    return luke_shim(model).is_loaded


def get_torch_module(model: Model):
    """The LUKE torch module (a ``Luke*`` class instance) held by ``model``."""
    if not has_torch_module(model):
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return luke_shim(model).head_model


def get_pieces(model: Model) -> LukePieces:
    """The tokenizer and Doc encoder of ``model``'s weights."""
    if not is_loaded(model):
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return luke_shim(model).pieces


def set_precision(model: Model, precision: str) -> None:
    """Run ``model``'s predictions in ``precision`` (a mode of ``spacy_luke.model.views.precision``)."""
    luke_shim(model).set_precision(precision)


def set_training_precision(model: Model, training_precision: str) -> None:
    """Run ``model``'s training calls under the autocast of ``training_precision``
    (:mod:`.training_precision`: "float32", "bfloat16", "float16"); weights stay float32."""
    luke_shim(model).set_training_precision(training_precision)


def set_engine(model: Model, engine: str) -> None:
    """Run ``model``'s predictions with ``engine`` (a name in :data:`.engines.ENGINES`)."""
    luke_shim(model).set_engine(engine)
    for node in model.walk():
        if "engine" in node.attrs and node is not head_layer(model):
            node.attrs["engine"] = engine  # the batch runners' padding rule


def set_torch_module(model: Model, head_model, pieces: Optional[LukePieces] = None, precision: Optional[str] = None) -> None:
    """Attach (or replace) the torch module and its pieces, on thinc's current device.

    precision: how predictions run (default: the layer's mode). Training always runs on the float
    weights; predictions run under ``torch.inference_mode``.
    """
    shim = luke_shim(model)
    if precision is not None:
        shim.precision = precision
    shim.attach(head_model, pieces if pieces is not None else shim.pieces)


def load_luke_folder(model: Model, folder: Path, *, lite: bool = False, config=None, revision: Optional[str] = None) -> None:
    """Load a LUKE checkpoint folder's weights and tokenizer into ``model`` (``config`` overrides
    the folder's config.json, e.g. with new labels)."""
    luke_shim(model).load_folder(Path(folder), lite=lite, config=config, revision=revision)


def save_luke_folder(model: Model, folder: Path) -> None:
    """Write ``model``'s weights and tokenizer as a Hugging Face-layout LUKE folder."""
    luke_shim(model).save_folder(Path(folder))


def output_width(model: Model) -> int:
    """Columns of one row of the head's output, when no batch ran: its labels, or its hidden size
    (0 for the linker, whose rows are as wide as a call's candidate lists)."""
    shim = luke_shim(model)
    if shim.head_model is None or shim.output == "candidates":
        return 0
    config = shim.head_model.config
    return config.hidden_size if shim.output == "entity_last_hidden_state" else len(config.id2label)


def to_device(model: Model, value, device):
    """An input array as a tensor on ``device``: numpy inputs for a GPU go through pinned host
    memory and are copied without blocking, so the next batch can be built meanwhile."""
    import torch

    if device.type == "cuda" and isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).pin_memory().to(device, non_blocking=True)
    return xp2torch(model.ops.asarray(value), device=device)


def _to_ops(model: Model, tensor):
    """The output as an array of the model's ops (numpy when the weights sit on a GPU that
    thinc's ops do not use: a device set with ``set_device``, no cupy needed)."""
    from thinc.api import NumpyOps

    if tensor.is_cuda and isinstance(model.ops, NumpyOps):
        return tensor.detach().float().cpu().numpy() if tensor.is_floating_point() else tensor.detach().cpu().numpy()
    return torch2xp(tensor.float() if tensor.is_floating_point() else tensor)


def _forward(model: LukeHeadModel, X: LukeBatch, is_train: bool):
    shim = model.shims[0]
    if shim.head_model is None:
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    device = shim._model.device
    kwargs = {key: to_device(model, value, device) for key, value in X.items()}
    Y_torch, torch_backprop = shim(ArgsKwargs(args=(), kwargs=kwargs), is_train)
    # The linker's head gives (logits, entity rows): gradients reach the logits only.
    differentiable = Y_torch[0] if isinstance(Y_torch, tuple) else Y_torch

    def backprop(dY):
        torch_backprop(ArgsKwargs(args=(differentiable,), kwargs={"grad_tensors": to_device(model, dY, device)}))
        return X

    if isinstance(Y_torch, tuple):
        return tuple(_to_ops(model, y) for y in Y_torch), backprop
    return _to_ops(model, Y_torch), backprop
