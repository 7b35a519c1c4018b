"""The registered LUKE architectures: thinc layers that own a LUKE torch module and its tokenizer.

One builder (:func:`build_luke_head_model`) makes all four; each registered name only says which
head it runs and which output it returns. A layer is built empty: its :class:`LukeShim` receives
the weights and the piece encoder later (:func:`load_luke_folder`, called by a pipe's
``initialize``, first use or ``from_disk``; or ``Model.from_bytes``). The layer serializes them
itself (``to_bytes`` / ``from_bytes``), holds them on thinc's current device (or the one
:meth:`LukeShim.set_device` names), and runs them in
the precision mode its pipe sets (:func:`set_precision`).

Input: a padded batch (``LukeBatch``: a dict of int64 numpy arrays, the model's forward
keywords). Output: the float array the head produces (``output``: "logits" for the
classification heads, "entity_last_hidden_state" for entity vectors, "candidate_scores" for
entity linking).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch

from .luke_shim import LukePieces, LukeShim

LukeBatch = Dict[str, np.ndarray]
LukeHeadModel = Model[LukeBatch, Any]

OUTPUTS = ("logits", "entity_last_hidden_state", "candidate_scores")


def build_luke_head_model(
    name: str, *, head: str, output: str = "logits", mixed_precision: bool = False, grad_scaler_config: Optional[dict] = None
) -> LukeHeadModel:
    """A thinc layer running the ``spacy_luke.model`` class ``head``, returning its ``output``."""
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {OUTPUTS}.")
    shim = LukeShim(head=head, output=output, mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config)
    return Model(name, _forward, shims=[shim], attrs={"head": head, "output": output, "mixed_precision": mixed_precision})


_ARGUMENTS = """
    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """


def _architecture(registered_name: str, layer_name: str, head: str, summary: str, output: str = "logits"):
    """Register one architecture: ``head`` (a ``spacy_luke.model`` class) returning ``output``."""

    def make(mixed_precision: bool = False, grad_scaler_config: dict = {}) -> LukeHeadModel:
        return build_luke_head_model(
            layer_name, head=head, output=output, mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config
        )

    make.__name__ = make.__qualname__ = layer_name.replace("luke_", "", 1)
    make.__doc__ = summary + "\n" + _ARGUMENTS
    return registry.architectures(registered_name)(make)


entity_span_classifier = _architecture(
    "spacy-luke.EntitySpanClassifier.v1",
    "luke_entity_span_classifier",
    "LukeForEntitySpanClassification",
    "LUKE with the entity-span classification head (NER): logits per candidate span.",
)
entity_classifier = _architecture(
    "spacy-luke.EntityClassifier.v1",
    "luke_entity_classifier",
    "LukeForEntityClassification",
    "LUKE with the entity classification head (entity typing): logits of the one marked span per input.",
)
entity_pair_classifier = _architecture(
    "spacy-luke.EntityPairClassifier.v1",
    "luke_entity_pair_classifier",
    "LukeForEntityPairClassification",
    "LUKE with the entity pair classification head (relation extraction): logits of the marked (head, tail) pair.",
)
entity_encoder = _architecture(
    "spacy-luke.EntityEncoder.v1",
    "luke_entity_encoder",
    "LukeModel",
    "The LUKE encoder alone (entity vectors): the last hidden state of each entity input.",
    output="entity_last_hidden_state",
)
entity_disambiguator = _architecture(
    "spacy-luke.EntityDisambiguator.v1",
    "luke_entity_disambiguator",
    "LukeForEntityDisambiguation",
    "LUKE with its masked entity prediction head (entity linking): per mention, the logits of its candidate "
    "entities and their rows, (batch, entities, candidates, 2).",
    output="candidate_scores",
)


# ---------------------------------------------------------------------- what pipes call


def luke_shim(model: LukeHeadModel) -> LukeShim:
    return model.shims[0]


def has_torch_module(model: LukeHeadModel) -> bool:
    """Whether ``model`` holds a torch module (it may lack a tokenizer if one was attached by hand)."""
    return luke_shim(model).head_model is not None


def is_loaded(model: LukeHeadModel) -> bool:
    """Whether ``model`` holds weights and the tokenizer that goes with them."""
    return luke_shim(model).is_loaded


def get_torch_module(model: LukeHeadModel):
    """The LUKE torch module (a ``Luke*`` class instance) held by ``model``."""
    if not has_torch_module(model):
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return luke_shim(model).head_model


def get_pieces(model: LukeHeadModel) -> LukePieces:
    """The tokenizer and Doc encoder of ``model``'s weights."""
    if not is_loaded(model):
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    return luke_shim(model).pieces


def set_precision(model: LukeHeadModel, precision: str) -> None:
    """Run ``model``'s predictions in ``precision`` (a mode of ``spacy_luke.model.precision``)."""
    luke_shim(model).set_precision(precision)


