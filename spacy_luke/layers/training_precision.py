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

#: The values of ``training_precision``.
TRAINING_PRECISIONS = ("float32", "bfloat16", "float16")
_WARNED = set()


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
    if value not in TRAINING_PRECISIONS:
        raise ValueError(f"[{pipe_name}] training_precision={value!r}: choose one of {', '.join(TRAINING_PRECISIONS)}.")
    return value


def training_autocast(requested: str, device) -> TrainingAutocast:
    """The autocast a training call of ``requested`` runs on ``device`` (warns, once, when it falls back)."""
    check_training_precision("training", requested)
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
    if requested == "float32":
        return TrainingAutocast(requested, None, kind)
    if kind == "cuda":
        from ..model.views.precision import cuda_has_bf16

        if requested == "bfloat16" and cuda_has_bf16(device):
            return TrainingAutocast(requested, "bfloat16", kind)
        if requested == "bfloat16":
            _warn_once(f"bf16-{device}", f"training_precision='bfloat16': {device} has no bfloat16 support: training in float16 with a gradient scaler.")
        return TrainingAutocast(requested, "float16", kind, grad_scaler=True)
    if kind == "cpu" and requested == "bfloat16":
        from ..model.views.precision import cpu_has_native_bf16

        if cpu_has_native_bf16():
            return TrainingAutocast(requested, "bfloat16", kind)
        _warn_once(
            "bf16-cpu",
            "training_precision='bfloat16': this CPU has no native bfloat16 products (AVX512-BF16 or AMX), so they would "
            "be emulated and slower: training in float32. Set training_precision = \"float32\" to silence this.",
        )
        return TrainingAutocast(requested, None, kind)
    _warn_once(
        f"{requested}-{kind}",
        f"training_precision={requested!r} runs on GPUs (float16) and on CPUs with native bfloat16 ('bfloat16') only: "
        f"training in float32 on {kind}. Set training_precision = \"float32\" to silence this.",
    )
    return TrainingAutocast(requested, None, kind)


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
