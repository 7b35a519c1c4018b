"""Prediction precision modes, one registry: :data:`MODES` (names in :data:`PRECISIONS`).

Each mode is one :class:`Precision`, named once with everything that differs between modes: the
inference view it runs, the devices it runs on (and the mode that runs elsewhere), and where it
runs but slowly. Nothing outside this module checks a mode's name: the spaCy glue
(``spacy_luke.layers.luke_shim``) asks the registry. Adding a mode is adding a :class:`Precision`
here.

- ``"float32"``: the weights as loaded (the reference numbers).
- ``"bfloat16"`` / ``"float16"``: predictions run on a copy of the model cast once to that dtype
  (:func:`half_view`): weights, embeddings and activations in 16 bits, so the matrix products
  and SDPA run in 16 bits; only the heads' output layers stay float32 (``KEEP_FLOAT_16``: the
  logits decisions are made on). The copy shares no tensor with the float model, so training
  (always on the float32 weights) never writes into it, and it is built again when the float
  weights change, as every view is. PyTorch's LayerNorm and softmax (eager and SDPA) accumulate
  16-bit inputs in float32, so the copy's LayerNorms run in 16 bits too. No autocast: nothing is
  cast per call (``Precision.autocast`` remains for a mode whose weights cannot be cast once).
  On a CPU without native bfloat16 (AVX512-BF16 or AMX) the 16-bit products are emulated and
  *slower* than float32: a warning says so.
- ``"int8"``: CPU only (float32 elsewhere, with a warning). Every ``nn.Linear`` of the encoder is
  replaced by a dynamically quantized one (7-bit weights per output channel, 8-bit activations
  quantized per batch, see ``WEIGHT_QUANT_RANGE``); the heads' output layers stay float32 (see
  ``_KEEP_FLOAT``). This happens in an inference view that shares every other module
  (embeddings, LayerNorms) with the float model, so the float weights stay trainable and
  saveable. :func:`quantize_linears` builds it.

The functions :func:`effective_precision`, :func:`precision_context` and :func:`inference_view`
take a mode's name. Nothing here imports spaCy.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

logger = logging.getLogger("spacy_luke")

Device = Union[str, torch.device]
_WARNED = set()
# Linear layers left in float32 by int8 quantization: an untied LM decoder (its ``.weight`` is read
# directly), and the heads' output layers (``classifier``, ``qa_outputs``). Those produce the logits
# the decisions are made on, cost next to nothing (a few outputs per row), and quantizing their
# input, the concatenated hidden states, per tensor is where int8 flips near decisions.
_KEEP_FLOAT = ("decoder", "classifier", "qa_outputs")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so bfloat16 runs faster than float32."""
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


def _device_type(device: Device) -> str:
    return torch.device(device).type


@dataclass(frozen=True)
class Precision:
    """One prediction precision mode (training always runs on the float32 weights).

    name: what users write (``precision = "int8"``).
    autocast: dtype of a ``torch.autocast`` the forward pass runs under (None: no autocast; no
        registered mode uses one: the 16-bit modes cast their weights once, in their view).
    view: builds the module predictions run from the float model (None: the model itself).
        A view is built again whenever the float weights change (``layers.head_output``): the
        int8 view shares the float modules it does not quantize, the 16-bit views share nothing.
    devices: the device types the mode runs on (None: all). Elsewhere ``fallback`` runs, after
        the warning ``fallback_warning`` (formatted with ``kind``, the device type).
    slow: ``(device type, test, warning)``: where the mode runs but slowly when ``test()`` is true.
    """

    name: str
    autocast: Optional[torch.dtype] = None
    view: Optional[Callable[[nn.Module], nn.Module]] = None
    devices: Optional[Tuple[str, ...]] = None
    fallback: str = "float32"
    fallback_warning: str = ""
    slow: Tuple[Tuple[str, Callable[[], bool], str], ...] = ()

    def on(self, device: Device) -> "Precision":
        """The mode that runs on ``device``: this one, or its fallback. Warns (once) as it says."""
        kind = _device_type(device)
        if self.devices is not None and kind not in self.devices:
            _warn_once(f"{self.name}-{kind}", self.fallback_warning.format(kind=kind))
            return get_precision(self.fallback).on(device)
        for slow_kind, test, warning in self.slow:
            if kind == slow_kind and test():
                _warn_once(f"{self.name}-slow-{kind}", warning)
        return self

    def context(self, device: Device) -> ContextManager:
        """The autocast context of this mode on ``device`` (a null context without autocast)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=_device_type(device), dtype=self.autocast)

    def inference_module(self, model: nn.Module) -> nn.Module:
        """The module to run predictions with: ``model`` itself, or this mode's view of it."""
        return model if self.view is None else self.view(model)


#: The modes, in the order users see them.
MODES: Dict[str, Precision] = {
    mode.name: mode
    for mode in (
        Precision("float32"),
        Precision(
            "bfloat16",
            view=lambda model: half_view(model, torch.bfloat16),
            slow=(
                (
                    "cpu",
                    lambda: not cpu_has_native_bf16(),
                    "precision='bfloat16' on a CPU without AVX512-BF16/AMX: bfloat16 products are emulated and slower "
                    "than float32 here. 'int8' is the fast CPU mode.",
                ),
            ),
        ),
        Precision(
            "float16",
            view=lambda model: half_view(model, torch.float16),
            slow=(
                (
                    "cpu",
                    lambda: True,
                    "precision='float16' on the CPU: most CPUs have no fast float16 matrix products; this is usually "
                    "slower than float32. 'int8' is the fast CPU mode.",
                ),
            ),
        ),
        Precision(
            "int8",
            view=lambda model: quantize_linears(model).eval(),
            devices=("cpu",),
            fallback="float32",
            fallback_warning="precision='int8' (dynamic quantization) runs on the CPU only; the model is on {kind}, "
            "so it runs in float32. Use 'float16' or 'bfloat16' on the GPU.",
        ),
    )
}
PRECISIONS = tuple(MODES)


