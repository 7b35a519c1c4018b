"""What runs a LUKE pipe's predictions: one registry of engines, :data:`ENGINES` (names: :func:`engine_names`).

A pipe's ``engine`` setting names one :class:`Engine`, which says everything that differs between
engines: the padding its batches may hold, the precision modes and heads it runs, the devices it
runs on, and what it builds from the torch head to run the predictions. Training (``update``)
always runs the torch model with autograd; the engine only changes predictions. Nothing outside
this module checks an engine's name: the pipes (:func:`check_engine`), the batch runner
(``max_padding``) and :class:`~.head_output.HeadOutput` (the module a prediction runs, cached per
engine name and weight version) read the registry. Adding an engine is adding an :class:`Engine` here.

- ``"torch"`` (default): the model in the pipe's ``precision`` (``spacy_luke.model.views.precision``),
  encoder unpadded, so padded batches cost memory, not work (``max_padding`` 1.0).
- ``"onnxruntime"``: the pipe's head exported to ONNX (:mod:`spacy_luke.export`) at the first
  prediction, checked against torch (1e-4), and run by ONNX Runtime on the CPU; ``precision``
  ``"int8"`` runs ONNX Runtime's dynamic quantization of the graph (the precisions of
  ``spacy_luke.export.ONNX_PRECISIONS``). Needs ``pip install "spacy-luke[onnx]"``. The graph is
  padded, so the pipe batches tighter (``max_padding`` 0.1). It is built again when the weights
  change (after training), like the precision views; nothing is saved with the pipe:
  ``spacy.load`` exports again at first use (about a second per layer of a base-sized model). On
  a GPU the torch model runs, with a warning. It runs the heads of
  :data:`spacy_luke.export.HEAD_ALIASES`; :func:`check_engine` gives the clear error for others.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional, Tuple

from ..export import HEAD_ALIASES, ONNX_PRECISIONS

#: ``build(head_model, output, precision)``: what predictions run, called like the torch head
#: (``module(**padded)`` has the attribute ``output``); ``precision`` is the mode the pipe asked for.
Builder = Callable[[Any, str, str], Callable[..., Any]]
DEFAULT_ENGINE = "torch"
_WARNED = set()


@dataclass(frozen=True)
class Engine:
    """One engine of predictions.

    name: what users write (``engine = "onnxruntime"``).
    max_padding: padding a batch may hold over its real slots (``bucketing.bucket_by_cost``): loose
        for an engine that skips padded slots' work, tight for one that computes them.
    build: what predictions run, built from the float torch head once per weight version
        (:data:`Builder`); None: the precision mode's torch view (``Precision.inference_module``).
    precisions: the precision modes it runs (None: all).
    heads: the head classes it runs (None: all).
    devices: the device types it runs on (None: all); elsewhere ``fallback`` runs, with a warning.
    fallback: the engine that runs on the other devices.
    """

    name: str
    max_padding: float
    build: Optional[Builder] = None
    precisions: Optional[Tuple[str, ...]] = None
    heads: Optional[Tuple[str, ...]] = None
    devices: Optional[Tuple[str, ...]] = None
    fallback: str = DEFAULT_ENGINE

    def runs_precision(self, precision: str) -> bool:
        return self.precisions is None or precision in self.precisions

    def runs_head(self, head: str) -> bool:
        return self.heads is None or head in self.heads

    def on(self, device) -> "Engine":
        """The engine that runs for a model on ``device``: this one, or (warning once) its fallback."""
        kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
        if self.devices is None or kind in self.devices:
            return self
        if (self.name, kind) not in _WARNED:
            _WARNED.add((self.name, kind))
            warnings.warn(
                f"engine={self.name!r} runs on {' or '.join(self.devices)} only; the model is on {device}, so the "
                f"{self.fallback} engine runs.",
                RuntimeWarning,
                stacklevel=3,
            )
        return get_engine(self.fallback).on(device)


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


#: The engines, in the order users see them.
ENGINES: Dict[str, Engine] = {
    engine.name: engine
    for engine in (
        # The encoder runs unpadded (spacy_luke.model.unpadded: its layers see real tokens only), so
        # padding costs it the embeddings and memory, not the layers' work: its batches may be loose.
        Engine(DEFAULT_ENGINE, max_padding=1.0),
        # ONNX Runtime's graph computes every padded slot.
        Engine(
            "onnxruntime",
            max_padding=0.1,
            build=ort_head,
            precisions=tuple(ONNX_PRECISIONS),
            heads=tuple(HEAD_ALIASES.values()),
            devices=("cpu",),
        ),
    )
}


def engine_names() -> Tuple[str, ...]:
    """The names of the registered engines, in the order users see them (for ``--engine`` choices)."""
    return tuple(ENGINES)


def get_engine(engine: str) -> Engine:
    """The registered engine named ``engine`` (a ValueError naming the choices otherwise)."""
    try:
        return ENGINES[engine]
    except (KeyError, TypeError):
        raise ValueError(f"engine={engine!r}: choose one of {', '.join(map(repr, engine_names()))}.") from None


def check_engine(pipe_name: str, engine: str, precision: str, head: Optional[str] = None) -> str:
    """``engine`` if the pipe can run it with ``precision`` and its ``head``; else a ValueError saying the fix."""
    try:
        found = get_engine(engine)
    except ValueError as err:
        raise ValueError(f"[{pipe_name}] {err}") from None
    if not found.runs_precision(precision):
        others = " or ".join(repr(e.name) for e in ENGINES.values() if e.runs_precision(precision))
        raise ValueError(
            f"[{pipe_name}] engine={engine!r} runs precision {' or '.join(map(repr, found.precisions))}, not {precision!r}: "
            f"set precision to one of those, or engine={others}."
        )
    if head is not None and not found.runs_head(head):
        others = " or ".join(repr(e.name) for e in ENGINES.values() if e.runs_head(head))
        raise ValueError(
            f"[{pipe_name}] engine={engine!r}: the {head} head cannot be exported to {engine} (it runs: "
            f"{', '.join(found.heads)}); use engine={others}."
        )
    return engine


def max_padding(engine: str) -> float:
    """The padding a batch of ``engine`` may hold over its real slots (its registry entry's)."""
    return get_engine(engine).max_padding

