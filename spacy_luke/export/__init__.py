"""Exporting LUKE heads for other runtimes: ONNX folders from checkpoints and saved pipes
(:mod:`.onnx`), the traced graph of a loaded head (:mod:`.graph`, model-level only), and running
an export with ONNX Runtime on the pipes' padded batches (:mod:`.ort_runner`). Needs
``pip install 'spacy-luke[onnx]'``.

Nothing heavy is imported until used: ``import spacy_luke.export`` loads neither torch nor onnx
(the command line reads the names below to build its parser).
"""
from typing import Any

#: Short names of the exportable heads (the CLI's ``--head``) and the model class of each.
HEAD_ALIASES = {
    "ner": "LukeForEntitySpanClassification",
    "typer": "LukeForEntityClassification",
    "relation": "LukeForEntityPairClassification",
    "encoder": "LukeModel",
    "textcat": "LukeForSequenceClassification",
}
#: The precision modes an export runs (``spacy_luke.model.views.precision``), each with whether its
#: graph is the float32 one quantized by ONNX Runtime (``graph.quantize_int8``). The onnxruntime
#: engine (``spacy_luke.layers.engines``) runs these.
ONNX_PRECISIONS = {"float32": False, "int8": True}
DEFAULT_OPSET = 17  # LayerNormalization is one ONNX op from 17 on
MIN_OPSET = 14  # scaled_dot_product_attention's ONNX translation needs 14

__all__ = ["export_onnx", "ExportReport", "OnnxExportError", "OnnxRunner", "HEADS", "HEAD_ALIASES", "ONNX_PRECISIONS", "DEFAULT_OPSET", "MIN_OPSET"]

_WHERE = {"OnnxRunner": ".ort_runner"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_WHERE.get(name, ".onnx"), __name__)
    return getattr(module, name)
