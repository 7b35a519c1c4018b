"""What runs a LUKE pipe's predictions: our torch model (``"torch"``) or ONNX Runtime (``"onnxruntime"``).

A pipe's ``engine`` setting names one of :data:`ENGINES`. Training (``update``) always runs the
torch model with autograd; the engine only changes predictions.

- ``"torch"`` (default): the model in the pipe's ``precision`` (``spacy_luke.model.precision``),
  encoder unpadded, so padded batches cost memory, not work (``max_padding`` 1.0).
- ``"onnxruntime"``: the pipe's head exported to ONNX (:mod:`spacy_luke.export`) at the first
  prediction, checked against torch (1e-4), and run by ONNX Runtime on the CPU; ``precision``
  ``"int8"`` runs ONNX Runtime's dynamic quantization of the graph. Needs
  ``pip install "spacy-luke[onnx]"``. The graph is padded, so the pipe batches tighter
  (``max_padding`` 0.1). It is built again when the weights change (after training), like the
  precision views; nothing is saved with the pipe: ``spacy.load`` exports again at first use
  (about a second per layer of a base-sized model). On a GPU the torch model runs, with a warning.

The export covers the heads of :data:`spacy_luke.export.HEAD_ALIASES` (``luke_ner``,
``luke_entity_typer``, ``luke_relation_extractor``, ``luke_entity_vectors``);
:func:`check_engine` gives the clear error for anything else.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, Optional, Tuple

#: Padding a batch may hold over its real slots, per engine (see ``spacy_luke.bucketing``). The
#: torch encoder runs unpadded (``spacy_luke.model.unpadded``: its layers see real tokens only), so
#: padding costs it the embeddings and memory, not the layers' work: its batches may be loose.
#: ONNX Runtime's graph computes every padded slot.
MAX_PADDING: Dict[str, float] = {"torch": 1.0, "onnxruntime": 0.1}
ENGINES: Tuple[str, ...] = tuple(MAX_PADDING)
#: The precision modes ONNX Runtime runs (the graph each one uses).
ORT_PRECISIONS = ("float32", "int8")
_WARNED = set()


def check_engine(pipe_name: str, engine: str, precision: str, head: Optional[str] = None) -> str:
    """``engine`` if the pipe can run it with ``precision`` and its ``head``; else a ValueError saying the fix."""
    if engine not in ENGINES:
        raise ValueError(f"[{pipe_name}] engine={engine!r}: choose one of {', '.join(map(repr, ENGINES))}.")
    if engine == "onnxruntime":
        if precision not in ORT_PRECISIONS:
            raise ValueError(
                f"[{pipe_name}] engine='onnxruntime' runs precision 'float32' or 'int8', not {precision!r}: "
                "set precision to one of those, or engine='torch' for 16-bit precision."
            )
        if head is not None:
            from ..export import HEAD_ALIASES

            if head not in HEAD_ALIASES.values():
                raise ValueError(
                    f"[{pipe_name}] engine='onnxruntime': the {head} head cannot be exported to ONNX (exportable: "
                    f"{', '.join(HEAD_ALIASES.values())}); use engine='torch'."
                )
    return engine


@dataclass
class OrtHead:
    """A LUKE head exported to ONNX and run by ONNX Runtime, called like the torch head it came from.

    ``OrtHead(**padded)`` returns an object whose attribute ``output`` is the output tensor, as the
    torch head's output object has. Built by :func:`ort_head` from the float32 torch head.
    """

    runner: object
    output: str

    def __call__(self, **inputs):
        import torch

        names = self.runner.input_names
        feeds = {name: _numpy(inputs[name]) for name in names if inputs.get(name) is not None}
        return SimpleNamespace(**{self.output: torch.from_numpy(self.runner.predict(feeds))})


def _numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def ort_head(head_model, output: str, precision: str) -> OrtHead:
    """Export ``head_model`` (float32, CPU) now and open it in ONNX Runtime, ``precision``'s graph.

    The export runs the float32 graph against torch first (an ``OnnxExportError`` over 1e-4).
    ONNX Runtime gets as many threads as torch has.
    """
    import torch

    from ..export.ort_runner import OnnxRunner

    with torch.inference_mode(False), torch.no_grad():
        runner = OnnxRunner.from_module(head_model, precision=precision, threads=torch.get_num_threads())
    return OrtHead(runner, output)


def runs_here(engine: str, device) -> bool:
    """Whether ``engine`` runs for a model on ``device``: ONNX Runtime on the CPU only (warns once otherwise)."""
    if engine != "onnxruntime":
        return False
    if getattr(device, "type", str(device)) == "cpu":
        return True
    if "gpu" not in _WARNED:
        _WARNED.add("gpu")
        warnings.warn(
            f"engine='onnxruntime' runs on the CPU only; the model is on {device}, so the torch model runs.",
            RuntimeWarning,
            stacklevel=3,
        )
    return False
