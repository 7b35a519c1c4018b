"""Inference precision modes: float32, bfloat16 / float16 autocast, int8 dynamic quantization.

``precision`` is one of :data:`PRECISIONS`:

- ``"float32"``: the weights as loaded, no autocast (the reference numbers).
- ``"bfloat16"`` / ``"float16"``: the forward pass runs under ``torch.autocast`` on the model's
  device (CUDA, or CPU), so matrix products run in 16 bits while the weights, LayerNorms and
  softmax stay float32 (no second copy of the weights). On a CPU without native bfloat16
  (AVX512-BF16 or AMX) the 16-bit products are emulated and *slower* than float32: a warning
  says so.
- ``"int8"``: CPU only. Every ``nn.Linear`` of the encoder is replaced by a dynamically quantized
  one (7-bit weights per output channel, 8-bit activations quantized per batch, see
  ``WEIGHT_QUANT_RANGE``); the heads' output
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
import functools
import logging
import warnings
from typing import ContextManager, Tuple, Union

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


#: int8 products on CPUs without VNNI (AVX2) sum pairs of uint8 x int8 products in int16, which
#: saturates past 32,767. PyTorch's default keeps clear of that with 7-bit activations
#: (``reduce_range``), but the activations are the coarse side: one scale per batch. We give the
#: bit to them instead and keep the weights, whose scales are per output channel, in 7 bits
#: (-64..63): 2 x 255 x 64 = 32,640 cannot saturate.
WEIGHT_QUANT_RANGE = (-64, 63)


#: Input channels whose largest magnitude in a batch is over this many times the median
#: channel's are multiplied in float32 instead (LLM.int8()'s mixed decomposition): a few such
#: channels (LayerNorm outlier dimensions) would otherwise set the one activation scale of the
#: whole batch and flatten every other channel to a few levels. 0 switches it off.
OUTLIER_RATIO = 5.0
#: ... unless more than this share of the channels would qualify (then none is an outlier).
MAX_OUTLIER_SHARE = 0.125


def int8_qconfig():
    """The dynamic int8 qconfig of the int8 view: 8-bit per-batch activations, 7-bit per-channel weights."""
    from torch.ao.quantization import PerChannelMinMaxObserver, PlaceholderObserver, QConfig

    low, high = WEIGHT_QUANT_RANGE
    return QConfig(
        activation=PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, is_dynamic=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=low, quant_max=high
        ),
    )


@functools.lru_cache(maxsize=None)
def _int8_linear_class():
    from torch.ao.nn.quantized import dynamic as nnqd

    class Int8Linear(nnqd.Linear):
        """A dynamically quantized Linear with full 8-bit activations (see ``WEIGHT_QUANT_RANGE``)."""

        #: The float weight as row blocks (several for a fused Q/K/V: the float model's own tensors).
        float_weights: Tuple[torch.Tensor, ...] = ()
        outlier_ratio: float = OUTLIER_RATIO

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            if not self.float_weights or self.outlier_ratio <= 0 or x.numel() == 0:
                return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)
            flat = x.reshape(-1, x.shape[-1])
            peaks = torch.maximum(flat.amax(0), flat.amin(0).neg())  # |x| per channel, no |x| copy
            outliers = torch.nonzero(peaks > self.outlier_ratio * peaks.median()).squeeze(1)
            if outliers.numel() == 0 or outliers.numel() > flat.shape[1] * MAX_OUTLIER_SHARE:
                # None, or too many to be outliers (a mostly-zero input): the plain int8 product.
                return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)
            # Outlier input channels in float, the rest in int8 over a range they no longer stretch.
            inliers = flat.index_fill(1, outliers, 0.0)
            out = torch.ops.quantized.linear_dynamic(inliers, packed, reduce_range=False).to(x.dtype)
            columns = [block.index_select(1, outliers) for block in self.float_weights]
            columns = columns[0] if len(columns) == 1 else torch.cat(columns)
            out.addmm_(flat.index_select(1, outliers), columns.t())
            return out.view(*x.shape[:-1], out.shape[-1])

        def _get_name(self):
            return "Int8Linear"

    return Int8Linear


def _keeps_float(path: str) -> bool:
    """Whether the Linear at ``path`` (dotted module path) stays float32 in the int8 view."""
    return path.rsplit(".", 1)[-1] in _KEEP_FLOAT


def quantize_linears(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``nn.Linear`` layers are int8 dynamically quantized.

    Only containers on the way to a Linear are copied (shallowly); every other submodule and
    parameter is shared with ``module``, so the copy costs about a quarter of the Linear weights.
    """
    from .attention import EntityAwareSelfAttention

    linear_class = _int8_linear_class()
    qconfig = int8_qconfig()

    def quantize(linear: nn.Linear, blocks: Tuple[torch.Tensor, ...] = ()) -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            linear.qconfig = qconfig
            try:
                quantized = linear_class.from_float(linear)
            finally:
                del linear.qconfig
        quantized.float_weights = tuple(b.detach() for b in blocks) or (linear.weight.detach(),)
        quantized.outlier_ratio = OUTLIER_RATIO
        return quantized

    def convert(node: nn.Module, path: str = "") -> nn.Module:
        if type(node) is nn.Linear and _keeps_float(path):
            return node  # shared, float32
        if type(node) is nn.Linear:
            return quantize(node)
        if not any(type(m) is nn.Linear for m in node.modules()):
            return node
        clone = copy.copy(node)
        clone._modules = {
            key: (convert(child, f"{path}.{key}" if path else key) if child is not None else None)
            for key, child in node._modules.items()
        }
        # The shallow copy shares the parameter / buffer dicts: give it its own (same tensors).
        clone._parameters = dict(node._parameters)
        clone._buffers = dict(node._buffers)
        if isinstance(node, EntityAwareSelfAttention):
            # The quantized projections have no weight tensors to compare: fix the answer now.
            clone.frozen_shared = node._queries_are_shared()
            clone.queries_shared = clone.frozen_shared
            clone.fused_qkv = False
            if clone.frozen_shared and all(type(getattr(node, n)) is nn.Linear for n in ("query", "key", "value")):
                # One quantized product for Q, K and V (used by unpadded inference): the weight
                # scales are per output channel and the input's scale is the same for all three,
                # so it computes what the three separate ones do, quantizing the input once.
                fused = nn.Linear(node.query.in_features, 3 * node.query.out_features)
                fused.weight.copy_(torch.cat([node.query.weight, node.key.weight, node.value.weight]))
                fused.bias.copy_(torch.cat([node.query.bias, node.key.bias, node.value.bias]))
                clone.qkv_quantized = quantize(fused, (node.query.weight, node.key.weight, node.value.weight))
        return clone

    with torch.no_grad():
        return convert(module)


def inference_view(model: nn.Module, precision: str) -> nn.Module:
    """The module to run for ``precision``: ``model`` itself, or its int8-quantized view."""
    check_precision(precision)
    if precision == "int8":
        return quantize_linears(model).eval()
    return model
