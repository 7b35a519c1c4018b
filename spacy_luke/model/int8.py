"""int8 inference on the CPU: dynamically quantized linear layers on oneDNN's int8 products.

:func:`quantize_linears` builds the ``"int8"`` precision's inference view: a copy of a model whose
``nn.Linear`` layers are :class:`Int8Linear`, sharing every other module with the float model.

The products run on ``torch.ops.onednn.qlinear_prepack`` / ``qlinear_pointwise``: the oneDNN
kernels PyTorch's supported x86 int8 path (torchao's ``X86InductorQuantizer`` under
``torch.compile``) lowers to. They take plain ``uint8`` / ``int8`` tensors with their scales, so
nothing here goes through ``torch.ao.quantization`` or quantized tensor dtypes (``torch.qint8``),
which PyTorch deprecates. torchao's eager int8 tensors were measured too: 2.7x slower than these
kernels on a 2,000 x 768 @ 768 x 3,072 product (they dequantize in separate passes), see
docs/benchmarks.md.

Scheme (the same as the earlier ``torch.ao`` int8 mode, so the agreement figures carry over):

- weights: symmetric, one scale per output channel, 7 bits (:data:`WEIGHT_QUANT_RANGE`);
- activations: 8 bits, one scale and zero point per call covering the call's range (asymmetric
  ``uint8``, as oneDNN's fast kernels take: a one-sided input such as GELU's output keeps all 8
  bits);
- outlier input channels (over :data:`OUTLIER_RATIO` times the median channel's peak) are taken
  out of the int8 product and multiplied in float32 (LLM.int8()'s mixed decomposition).
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .linear_views import replace_linears, stacked_weights

#: int8 products on CPUs without VNNI (AVX2) sum pairs of uint8 x int8 products in int16, which
#: saturates past 32,767. The activations are the coarse side (one scale per call), so they keep
#: all 8 bits and the weights, whose scales are per output channel, take 7 (-64..63):
#: 2 x 255 x 64 = 32,640 cannot saturate.
WEIGHT_QUANT_RANGE = (-64, 63)
#: Input channels whose largest magnitude in a call is over this many times the median channel's
#: are multiplied in float32 instead: a few such channels (LayerNorm outlier dimensions) would
#: otherwise set the one activation scale of the whole call and flatten every other channel to a
#: few levels. 0 switches it off.
OUTLIER_RATIO = 5.0
#: ... unless more than this share of the channels would qualify (then none is an outlier).
MAX_OUTLIER_SHARE = 0.125
#: The activations' zero point when the input is all zeros.
_ZERO_POINT = 128


@functools.lru_cache(maxsize=None)
def int8_kernels_available() -> bool:
    """Whether this PyTorch build has oneDNN's int8 linear kernels (x86 builds do)."""
    try:
        ops = torch.ops.onednn
        return torch.backends.mkldnn.is_available() and all(
            hasattr(ops, name) for name in ("qlinear_prepack", "qlinear_pointwise")
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def quantize_weight(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``weight`` (out, in) as 7-bit integers (int8 tensor) and one float32 scale per output channel."""
    low, high = WEIGHT_QUANT_RANGE
    weight = weight.detach().float()
    scales = (weight.abs().amax(dim=1) / ((high - low) / 2)).clamp_min(torch.finfo(torch.float32).tiny)
    ints = torch.round(weight / scales[:, None]).clamp_(low, high).to(torch.int8)
    return ints, scales


class Int8Linear(nn.Module):
    """A dynamically quantized ``nn.Linear`` (inference only): see the module's docstring for the scheme.

    float_weights: the float weight as row blocks (several for a fused Q/K/V: the float model's
        own tensors, not copies), read for the outlier channels.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], float_weights: Tuple[torch.Tensor, ...] = ()):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        ints, scales = quantize_weight(weight)
        self.register_buffer("weight_ints", ints, persistent=False)
        self.register_buffer("weight_scales", scales, persistent=False)
        self.register_buffer("packed_weight", torch.ops.onednn.qlinear_prepack(ints, None), persistent=False)
        self.register_buffer("weight_zero_points", torch.zeros(self.out_features, dtype=torch.int64), persistent=False)
        float_bias = None if bias is None else bias.detach().float().clone()
        self.register_buffer("bias", float_bias, persistent=False)
        self.float_weights = tuple(block.detach() for block in float_weights) or (weight.detach(),)
        self.outlier_ratio = OUTLIER_RATIO
        # Each output column's weight sum (dequantized), for the per-token zero points.
        self.register_buffer("weight_sums", ints.float().sum(dim=1) * scales, persistent=False)

    #: Activation scales per token (row) instead of per call (see :meth:`_per_token_product`).
    per_token = False

    @classmethod
    def from_float(cls, linear: nn.Linear, float_weights: Tuple[torch.Tensor, ...] = ()) -> "Int8Linear":
        return cls(linear.weight, linear.bias, float_weights)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weights=int{WEIGHT_QUANT_RANGE}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] == 0:
            return x.new_zeros(*x.shape[:-1], self.out_features)
        # Per-channel range (two column reductions: much faster than aminmax(dim=0) on the CPU).
        low, high = flat.amin(dim=0), flat.amax(dim=0)
        outliers = None
        if self.outlier_ratio > 0:
            peaks = torch.maximum(high, low.neg())
            found = torch.nonzero(peaks > self.outlier_ratio * peaks.median()).squeeze(1)
            # None, or too many to be outliers (a mostly-zero input): the plain int8 product.
            if 0 < found.numel() <= flat.shape[1] * MAX_OUTLIER_SHARE:
                outliers = found
                low, high = low.index_fill(0, outliers, 0.0), high.index_fill(0, outliers, 0.0)
        if self.per_token:
            out = self._per_token_product(flat, outliers)
        else:
            out = self._per_call_product(flat, low, high, outliers)
        if outliers is not None:
            columns = [block.index_select(1, outliers) for block in self.float_weights]
            columns = columns[0] if len(columns) == 1 else torch.cat(columns)
            out.addmm_(flat.index_select(1, outliers).float(), columns.float().t())
        return out.to(x.dtype).view(*x.shape[:-1], self.out_features)

    def _per_call_product(self, flat, low, high, outliers):
        """The int8 product with one activation scale and zero point for the whole call."""
        scale, zero_point = activation_qparams(float(low.min()), float(high.max()))
        # round(x / scale) + zero_point, clamped to 0..255 (outlier channels are zeroed below):
        # one fused pass (+ zero_point + 0.5, then truncation: rounding half up), a clamp, a cast.
        offset = torch.tensor(zero_point + 0.5, dtype=flat.dtype)
        ints = torch.add(offset, flat, alpha=1.0 / scale).clamp_(0.0, 255.0).to(torch.uint8)
        if outliers is not None:
            ints.index_fill_(1, outliers, zero_point)
        return torch.ops.onednn.qlinear_pointwise(
            ints, scale, zero_point, self.packed_weight, self.weight_scales, self.weight_zero_points,
            self.bias, 1.0, 0, torch.float32, "none", [], "",
        )

    def _per_token_product(self, flat, outliers):
        """The int8 product with one activation scale and zero point per row (token).

        The kernel gets the rows' integers with zero point 0 and scale 1; the rows' zero points
        come off afterwards through the weights' column sums, and the rows' scales multiply in.
        """
        if outliers is not None:
            flat = flat.index_fill(1, outliers, 0.0)
        low = flat.amin(dim=1).clamp_(max=0.0)
        high = flat.amax(dim=1).clamp_(min=0.0)
        scale = (high - low).div_(255.0).clamp_(min=torch.finfo(torch.float32).tiny)
        zero_point = torch.round(low.neg() / scale).clamp_(0.0, 255.0)
        ints = torch.addcmul((zero_point + 0.5)[:, None], flat, scale.reciprocal()[:, None]).clamp_(0.0, 255.0).to(torch.uint8)
        out = torch.ops.onednn.qlinear_pointwise(
            ints, 1.0, 0, self.packed_weight, self.weight_scales, self.weight_zero_points,
            None, 1.0, 0, torch.float32, "none", [], "",
        )
        out = torch.addr(out, zero_point, self.weight_sums, alpha=-1.0).mul_(scale[:, None])
        return out if self.bias is None else out.add_(self.bias)


