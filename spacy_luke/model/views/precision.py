"""Prediction precision modes, one registry: :data:`MODES` (names: :func:`precision_names`).

Each mode is one :class:`Precision`, named once with everything that differs between modes: the
inference view it runs, the devices it runs on (and the mode that runs elsewhere), the mode that
runs on a GPU without bfloat16, and where it runs but slowly. Nothing outside this module checks a
mode's name: the thinc layer (``spacy_luke.layers``), the device plans (``spacy_luke.annotate.device``)
and the command line ask the registry. Adding a mode is adding a :class:`Precision` here.

- ``"float32"``: the weights as loaded (the reference numbers). On the CPU predictions run a view
  sharing those weights whose linear layers multiply on oneDNN instead of the BLAS
  (:func:`~.linear_views.onednn_view`: 2.2-2.3x faster products on AMD CPUs, where MKL runs a
  generic path); elsewhere the model itself.
- ``"bfloat16"`` / ``"float16"``: predictions run on a copy of the model cast once to that dtype
  (:mod:`.half`): weights, embeddings and activations in 16 bits, only the heads' output layers
  in float32. The copy shares no tensor with the float model and is built again when the float
  weights change, as every view is. No autocast (``Precision.autocast`` remains for a mode whose
  weights cannot be cast once). On a CPU without native bfloat16 (AVX512-BF16 or AMX) the 16-bit
  products are emulated and *slower* than float32: a warning says so. On a GPU without bfloat16
  (before Ampere) ``"bfloat16"`` runs ``"float16"``.
- ``"int8"``: CPU only (float32 elsewhere, with a warning). Every ``nn.Linear`` of the encoder is
  replaced by a dynamically quantized one on oneDNN's int8 kernels (:mod:`.int8`), the heads'
  output layers stay float32, every other module is shared with the float model, so the float
  weights stay trainable and saveable. A PyTorch build without those kernels runs float32, with
  a warning.

Importing this module imports no torch (the command line reads :func:`precision_names` for its
``--help``): the views are imported when the first one is built. Nothing here imports spaCy.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Optional, Tuple, Union

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger("spacy_luke")

Device = Union[str, "torch.device"]
_WARNED = set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so bfloat16 runs faster than float32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        fn = getattr(torch.cpu, name, None) if hasattr(torch, "cpu") else None
        try:
            if fn is not None and fn():
                return True
        except Exception:  # pragma: no cover - defensive
            pass
    return False


def cuda_has_bf16(device: Device) -> bool:
    """Whether the CUDA ``device`` runs bfloat16 (as ``torch.cuda.is_bf16_supported`` says; true when it cannot tell)."""
    import torch

    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError, ValueError):  # no CUDA here: nothing to fall back from
        return True


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _device_type(device: Device) -> str:
    """``"cpu"``, ``"cuda"``, ... of a ``torch.device`` or a device string ("cuda:0")."""
    return getattr(device, "type", None) or str(device).split(":", 1)[0]


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name`` (a module of this package) called with the arguments given, imported at the first call."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f".{module}", __package__), name)(*args)

    call.__qualname__ = call.__name__ = f"{module}.{name}"
    return call


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
    no_bf16_fallback: the mode that runs instead on a GPU without bfloat16 (None: this one runs
        on every GPU it runs on).
    slow: ``(device type, test, warning)``: where the mode runs but slowly when ``test()`` is true.
    available: whether this PyTorch build can run the mode at all (None: always); when it cannot,
        ``fallback`` runs after the warning ``unavailable_warning``.
    """

    name: str
    autocast: Optional["torch.dtype"] = None
    view: Optional[Callable[["nn.Module"], "nn.Module"]] = None
    devices: Optional[Tuple[str, ...]] = None
    fallback: str = "float32"
    fallback_warning: str = ""
    no_bf16_fallback: Optional[str] = None
    slow: Tuple[Tuple[str, Callable[[], bool], str], ...] = ()
    available: Optional[Callable[[], bool]] = None
    unavailable_warning: str = ""

    def runs_on(self, kind: str) -> bool:
        """Whether the mode runs on devices of type ``kind`` ("cpu", "cuda")."""
        return self.devices is None or kind in self.devices

    def on_cuda(self, bf16_supported: bool, device: str = "the GPU") -> Tuple[str, str]:
        """``(name, note)``: the mode that runs on the CUDA ``device`` (whether it has bfloat16:
        ``bf16_supported``) and why it is not this one ("" when it is). Pure: no warning, no torch."""
        if not self.runs_on("cuda"):
            return self.fallback, f"{self.name} does not run on GPUs: running {self.fallback} on {device}"
        if self.no_bf16_fallback is not None and not bf16_supported:
            return self.no_bf16_fallback, f"{device} has no bfloat16 support: running {self.no_bf16_fallback} instead"
        return self.name, ""

    def on(self, device: Device) -> "Precision":
        """The mode that runs on ``device``: this one, or its fallback. Warns (once) as it says."""
        kind = _device_type(device)
        if not self.runs_on(kind):
            _warn_once(f"{self.name}-{kind}", self.fallback_warning.format(kind=kind))
            return get_precision(self.fallback).on(device)
        if self.available is not None and not self.available():
            _warn_once(f"{self.name}-unavailable", self.unavailable_warning)
            return get_precision(self.fallback).on(device)
        if kind == "cuda" and self.no_bf16_fallback is not None:
            name, note = self.on_cuda(cuda_has_bf16(device), str(device))
            if note:
                _warn_once(f"{self.name}-{device}", f"precision={self.name!r}: {note}.")
                return get_precision(name).on(device)
        for slow_kind, test, warning in self.slow:
            if kind == slow_kind and test():
                _warn_once(f"{self.name}-slow-{kind}", warning)
        return self

    def context(self, device: Device) -> ContextManager:
        """The autocast context of this mode on ``device`` (a null context without autocast)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=_device_type(device), dtype=self.autocast)

    def inference_module(self, model: "nn.Module") -> "nn.Module":
        """The module to run predictions with: ``model`` itself, or this mode's view of it."""
        return model if self.view is None else self.view(model)