def get_precision(precision: str) -> Precision:
    """The registered mode named ``precision`` (a ValueError naming the choices otherwise)."""
    try:
        return MODES[precision]
    except (KeyError, TypeError):
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}.") from None


def check_precision(precision: str) -> str:
    return get_precision(precision).name


def effective_precision(precision: str, device: Device) -> str:
    """The name of the mode that will run on ``device`` (see :meth:`Precision.on`)."""
    return get_precision(precision).on(device).name


def precision_context(precision: str, device: Device) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (a null context for every registered mode)."""
    return get_precision(precision).context(device)


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
    Attention modules make their own copy (:meth:`EntityAwareSelfAttention.quantized_copy`).
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

    def quantize_side_by_side(layers: Sequence[nn.Linear]) -> nn.Module:
        """One quantized layer computing the float ``layers``' outputs side by side."""
        if len(layers) == 1:
            return quantize(layers[0])
        stacked = nn.Linear(layers[0].in_features, sum(layer.out_features for layer in layers))
        stacked.weight.copy_(torch.cat([layer.weight for layer in layers]))
        stacked.bias.copy_(torch.cat([layer.bias for layer in layers]))
        return quantize(stacked, tuple(layer.weight for layer in layers))

    def convert(node: nn.Module, path: str = "") -> nn.Module:
        if type(node) is nn.Linear and _keeps_float(path):
            return node  # shared, float32
        if type(node) is nn.Linear:
            return quantize(node)
        if not any(type(m) is nn.Linear for m in node.modules()):
            return node
        if isinstance(node, EntityAwareSelfAttention):
            return node.quantized_copy(quantize_side_by_side)
        clone = copy.copy(node)
        clone._modules = {
            key: (convert(child, f"{path}.{key}" if path else key) if child is not None else None)
            for key, child in node._modules.items()
        }
        # The shallow copy shares the parameter / buffer dicts: give it its own (same tensors).
        clone._parameters = dict(node._parameters)
        clone._buffers = dict(node._buffers)
        return clone

    with torch.no_grad():
        return convert(module)


#: The heads' output layers a 16-bit view keeps in float32 (:class:`Float32Output`): a few outputs
#: per row, and they give the logits the decisions are made on (in bfloat16 a logit of 40 is
#: rounded to a multiple of 0.25). Not an LM decoder: most of an MLM head's work, read directly.
KEEP_FLOAT_16 = ("classifier", "qa_outputs")


class Float32Output(nn.Linear):
    """A head's output layer in a 16-bit view: the float model's float32 weights, its 16-bit input upcast, float32 logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))


def cast_copy(module: nn.Module, dtype: torch.dtype, keep_float: Sequence[str] = ()) -> nn.Module:
    """A copy of ``module`` whose floating-point parameters and buffers are ``dtype``; it shares no tensor with ``module``.

    Each tensor is cast straight into its copy (the float weights are never duplicated on the
    way); tied parameters stay tied; integer buffers are copied as they are. The copy's
    parameters need no gradient: it is for inference. Built outside inference mode even when
    called in it, so that its tensors keep version counters (the weight-keyed caches read them).

    keep_float: names of ``nn.Linear`` layers that stay in their dtype, as :class:`Float32Output`
    (their inputs upcast), unless their weights are tied to another module's.
    """
    kept = {path: sub for path, sub in module.named_modules() if type(sub) is nn.Linear and path.rsplit(".", 1)[-1] in keep_float}
    elsewhere = {id(p) for path, sub in module.named_modules() if path not in kept for p in sub.parameters(recurse=False)}
    kept = {path: sub for path, sub in kept.items() if not any(id(p) in elsewhere for p in sub.parameters())}
    keep = {id(p) for sub in kept.values() for p in sub.parameters()}
    memo: Dict[int, object] = {}
    with torch.inference_mode(False), torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) in memo:
                continue
            cast = tensor.is_floating_point() and id(tensor) not in keep
            data = tensor.detach().to(dtype if cast else tensor.dtype, copy=True)
            memo[id(tensor)] = nn.Parameter(data, requires_grad=False) if isinstance(tensor, nn.Parameter) else data
        clone = copy.deepcopy(module, memo)
        for path in kept:
            linear = clone.get_submodule(path)
            output = Float32Output(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
            output.weight, output.bias = linear.weight, linear.bias
            output.train(linear.training)
            parent, _, name = path.rpartition(".")
            setattr(clone.get_submodule(parent), name, output)
    return clone


def half_view(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The inference view of a 16-bit mode: ``model`` cast once to ``dtype``, the heads' output layers in float32."""
    return cast_copy(model, dtype, keep_float=KEEP_FLOAT_16).eval()


def inference_view(model: nn.Module, precision: str) -> nn.Module:
    """The module to run for ``precision``: ``model`` itself, or its view (16-bit: a cast copy; int8: quantized)."""
    return get_precision(precision).inference_module(model)
