"""Inference views that swap a model's ``nn.Linear`` layers for other kernels, sharing the rest.

:func:`replace_linears` walks a model and returns a copy in which every ``nn.Linear`` (but the
heads' output layers, :data:`KEEP_FLOAT`) is replaced by ``single(linear)``. The modules in
:data:`COPY_RULES` are copied by their own rule instead: each entity-aware attention
(:func:`attention_view`) also gets one layer computing its Q/K/V side by side
(``side_by_side(layers)``, used by the unpadded CPU path, :class:`StackedQkv`). Only containers on
the way to a Linear are copied (shallowly): every other submodule and parameter is the float model's.

The views know the model's modules, never the reverse: nothing in ``spacy_luke.model`` outside
``views/`` imports this package (``tests/test_layering.py``).

Two views use it: the int8 view (:mod:`.int8`) and the float32 CPU view (:func:`onednn_view`:
the same float32 weights, multiplied by oneDNN's matrix product instead of the BLAS one).
"""
from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import EntityAwareSelfAttention
from ..qkv import Layers, QkvProjection, stacked_weights

if TYPE_CHECKING:
    from ..unpadded import Workspace

#: Linear layers left as they are: an untied LM decoder (its ``.weight`` is read directly), and the
#: heads' output layers (``classifier``, ``qa_outputs``): a few outputs per row, and the logits the
#: decisions are made on.
KEEP_FLOAT = ("decoder", "classifier", "qa_outputs")

#: ``side_by_side(layers)``: one layer computing the float ``layers``' outputs side by side.
SideBySide = Callable[[Sequence[nn.Linear]], nn.Module]


def _keeps_float(path: str) -> bool:
    """Whether the Linear at ``path`` (dotted module path) stays as it is."""
    return path.rsplit(".", 1)[-1] in KEEP_FLOAT


class StackedQkv(QkvProjection):
    """A view's Q/K/V: ``stacked`` computes ``[query | key | value]`` with one product.

    With the int8 view's layers, the weight scales are per output channel and the input's one
    scale is shared by all three, so it computes what the three quantized layers do. Padded and
    autograd paths keep the three layers (their numbers are the reference for this one).
    """

    def __init__(self, stacked: nn.Module) -> None:
        self.stacked = stacked

    def project_into(self, layers: Layers, flat: torch.Tensor, out: torch.Tensor, workspace: "Workspace") -> None:
        for part in workspace.chunks():
            out[part] = self.stacked(flat[part])


def attention_view(attention: EntityAwareSelfAttention, side_by_side: SideBySide) -> EntityAwareSelfAttention:
    """``attention`` for inference with its projections replaced; every other module is shared.

    The replaced projections may have no weight tensors to compare (int8), so the shared-query
    answer is fixed now (``frozen_shared``); with shared queries, unpadded inference projects Q, K
    and V with one product (:class:`StackedQkv`).
    """
    shared = attention._queries_are_shared()
    clone = copy.copy(attention)
    clone._modules = {
        name: side_by_side([child]) if type(child) is nn.Linear else child for name, child in attention._modules.items()
    }
    # The shallow copy shares the parameter / buffer dicts: give it its own (same tensors).
    clone._parameters = dict(attention._parameters)
    clone._buffers = dict(attention._buffers)
    clone._frozen_shared = shared
    layers = (attention.query, attention.key, attention.value)
    if shared and all(type(layer) is nn.Linear for layer in layers):
        clone.qkv = StackedQkv(side_by_side(layers))
    else:
        clone.qkv = QkvProjection()
    return clone


#: The modules a view copies by their own rule (``rule(module, side_by_side)``) rather than child
#: by child. A module type with projections of its own to fuse gets an entry here.
COPY_RULES: Dict[type, Callable[[nn.Module, SideBySide], nn.Module]] = {EntityAwareSelfAttention: attention_view}


def _copy_rule(node: nn.Module) -> Optional[Callable[[nn.Module, SideBySide], nn.Module]]:
    return next((COPY_RULES[cls] for cls in type(node).__mro__ if cls in COPY_RULES), None)


def replace_linears(module: nn.Module, single: Callable[[nn.Linear], nn.Module], side_by_side: SideBySide) -> nn.Module:
    """A copy of ``module`` with its ``nn.Linear`` layers replaced (see the module docstring)."""

    def stacked(layers: Sequence[nn.Linear]) -> nn.Module:
        return single(layers[0]) if len(layers) == 1 else side_by_side(layers)

    def convert(node: nn.Module, path: str = "") -> nn.Module:
        if type(node) is nn.Linear:
            return node if _keeps_float(path) else single(node)
        if not any(type(m) is nn.Linear for m in node.modules()):
            return node
        rule = _copy_rule(node)
        if rule is not None:
            return rule(node, stacked)
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
