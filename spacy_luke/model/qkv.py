"""The query, key and value projections of the shared-query (plain attention) path.

The checkpoint layout keeps three layers, ``query``, ``key`` and ``value``, and so does every
attention module. How they are applied is a :class:`QkvProjection`, fixed when the module (or
its inference view) is built:

- :class:`QkvProjection`: three products (any layers, e.g. the int8 view's quantized ones);
- :class:`FusableQkv` (the float model's): on request (``AttentionOptions.fused_qkv``), one
  ``(3 * hidden) x hidden`` product from a fused copy of the weights, rebuilt whenever they
  change. The copy is no parameter: never saved, never trained;
- an inference view's (``views.linear_views.StackedQkv``: the int8 and oneDNN views): unpadded
  inference projects with one product for all three (one quantization of the input for int8).

The projections take the three layers at each call, so a copy of an attention module never
keeps another module's layers.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from .unpadded import Workspace

Layers = Tuple[nn.Module, nn.Module, nn.Module]  # (query, key, value)


class SameTensor:
    """A tensor's identity in a cache key: equal to another only while both refer to the same live
    tensor (a weak reference: the key keeps no tensor alive, and unlike ``id()`` is never reused)."""

    __slots__ = ("ref",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.ref = weakref.ref(tensor)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SameTensor) and self.ref() is not None and self.ref() is other.ref()

    __hash__ = None  # compared, never hashed


def weights_key(layers: Sequence[Optional[nn.Module]]) -> tuple:
    """Identity, version, device and storage of the layers' weights and biases (changes with them).

    ``()`` when a layer has no weight tensor (a quantized layer, a missing one).
    """
    key = []
    for layer in layers:
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            return ()
        for tensor in (weight, layer.bias):
            key.append(None if tensor is None else (SameTensor(tensor), tensor._version, tensor.device, tensor.data_ptr()))
    return tuple(key)


def stacked_weights(layers: Sequence[nn.Linear]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``layers``' weights and biases stacked (one layer computing their outputs side by side):
    copies, detached; the bias is None when a layer has none."""
    weight = torch.cat([layer.weight.detach() for layer in layers])
    biases = [layer.bias for layer in layers]
    bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases])
    return weight, bias


class QkvProjection:
    """Query, key and value with one product each."""

    #: Whether :meth:`project` can make one fused product (``fused=True``).
    can_fuse = False

    def project(self, layers: Layers, hidden: torch.Tensor, fused: bool = False) -> Tuple[torch.Tensor, ...]:
        """``(query, key, value)`` of ``hidden``, each ``(..., hidden)``; ``fused``: one product (when :attr:`can_fuse`)."""
        query, key, value = layers
        return query(hidden), key(hidden), value(hidden)

    def project_into(self, layers: Layers, flat: torch.Tensor, out: torch.Tensor, workspace: "Workspace") -> None:
        """``[query | key | value](flat)`` into ``out`` (``(tokens, 3 * hidden)``, a workspace buffer)."""
        width = out.shape[1] // 3
        for index, layer in enumerate(layers):
            columns = out[:, index * width : (index + 1) * width]
            if type(layer) is nn.Linear:
                torch.addmm(layer.bias, flat, layer.weight.t(), out=columns)
            else:
                for part in workspace.chunks():
                    columns[part] = layer(flat[part])


class FusableQkv(QkvProjection):
    """Float ``nn.Linear`` projections, which may run as one product from a fused weight copy."""

    can_fuse = True

    def __init__(self) -> None:
        self._cache: Optional[Tuple[tuple, torch.Tensor, torch.Tensor]] = None

    def fused_weights(self, layers: Layers) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[query | key | value]`` weight and bias, copied again when the layers' tensors changed."""
        key = weights_key(layers)
        cache = self._cache  # one read: another thread may replace it meanwhile
        if cache is None or cache[0] != key:
            cache = self._cache = (key, *stacked_weights(layers))
        return cache[1], cache[2]

    def project(self, layers: Layers, hidden: torch.Tensor, fused: bool = False) -> Tuple[torch.Tensor, ...]:
        if not fused:
            return super().project(layers, hidden)
        weight, bias = self.fused_weights(layers)
        return F.linear(hidden, weight, bias).split(layers[0].out_features, dim=-1)