def activation_qparams(low: float, high: float) -> Tuple[float, int]:
    """uint8 scale and zero point covering ``[low, high]`` (widened to include 0, so zeros and
    padding are exact): asymmetric, so a one-sided input such as GELU's output keeps all 8 bits."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0.0 or not math.isfinite(high - low):
        return 1.0, _ZERO_POINT
    scale = (high - low) / 255.0
    return scale, int(min(255, max(0, round(-low / scale))))


def quantize_linears(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``nn.Linear`` layers are :class:`Int8Linear` (but the heads'
    output layers, :data:`.linear_views.KEEP_FLOAT`), sharing every other module.

    The copy costs about a quarter of the Linear weights (see :func:`.linear_views.replace_linears`).
    """
    if not int8_kernels_available():
        raise RuntimeError(
            "precision='int8' needs oneDNN's int8 kernels (torch.ops.onednn.qlinear_pointwise), which this "
            f"PyTorch build ({torch.__version__}) lacks; use precision='float32' or an x86 build of PyTorch."
        )

    def side_by_side(layers: Sequence[nn.Linear]) -> nn.Module:
        """One quantized layer computing the float ``layers``' outputs side by side."""
        return Int8Linear(*stacked_weights(layers), tuple(layer.weight for layer in layers))

    return replace_linears(module, Int8Linear.from_float, side_by_side)
