"""Training or inference, decided by the call rather than by a flag shared between threads.

``torch.nn.Module.train()`` / ``eval()`` set a flag on every submodule: one thread's
``train()`` switches dropout on in the middle of another thread's forward pass. Our modules
read :func:`is_training` instead of ``self.training``: inside :func:`call_mode` (a context
variable, so each thread and each asyncio task has its own) the call decides; outside it the
module's own flag does, so a bare model keeps torch's usual ``train()`` / ``eval()`` behaviour.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

_CALL_TRAINING: ContextVar[Optional[bool]] = ContextVar("spacy_luke_call_training", default=None)


def call_training() -> Optional[bool]:
    """The mode the current call says (True: training), or None outside :func:`call_mode`."""
    return _CALL_TRAINING.get()


def is_training(module: nn.Module) -> bool:
    """Whether ``module`` runs in training mode now: the call's mode, else ``module.training``."""
    mode = _CALL_TRAINING.get()
    return module.training if mode is None else mode


@contextmanager
def call_mode(training: bool) -> Iterator[None]:
    """Run the model calls inside in training (dropout on) or inference mode, in this thread only."""
    token = _CALL_TRAINING.set(bool(training))
    try:
        yield
    finally:
        _CALL_TRAINING.reset(token)


class Dropout(nn.Dropout):
    """``nn.Dropout`` that follows :func:`is_training` (same state dict: it has none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, is_training(self), self.inplace)
