"""Inference precision modes: float32, bfloat16 / float16 autocast, int8 dynamic quantization.

``precision`` is one of :data:`PRECISIONS`:

- ``"float32"``: the weights as loaded, no autocast (the reference numbers).
- ``"bfloat16"`` / ``"float16"``: the forward pass runs under ``torch.autocast`` on the model's
  device (CUDA, or CPU), so matrix products run in 16 bits while the weights, LayerNorms and
  softmax stay float32 (no second copy of the weights). On a CPU without native bfloat16
  (AVX512-BF16 or AMX) the 16-bit products are emulated and *slower* than float32: a warning
  says so.
- ``"int8"``: CPU only. Every ``nn.Linear`` of the encoder is replaced by a dynamically quantized
  one (int8 weights per output channel, activations quantized per batch); the heads' output
  layers stay float32 (see ``_KEEP_FLOAT``). This happens in an inference view
  that shares every other module (embeddings, LayerNorms) with the float model, so the float
  weights stay trainable and saveable. :func:`inference_view` builds it.

:func:`precision_context` gives the autocast context of a mode; :func:`inference_view` the
module to run for a mode; :func:`effective_precision` the mode a device can run. Both are used by the spaCy glue (``spacy_luke.layers.luke_model``);
nothing here imports spaCy.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from typing import ContextManager, Union

import torch
from torch import nn

logger = logging.getLogger("spacy_luke")

PRECISIONS = ("float32", "bfloat16", "float16", "int8")
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
_WARNED = set()
# Linear layers left in float32 by int8 quantization: an untied LM decoder (its ``.weight`` is read
# directly), and the heads' output layers (``classifier``, ``qa_outputs``). Those produce the logits
# the decisions are made on, cost next to nothing (a few outputs per row), and quantizing their
# input, the concatenated hidden states, per tensor is where int8 flips near decisions.
_KEEP_FLOAT = ("decoder", "classifier", "qa_outputs")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}.")
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so CPU autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        fn = getattr(torch.cpu, name, None) if hasattr(torch, "cpu") else None
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - defensive
            pass
    return False


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _device_type(device: Union[str, torch.device]) -> str:
    return torch.device(device).type


def effective_precision(precision: str, device: Union[str, torch.device]) -> str:
    """The mode that will run on ``device``: ``precision``, or float32 for int8 off the CPU.

    Warns (once) when the mode will run but slowly (16-bit autocast on a CPU without native
    support) and when int8 is asked for on a GPU (dynamic quantization is CPU-only).
    """
    check_precision(precision)
    kind = _device_type(device)
    if precision == "int8" and kind != "cpu":
        _warn_once(
            f"int8-{kind}",
            f"precision='int8' (dynamic quantization) runs on the CPU only; the model is on {kind}, so it runs "
            "in float32. Use 'float16' or 'bfloat16' on the GPU.",
        )
        return "float32"
    if kind == "cpu" and precision == "bfloat16" and not cpu_has_native_bf16():
        _warn_once(
            "bf16-cpu",
            "precision='bfloat16' on a CPU without AVX512-BF16/AMX: bfloat16 products are emulated and slower "
            "than float32 here. 'int8' is the fast CPU mode.",
        )
    if kind == "cpu" and precision == "float16":
        _warn_once(
            "fp16-cpu",
            "precision='float16' on the CPU: most CPUs have no fast float16 matrix products; this is usually "
            "slower than float32. 'int8' is the fast CPU mode.",
        )
    return precision


def precision_context(precision: str, device: Union[str, torch.device]) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (a null context for float32 / int8)."""
    check_precision(precision)
    dtype = _AUTOCAST.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


def quantize_linears(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``nn.Linear`` layers are int8 dynamically quantized.

    Only containers on the way to a Linear are copied (shallowly); every other submodule and
    parameter is shared with ``module``, so the copy costs about a quarter of the Linear weights.
    """
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import per_channel_dynamic_qconfig

    from .attention import EntityAwareSelfAttention

    def convert(node: nn.Module, name: str = "") -> nn.Module:
        if type(node) is nn.Linear and name in _KEEP_FLOAT:
            return node  # shared, float32
        if type(node) is nn.Linear:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                node.qconfig = per_channel_dynamic_qconfig
                try:
                    return nnqd.Linear.from_float(node)
                finally:
                    del node.qconfig
        if not any(type(m) is nn.Linear for m in node.modules()):
            return node
        clone = copy.copy(node)
        clone._modules = {key: (convert(child, key) if child is not None else None) for key, child in node._modules.items()}
        # The shallow copy shares the parameter / buffer dicts: give it its own (same tensors).
        clone._parameters = dict(node._parameters)
        clone._buffers = dict(node._buffers)
        if isinstance(node, EntityAwareSelfAttention):
            # The quantized projections have no weight tensors to compare: fix the answer now.
            clone.frozen_shared = node._queries_are_shared()
            clone.queries_shared = clone.frozen_shared
            clone.fused_qkv = False
        return clone

    with torch.no_grad():
        return convert(module)


def inference_view(model: nn.Module, precision: str) -> nn.Module:
    """The module to run for ``precision``: ``model`` itself, or its int8-quantized view."""
    check_precision(precision)
    if precision == "int8":
        return quantize_linears(model).eval()
    return model
