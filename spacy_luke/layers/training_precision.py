"""16-bit training: the autocast a training call runs under (a pipe's ``training_precision``).

Training keeps float32 weights and optimizer state (the master weights): only the forward pass
(and so its backward) runs under ``torch.autocast``, its matrix products in 16 bits.

- ``"float32"``: no autocast (the default).
- ``"bfloat16"``: bfloat16 autocast on a CPU with native bfloat16 products (AVX512-BF16 or AMX)
  and on a GPU with bfloat16; on a GPU without it (before Ampere) float16 with a gradient scaler;
  on a CPU without native bfloat16 (where it would be emulated, slower than float32) float32,
  with a warning.
- ``"float16"``: float16 autocast with a gradient scaler on a GPU; float32 on the CPU (no fast
  float16 products there), with a warning.

Predictions never autocast (their precision is the pipe's ``precision`` setting).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import ContextManager, Optional

_WARNED = set()


@dataclass(frozen=True)
class TrainingMode:
    """One value of ``training_precision``: its autocast dtype (None: float32, no autocast), where
    it runs, and what runs instead where it cannot."""

    name: str
    dtype_name: Optional[str]
    runs_on_cpu: bool  # on a CPU (with native bfloat16 products, when ``needs_native_bf16``)
    needs_native_bf16: bool = False
    grad_scaler: bool = False  # float16 gradients need scaling
    gpu_without_bf16: Optional[str] = None  # the mode a GPU without bfloat16 runs instead


#: The training modes by name (the values of ``training_precision``), as the precision registry
#: holds the prediction modes: nothing else tells them apart by name.
TRAINING_MODES = {mode.name: mode for mode in (
    TrainingMode("float32", None, runs_on_cpu=True),
    TrainingMode("bfloat16", "bfloat16", runs_on_cpu=True, needs_native_bf16=True, gpu_without_bf16="float16"),
    TrainingMode("float16", "float16", runs_on_cpu=False, grad_scaler=True),
)}
TRAINING_PRECISIONS = tuple(TRAINING_MODES)


@dataclass(frozen=True)
class TrainingAutocast:
    """What a training call on one device runs: ``dtype`` (None: float32, no autocast) and whether
    the gradients need a scaler (float16)."""

    requested: str
    dtype_name: Optional[str] = None
    device_type: str = "cpu"
    grad_scaler: bool = False

    def context(self) -> ContextManager:
        """The autocast of a training forward pass (a null context for float32)."""
        if self.dtype_name is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device_type, dtype=getattr(torch, self.dtype_name))


def check_training_precision(pipe_name: str, value: str) -> str:
    """``value`` if it is a training precision, else a ValueError naming the choices."""
    if value not in TRAINING_MODES:
        raise ValueError(f"[{pipe_name}] training_precision={value!r}: choose one of {', '.join(TRAINING_PRECISIONS)}.")
    return value


def training_autocast(requested: str, device) -> TrainingAutocast:
    """The autocast a training call of ``requested`` runs on ``device`` (warns, once, when it falls back)."""
    mode = TRAINING_MODES[check_training_precision("training", requested)]
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
    if mode.dtype_name is None:
        return TrainingAutocast(requested, None, kind)
    if kind == "cuda":
        from ..model.views.precision import cuda_has_bf16

        if mode.needs_native_bf16 and not cuda_has_bf16(device):
            instead = TRAINING_MODES[mode.gpu_without_bf16]
            _warn_once(f"{mode.name}-{device}", f"training_precision={mode.name!r}: {device} has no bfloat16 support: training in "
                       f"{instead.name}" + (" with a gradient scaler." if instead.grad_scaler else "."))
            return TrainingAutocast(requested, instead.dtype_name, kind, instead.grad_scaler)
        return TrainingAutocast(requested, mode.dtype_name, kind, mode.grad_scaler)
    if kind == "cpu" and mode.runs_on_cpu:
        from ..model.views.precision import cpu_has_native_bf16

        if not mode.needs_native_bf16 or cpu_has_native_bf16():
            return TrainingAutocast(requested, mode.dtype_name, kind, mode.grad_scaler)
        _warn_once(
            f"{mode.name}-cpu",
            f"training_precision={mode.name!r}: this CPU has no native bfloat16 products (AVX512-BF16 or AMX), so they would "
            "be emulated and slower: training in float32. Set training_precision = \"float32\" to silence this.",
        )
        return TrainingAutocast(requested, None, kind)
    _warn_once(
        f"{mode.name}-{kind}",
        f"training_precision={mode.name!r} runs on GPUs (float16) and on CPUs with native bfloat16 ('bfloat16') only: "
        f"training in float32 on {kind}. Set training_precision = \"float32\" to silence this.",
    )
    return TrainingAutocast(requested, None, kind)


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
