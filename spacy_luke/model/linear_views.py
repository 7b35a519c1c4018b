"""Inference views that swap a model's ``nn.Linear`` layers for other kernels, sharing the rest.

:func:`replace_linears` walks a model and returns a copy in which every ``nn.Linear`` (but the
heads' output layers, :data:`KEEP_FLOAT`) is replaced by ``single(linear)``, and each
entity-aware attention's Q/K/V also gets one layer computing all three side by side
(``side_by_side(layers)``, used by the unpadded CPU path). Only containers on the way to a Linear
are copied (shallowly): every other submodule and parameter is the float model's.

Two views use it: the int8 view (:mod:`.int8`) and the float32 CPU view (:func:`onednn_view`:
the same float32 weights, multiplied by oneDNN's matrix product instead of the BLAS one).
"""
from __future__ import annotations

import copy
import functools
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: Linear layers left as they are: an untied LM decoder (its ``.weight`` is read directly), and the
#: heads' output layers (``classifier``, ``qa_outputs``): a few outputs per row, and the logits the
#: decisions are made on.
KEEP_FLOAT = ("decoder", "classifier", "qa_outputs")


def _keeps_float(path: str) -> bool:
    """Whether the Linear at ``path`` (dotted module path) stays as it is."""
    return path.rsplit(".", 1)[-1] in KEEP_FLOAT


def stacked_weights(layers: Sequence[nn.Linear]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``layers``' weights and biases stacked (one layer computing their outputs side by side):
    copies, detached; the bias is None when a layer has none."""
    weight = torch.cat([layer.weight.detach() for layer in layers])
    biases = [layer.bias for layer in layers]
    bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases])
    return weight, bias


def replace_linears(
    module: nn.Module,
    single: Callable[[nn.Linear], nn.Module],
    side_by_side: Callable[[Sequence[nn.Linear]], nn.Module],
) -> nn.Module:
    """A copy of ``module`` with its ``nn.Linear`` layers replaced (see the module docstring)."""
    from .attention import EntityAwareSelfAttention

    def stacked(layers: Sequence[nn.Linear]) -> nn.Module:
        return single(layers[0]) if len(layers) == 1 else side_by_side(layers)

    def convert(node: nn.Module, path: str = "") -> nn.Module:
        if type(node) is nn.Linear:
            return node if _keeps_float(path) else single(node)
        if not any(type(m) is nn.Linear for m in node.modules()):
            return node
        if isinstance(node, EntityAwareSelfAttention):
            return node.quantized_copy(stacked)
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


# ------------------------------------------------------------------------ float32 on oneDNN


@functools.lru_cache(maxsize=None)
def onednn_linear_available() -> bool:
    """Whether this PyTorch build has oneDNN's float32 linear (x86 builds do)."""
    try:
        if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            return False
        x, weight, bias = torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4)
        return bool(torch.equal(torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], ""), F.linear(x, weight, bias)))
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


#: The dtypes :class:`OneDnnLinear` multiplies on oneDNN (float16 has no fast CPU products here).
ONEDNN_DTYPES = (torch.float32, torch.bfloat16)


class OneDnnLinear(nn.Module):
    """An ``nn.Linear`` for CPU inference on oneDNN's matrix product (the same weight tensors),
    float32 or bfloat16 (:data:`ONEDNN_DTYPES`).

    PyTorch multiplies float32 CPU matrices with its BLAS (MKL in the x86 wheels), which on AMD
    CPUs runs a generic code path: measured on a 2-core AMD Zen 5, oneDNN's product was 2.2-2.5x
    MKL's on the encoder's shapes (docs/benchmarks.md). Other inputs (another dtype or device,
    autograd, no rows) take ``F.linear``.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        self.weight = weight  # the float model's tensor (shared), or a stacked copy
        self.bias = bias
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_float(cls, linear: nn.Linear) -> "OneDnnLinear":
        return cls(linear.weight, linear.bias)

    @classmethod
    def side_by_side(cls, layers: Sequence[nn.Linear]) -> "OneDnnLinear":
        return cls(*stacked_weights(layers))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel=oneDNN"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = x.dtype not in ONEDNN_DTYPES or x.dtype != self.weight.dtype or x.device.type != "cpu"
        if plain or torch.is_grad_enabled() or x.numel() == 0:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, self.in_features)
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)


def onednn_view(model: nn.Module) -> nn.Module:
    """``model`` for CPU inference on oneDNN's products (:class:`OneDnnLinear`), sharing every
    weight; ``model`` itself where that cannot run (no oneDNN, not float32 / bfloat16 on the CPU).

    A 16-bit view (``precision.half_view``) goes through it too: PyTorch's own bfloat16 linear on
    3-d inputs took a batched-matmul path copying the weights (half of the typer's time)."""
    param = next(model.parameters(), None)
    if param is None or param.device.type != "cpu" or param.dtype not in ONEDNN_DTYPES or not onednn_linear_available():
        return model
    return replace_linears(model, OneDnnLinear.from_float, OneDnnLinear.side_by_side)