def set_engine(model: LukeHeadModel, engine: str) -> None:
    """Run ``model``'s predictions with ``engine`` (``"torch"`` or ``"onnxruntime"``, see :mod:`.engines`)."""
    luke_shim(model).set_engine(engine)


def set_torch_module(model: LukeHeadModel, head_model, pieces: Optional[LukePieces] = None, precision: Optional[str] = None) -> None:
    """Attach (or replace) the torch module and its pieces, on thinc's current device.

    precision: how predictions run (default: the layer's mode). Training always runs on the float
    weights; predictions run under ``torch.inference_mode``.
    """
    shim = luke_shim(model)
    if precision is not None:
        shim.precision = precision
    shim.attach(head_model, pieces if pieces is not None else shim.pieces)


def load_luke_folder(model: LukeHeadModel, folder: Path, *, lite: bool = False, config=None, revision: Optional[str] = None) -> None:
    """Load a LUKE checkpoint folder's weights and tokenizer into ``model`` (``config`` overrides
    the folder's config.json, e.g. with new labels)."""
    luke_shim(model).load_folder(Path(folder), lite=lite, config=config, revision=revision)


def save_luke_folder(model: LukeHeadModel, folder: Path) -> None:
    """Write ``model``'s weights and tokenizer as a Hugging Face-layout LUKE folder."""
    luke_shim(model).save_folder(Path(folder))


def _to_device(model: LukeHeadModel, value, device):
    """An input array as a tensor on ``device``: numpy inputs for a GPU go through pinned host
    memory and are copied without blocking, so the next batch can be built meanwhile."""
    import torch

    if device.type == "cuda" and isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).pin_memory().to(device, non_blocking=True)
    return xp2torch(model.ops.asarray(value), device=device)


def _to_ops(model: LukeHeadModel, tensor):
    """The output as an array of the model's ops (numpy when the weights sit on a GPU that
    thinc's ops do not use: a device set with ``set_device``, no cupy needed)."""
    from thinc.api import NumpyOps

    if tensor.is_cuda and isinstance(model.ops, NumpyOps):
        return tensor.detach().float().cpu().numpy()
    return torch2xp(tensor.float())


def _forward(model: LukeHeadModel, X: LukeBatch, is_train: bool):
    shim = luke_shim(model)
    if shim.head_model is None:
        raise ValueError(f"The {model.name} model has no weights yet: initialize the pipe first.")
    device = shim._model.device
    kwargs = {key: _to_device(model, value, device) for key, value in X.items()}
    Y_torch, torch_backprop = shim(ArgsKwargs(args=(), kwargs=kwargs), is_train)

    def backprop(dY):
        torch_backprop(ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": _to_device(model, dY, device)}))
        return X

    return _to_ops(model, Y_torch), backprop


# ---------------------------------------------------------------------- the span pruner (luke_ner)


def _pruner_inputs(model: LukeHeadModel, X: LukeBatch) -> Dict[str, Any]:
    """The padded batch's arrays the span pruner reads, as tensors on the weights' device."""
    device = luke_shim(model)._model.device
    return {key: _to_device(model, X[key], device) for key in PRUNER_INPUTS}


def span_pruner_logits(model: LukeHeadModel, X: LukeBatch) -> np.ndarray:
    """``(batch, entities)`` span pruner logits of a padded span batch (a prediction)."""
    from ..model.mode import call_mode

    with call_mode(False):
        logits = luke_shim(model)._model.span_pruner_logits(**_pruner_inputs(model, X))
    return logits.float().cpu().numpy()


def span_pruner_backward(model: LukeHeadModel, X: LukeBatch, targets: np.ndarray, normalizer: int) -> float:
    """Accumulate the span pruner's gradient for one padded span batch; returns its loss.

    targets: ``(batch, entities)``, 1 for a gold entity, 0 for a non-entity, -1 where unknown or
    padding. The loss is binary cross entropy summed over the known slots, divided by
    ``normalizer``. The word states come from the float encoder in prediction mode (no dropout),
    without gradient: the pruner learns the features it will see, and never changes the encoder.
    """
    import torch
    from torch.nn import functional as F

    from ..model.attention_options import attention_options
    from ..model.mode import call_mode
    from ..model.span_pruner import mark_trained
    from .head_output import PIPE_ATTENTION_OPTIONS

    head = luke_shim(model).head_model
    with call_mode(False), attention_options(**PIPE_ATTENTION_OPTIONS):
        logits = head.span_pruner_logits(**_pruner_inputs(model, X))
    target = torch.from_numpy(np.asarray(targets, dtype=np.float32)).to(logits.device)
    known = target >= 0
    loss = F.binary_cross_entropy_with_logits(logits[known], target[known], reduction="sum") / max(1, normalizer)
    loss.backward()
    mark_trained(head)
    return float(loss.detach())


PRUNER_INPUTS = ("input_ids", "attention_mask", "entity_start_positions", "entity_end_positions")
