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

Scheme:

- weights: symmetric, one scale per output channel, 7 bits (:data:`WEIGHT_QUANT_RANGE`);
- activations: 8 bits, one scale and zero point per token (row of the call's flattened input),
  covering that row's range (asymmetric ``uint8``, as oneDNN's fast kernels take: a one-sided
  input such as GELU's output keeps all 8 bits);
- outlier entries (over :data:`ROW_OUTLIER_RATIO` times the root mean square of their row's other
  entries) are taken out of the row's int8 product and multiplied in float32 (LLM.int8()'s mixed
  decomposition, entry by entry), so they do not set the row's scale.

Every decision is made per row, from that row alone, and the integer products are exact: a
token's result never depends on the other rows of the call (bit for bit, tested), so int8 adds no
batch dependence of its own. What is left is float32's: attention over groups of docs padded to
a common length sums in another order than over one doc (the last bits), and once in a while such
a value lies at a grid level's boundary and the next layer quantizes it one level off. On the
base shape with random weights 1 of 32 sentences got other entities in a batch of 32 than alone
(per call: 10 of 32); with attention groups of one length none did, 31 of 32 bit for bit (the
tests' toy checkpoints: all, every logit).

The older scheme, activations quantized with one scale and zero point per call and outlier
*channels* found over the whole call (:data:`OUTLIER_RATIO`), is still there
(``Int8Linear.per_token = False``) but is batch-dependent: a call's scale over a batch of docs is
set by the largest activation of any of them. Measured against it in one process (``luke_ner``,
base shape with random weights, the same 40 CoNLL-2003 test sentences alternating chunk by chunk,
one torch thread; AMD EPYC Zen 4, family 25, 2 vCPUs shared with other work, load average 3.0-3.5):
per token 80.7 words/s, per call 82.7 (2.5% slower; CPU time 2.6%); with two LayerNorm outlier
dimensions (x20, x12) put into that model, so that every row has outlier entries, 70.8 vs 76.6
(8% slower). Against float32 (random weights): 88.8% of its entities found either way on 200
sentences (99.42% / 99.43% of spans decided alike), mean logit error 0.0377 vs 0.0390 per call
on 40; with the outlier dimensions 0.0078 vs 0.0066 (their moderate entries, under
:data:`ROW_OUTLIER_RATIO`, widen their rows' grids), the argmax the same for every span in both.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..qkv import stacked_weights
from .linear_views import replace_linears

#: int8 products on CPUs without VNNI (AVX2) sum pairs of uint8 x int8 products in int16, which
#: saturates past 32,767. The activations keep all 8 bits (an asymmetric grid per row, set by
#: the data) and the weights, whose scales are per output channel, take 7 (-64..63):
#: 2 x 255 x 64 = 32,640 cannot saturate.
WEIGHT_QUANT_RANGE = (-64, 63)
#: Per token (the default): entries whose magnitude is over this many times the root mean square
#: of their row's other entries (all but the largest) are multiplied in float32 instead, so that a
#: LayerNorm outlier dimension does not set the row's scale and flatten the row's other entries to
#: a few levels. 8 standard deviations of a Gaussian row, or GELU's output: never in practice, so
#: rows without such a dimension pay one reduction. 0 switches it off.
ROW_OUTLIER_RATIO = 8.0
#: Per call (``Int8Linear.per_token = False``): input channels whose largest magnitude in a call
#: is over this many times the median channel's are multiplied in float32 instead. 0 switches it off.
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
        own tensors, not copies), read for the outlier entries (or channels, per call).
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
        self.row_outlier_ratio = ROW_OUTLIER_RATIO
        # Each output column's weight sum (dequantized), for the per-token zero points.
        self.register_buffer("weight_sums", ints.float().sum(dim=1) * scales, persistent=False)

    #: Activation scales per token (row), the default: batch-invariant (see the module's
    #: docstring). False: one scale per call (:meth:`_per_call_product`), for comparison.
    per_token = True

    @classmethod
    def from_float(cls, linear: nn.Linear, float_weights: Tuple[torch.Tensor, ...] = ()) -> "Int8Linear":
        return cls(linear.weight, linear.bias, float_weights)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weights=int{WEIGHT_QUANT_RANGE}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] == 0:
            return x.new_zeros(*x.shape[:-1], self.out_features)
        out = self._per_token_product(flat) if self.per_token else self._per_call_product(flat)
        return out.to(x.dtype).view(*x.shape[:-1], self.out_features)

    def _float_columns(self, channels: torch.Tensor) -> torch.Tensor:
        """The float weight's input ``channels``, (out, channels), for the float32 part of a product."""
        columns = [block.index_select(1, channels) for block in self.float_weights]
        return (columns[0] if len(columns) == 1 else torch.cat(columns)).float()

    def _per_call_product(self, flat: torch.Tensor) -> torch.Tensor:
        """The int8 product with one activation scale and zero point for the whole call, outlier
        channels (found over the whole call) in float32. Not batch-invariant."""
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
        scale, zero_point = activation_qparams(float(low.min()), float(high.max()))
        # round(x / scale) + zero_point, clamped to 0..255 (outlier channels are zeroed below):
        # one fused pass (+ zero_point + 0.5, then truncation: rounding half up), a clamp, a cast.
        offset = torch.tensor(zero_point + 0.5, dtype=flat.dtype)
        ints = torch.add(offset, flat, alpha=1.0 / scale).clamp_(0.0, 255.0).to(torch.uint8)
        if outliers is not None:
            ints.index_fill_(1, outliers, zero_point)
        out = torch.ops.onednn.qlinear_pointwise(
            ints, scale, zero_point, self.packed_weight, self.weight_scales, self.weight_zero_points,
            self.bias, 1.0, 0, torch.float32, "none", [], "",
        )
        if outliers is not None:
            out.addmm_(flat.index_select(1, outliers).float(), self._float_columns(outliers).t())
        return out

    def _per_token_product(self, flat: torch.Tensor) -> torch.Tensor:
        """The int8 product with one activation scale and zero point per row (token), each row's
        outlier entries in float32: every step reads the row alone.

        The kernel gets the rows' integers with zero point 0 and scale 1; the rows' zero points
        come off afterwards through the weights' column sums, and the rows' scales multiply in.
        """
        low, high = flat.amin(dim=1), flat.amax(dim=1)
        outliers = self._row_outliers(flat, low, high) if self.row_outlier_ratio > 0 else None
        if outliers is not None:  # those rows' grids cover their other entries only
            rows, kept_low, kept_high, entry_rows, channels, values = outliers
            low, high = low.index_copy(0, rows, kept_low), high.index_copy(0, rows, kept_high)
        low, high = low.clamp_(max=0.0), high.clamp_(min=0.0)
        scale = (high - low).div_(255.0).clamp_(min=torch.finfo(torch.float32).tiny)
        zero_point = torch.round(low.neg() / scale).clamp_(0.0, 255.0)
        ints = torch.addcmul((zero_point + 0.5)[:, None], flat, scale.reciprocal()[:, None]).clamp_(0.0, 255.0).to(torch.uint8)
        if outliers is not None:  # the outlier entries out of the int8 product: their rows' zero points
            ints.index_put_((entry_rows, channels), zero_point.index_select(0, entry_rows).to(torch.uint8))
        out = torch.ops.onednn.qlinear_pointwise(
            ints, 1.0, 0, self.packed_weight, self.weight_scales, self.weight_zero_points,
            None, 1.0, 0, torch.float32, "none", [], "",
        )
        out.addr_(zero_point, self.weight_sums, alpha=-1.0)
        if self.bias is None:
            out.mul_(scale[:, None])
        else:  # out * scale + bias in one pass
            torch.addcmul(self.bias, out, scale[:, None], out=out)
        if outliers is not None:
            self._add_outlier_products(out, entry_rows, channels, values)
        return out

    def _add_outlier_products(self, out, entry_rows, channels, values) -> None:
        """``out[row] += value * weight[:, channel]`` for each outlier entry, with the same float32
        operations for a row whichever rows come with it.

        A GEMM over the union of the rows' outlier channels would sum a row's products in an order
        that depends on the batch. Instead the k-th entry of every row goes in the k-th product,
        whose rows have one nonzero each: every entry of such a product is its one float32 product
        (zeros add exactly, whatever the blocking). The products are added to ``out`` in turn:
        each row gets its entries one by one, in channel order.
        """
        first = torch.searchsorted(entry_rows, entry_rows)  # entry_rows is sorted: each row's first entry
        rank = torch.arange(entry_rows.numel(), device=entry_rows.device) - first
        for k in range(int(rank.max()) + 1):
            pick = torch.nonzero(rank == k).squeeze(1)
            used, column = torch.unique(channels.index_select(0, pick), return_inverse=True)
            dense = values.new_zeros(pick.numel(), used.numel(), dtype=torch.float32)
            dense[torch.arange(pick.numel(), device=pick.device), column] = values.index_select(0, pick).float()
            out.index_add_(0, entry_rows.index_select(0, pick), dense @ self._float_columns(used).t())

    def _row_outliers(self, flat: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
        """Each row's entries over :attr:`row_outlier_ratio` times the root mean square of the
        row's other entries (all but its largest), or None where no row has one.

        Returns ``(rows, low, high, entry_rows, channels, values)``: the rows that have any (usually
        none, or all of them in a model with LayerNorm outlier dimensions), the range of those
        rows' other entries, and each outlier entry's row, channel and value (row by row, in
        channel order).
        """
        peaks = torch.maximum(high, low.neg())
        rest = torch.linalg.vector_norm(flat, dim=1).square_().sub_(peaks * peaks).clamp_(min=0.0)
        threshold = rest.div_(max(1, flat.shape[1] - 1)).sqrt_().mul_(self.row_outlier_ratio)
        rows = torch.nonzero(peaks > threshold).squeeze(1)
        if rows.numel() == 0:
            return None
        if rows.numel() < flat.shape[0]:
            flat, threshold = flat.index_select(0, rows), threshold.index_select(0, rows)
        # Only the channels where one of these rows has an entry over the lowest of their thresholds
        # (a few: a superset of their outlier channels) are looked at entry by entry.
        candidates = torch.nonzero(flat.abs().amax(dim=0) > threshold.min()).squeeze(1)
        columns = flat.index_select(1, candidates)
        mask = columns.abs() > threshold[:, None]
        local, which = torch.nonzero(mask, as_tuple=True)  # row-major: each row's entries in channel order
        values = columns[local, which]
        # The range of each row's other entries: every other channel's, and the candidates' kept ones.
        others, kept = flat.index_fill(1, candidates, 0.0), columns.masked_fill_(mask, 0.0)
        low = torch.minimum(others.amin(dim=1), kept.amin(dim=1))
        high = torch.maximum(others.amax(dim=1), kept.amax(dim=1))
        return rows, low, high, rows.index_select(0, local), candidates.index_select(0, which), values


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


def int8_view(model: nn.Module) -> nn.Module:
    """The ``"int8"`` precision's inference view of ``model`` (:func:`quantize_linears`, in eval mode)."""
    return quantize_linears(model).eval()
