"""The 16-bit precision modes' inference view: the model cast once to bfloat16 or float16.

:func:`half_view` copies the model with its weights, embeddings and activations in 16 bits, so the
matrix products and SDPA run in 16 bits; only the heads' output layers stay float32
(:data:`KEEP_FLOAT_16`: the logits decisions are made on). The copy shares no tensor with the
float model, so training (always on the float32 weights) never writes into it. PyTorch's
LayerNorm and softmax (eager and SDPA) accumulate 16-bit inputs in float32, so the copy's
LayerNorms run in 16 bits too. No autocast: nothing is cast per call.
"""
from __future__ import annotations

import copy
from typing import Dict, Sequence

import torch
from torch import nn

from .linear_views import onednn_view

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


def bfloat16_view(model: nn.Module) -> nn.Module:
    """The ``"bfloat16"`` precision's inference view."""
    return half_view(model, torch.bfloat16)


def float16_view(model: nn.Module) -> nn.Module:
    """The ``"float16"`` precision's inference view."""
    return half_view(model, torch.float16)