#: The modes, in the order users see them.
MODES: Dict[str, Precision] = {
    mode.name: mode
    for mode in (
        Precision("float32", view=_lazy("linear_views", "onednn_view")),
        Precision(
            "bfloat16",
            view=_lazy("half", "bfloat16_view"),
            no_bf16_fallback="float16",
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
            view=_lazy("half", "float16_view"),
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
            view=_lazy("int8", "int8_view"),
            devices=("cpu",),
            fallback="float32",
            fallback_warning="precision='int8' (dynamic quantization) runs on the CPU only; the model is on {kind}, "
            "so it runs in float32. Use 'float16' or 'bfloat16' on the GPU.",
            available=_lazy("int8", "int8_kernels_available"),
            unavailable_warning="precision='int8' needs oneDNN's int8 kernels (torch.ops.onednn.qlinear_pointwise), "
            "which this PyTorch build lacks, so it runs in float32.",
        ),
    )
}
#: The names of the registered modes (as :func:`precision_names` gives them at import).
PRECISIONS = tuple(MODES)


def precision_names() -> Tuple[str, ...]:
    """The names of the registered modes, in the order users see them (for ``--precision`` choices)."""
    return tuple(MODES)


def get_precision(precision: str) -> Precision:
    """The registered mode named ``precision`` (a ValueError naming the choices otherwise)."""
    try:
        return MODES[precision]
    except (KeyError, TypeError):
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(precision_names())}.") from None


def check_precision(precision: str) -> str:
    return get_precision(precision).name


def effective_precision(precision: str, device: Device) -> str:
    """The name of the mode that will run on ``device`` (see :meth:`Precision.on`)."""
    return get_precision(precision).on(device).name


def precision_context(precision: str, device: Device) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (a null context for every registered mode)."""
    return get_precision(precision).context(device)


def inference_view(model: "nn.Module", precision: str) -> "nn.Module":
    """The module to run for ``precision``: ``model`` itself, or its view (16-bit: a cast copy; int8: quantized)."""
    return get_precision(precision).inference_module(model)
