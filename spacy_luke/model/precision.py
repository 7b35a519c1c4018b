"""Prediction precision modes, one registry: :data:`MODES` (names in :data:`PRECISIONS`).

Each mode is one :class:`Precision`, named once with everything that differs between modes: the
inference view it runs, the devices it runs on (and the mode that runs elsewhere), and where it
runs but slowly. Nothing outside this module checks a mode's name: the spaCy glue
(``spacy_luke.layers.luke_shim``) asks the registry. Adding a mode is adding a :class:`Precision`
here.

- ``"float32"``: the weights as loaded (the reference numbers). On the CPU predictions run a view
  sharing those weights whose linear layers multiply on oneDNN instead of the BLAS
  (:func:`~.linear_views.onednn_view`: 2.2-2.3x faster products on AMD CPUs, where MKL runs a
  generic path); elsewhere the model itself.
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
  replaced by a dynamically quantized one on oneDNN's int8 kernels (7-bit weights per output
  channel, 8-bit activations quantized per token, so that int8 adds no dependence on the other
  docs of a batch; :mod:`.int8`); the heads' output layers stay
  float32 (``linear_views.KEEP_FLOAT``). This happens in an inference view that shares every other module
  (embeddings, LayerNorms) with the float model, so the float weights stay trainable and
  saveable. :func:`~.int8.quantize_linears` builds it. A PyTorch build without those kernels
  runs float32, with a warning.

The functions :func:`effective_precision`, :func:`precision_context` and :func:`inference_view`
take a mode's name. Nothing here imports spaCy.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .int8 import (  # noqa: F401 (re-exported: the int8 view's names)
    MAX_OUTLIER_SHARE,
    OUTLIER_RATIO,
    WEIGHT_QUANT_RANGE,
    Int8Linear,
    int8_kernels_available,
    quantize_linears,
)
from .linear_views import onednn_view

logger = logging.getLogger("spacy_luke")

Device = Union[str, torch.device]
_WARNED = set()


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
    available: whether this PyTorch build can run the mode at all (None: always); when it cannot,
        ``fallback`` runs after the warning ``unavailable_warning``.
    """

    name: str
    autocast: Optional[torch.dtype] = None
    view: Optional[Callable[[nn.Module], nn.Module]] = None
    devices: Optional[Tuple[str, ...]] = None
    fallback: str = "float32"
    fallback_warning: str = ""
    slow: Tuple[Tuple[str, Callable[[], bool], str], ...] = ()
    available: Optional[Callable[[], bool]] = None
    unavailable_warning: str = ""

    def on(self, device: Device) -> "Precision":
        """The mode that runs on ``device``: this one, or its fallback. Warns (once) as it says."""
        kind = _device_type(device)
        if self.devices is not None and kind not in self.devices:
            _warn_once(f"{self.name}-{kind}", self.fallback_warning.format(kind=kind))
            return get_precision(self.fallback).on(device)
        if self.available is not None and not self.available():
            _warn_once(f"{self.name}-unavailable", self.unavailable_warning)
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
        Precision("float32", view=onednn_view),
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
            available=int8_kernels_available,
            unavailable_warning="precision='int8' needs oneDNN's int8 kernels (torch.ops.onednn.qlinear_pointwise), "
            "which this PyTorch build lacks, so it runs in float32.",
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
    return onednn_view(cast_copy(model, dtype, keep_float=KEEP_FLOAT_16).eval())


def inference_view(model: nn.Module, precision: str) -> nn.Module:
    """The module to run for ``precision``: ``model`` itself, or its view (16-bit: a cast copy; int8: quantized)."""
    return get_precision(precision).inference_module(model)
