"""ONNX Runtime on the pipes' padded batches: an exported LUKE head as a drop-in for the thinc layer's ``predict``.

:class:`OnnxRunner` takes the dict of int64 arrays a pipe hands its thinc layer
(:data:`spacy_luke.layers.head_layer.LukeBatch`) and returns the same float32 array the
layer's ``predict`` does (logits, or entity vectors), computed by ONNX Runtime from a graph
:mod:`.graph` traced: from an export folder (:meth:`OnnxRunner.from_folder`) or from a loaded
torch head, in memory (:meth:`OnnxRunner.from_module`). It predicts only: training runs torch.

The layer runs the encoder on the real tokens only (unpadded); the graph runs the padded batch.
Real positions get the same values (to float32 rounding); padded rows and entity slots, which no
pipe reads, may differ. ``InferenceSession.run`` may be called from several threads at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from . import ONNX_PRECISIONS
from .graph import MODEL_FILE, OnnxExportError, input_names, read_spec


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("ONNX Runtime is not installed: pip install 'spacy-luke[onnx]' (onnx and onnxruntime).") from None
    return onnxruntime


def new_session(model: Union[str, Path, bytes], *, threads: Optional[int] = None, providers: Optional[Sequence[str]] = None):
    """An ``onnxruntime.InferenceSession`` of ``model`` (a .onnx path or its bytes), all graph
    optimizations on, ``threads`` intra-op threads (default: ONNX Runtime's, one per core)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the optimizer's notes on the mention-mean loop are noise
    if threads:
        options.intra_op_num_threads = int(threads)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=list(providers or ["CPUExecutionProvider"]))


class OnnxRunner:
    """An exported LUKE head run by ONNX Runtime: ``predict(padded) -> np.ndarray`` as the thinc layer's.

    record: the export's description (``onnx_export.json``: head, inputs, output).
    """

    def __init__(self, session, record: dict):
        self.session = session
        self.record = record
        self.head: str = record["head"]
        self.input_names = tuple(input_names(record))
        self.output: str = record["outputs"][0]["name"]
        self.min_entities = int(record.get("min_entities", 1))

    @classmethod
    def from_folder(
        cls,
        folder: Union[str, Path],
        *,
        precision: str = "float32",
        threads: Optional[int] = None,
        providers: Optional[Sequence[str]] = None,
    ) -> "OnnxRunner":
        """The export in ``folder`` (written by :func:`~.onnx.export_onnx`); ``precision``: its
        ``"float32"`` graph, or the ``"int8"`` one (exported with ``int8=True``)."""
        record = read_spec(folder)
        files = record.get("model_files", {"float32": MODEL_FILE})
        if precision not in files:
            have = ", ".join(files)
            raise OnnxExportError(f"{folder} holds no {precision} graph (it has: {have}); export it with int8=True (--int8) for int8.")
        path = Path(folder) / files[precision]
        if not path.is_file():
            raise OnnxExportError(f"{folder}: the ONNX graph {path.name} is missing; export again.")
        return cls(new_session(path, threads=threads, providers=providers), record)

    @classmethod
    def from_module(
        cls,
        model,
        *,
        head: Optional[str] = None,
        precision: str = "float32",
        opset: Optional[int] = None,
        threads: Optional[int] = None,
        check: bool = True,
    ) -> "OnnxRunner":
        """A loaded float32 LUKE head (``spacy_luke.model``) exported now (in a temporary folder);
        ``check``: the float32 graph against torch first (an OnnxExportError over 1e-4);
        ``precision="int8"``: then quantized (:func:`~.graph.quantize_int8`)."""
        import tempfile

        from . import DEFAULT_OPSET
        from .graph import check_parity, export_graph, head_spec, quantize_int8, spec_record

        if precision not in ONNX_PRECISIONS:
            raise ValueError(f"precision={precision!r}: ONNX Runtime runs {' or '.join(map(repr, ONNX_PRECISIONS))}.")
        quantized = ONNX_PRECISIONS[precision]
        spec = head_spec(head or type(model).__name__)
        opset = opset or DEFAULT_OPSET
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            export_graph(model, spec, str(path), opset=opset)
            if check:
                check_parity(model, spec, new_session(path, threads=threads))
            if quantized:
                quantize_int8(path, path.with_suffix(".int8.onnx"))
                path = path.with_suffix(".int8.onnx")
            session = new_session(path.read_bytes(), threads=threads)
        return cls(session, spec_record(spec, opset=opset, int8=quantized))

    def predict(self, padded: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output (float32) for one padded batch: the arrays the pipes give their thinc layer."""
        missing = [name for name in self.input_names if name not in padded]
        extra = [name for name in padded if name not in self.input_names]
        if missing or extra:
            raise ValueError(
                f"The exported {self.head} takes {list(self.input_names)}; the batch "
                + (f"lacks {missing}" if missing else "")
                + (" and " if missing and extra else "")
                + (f"has {extra}, which the graph does not take" if extra else "")
                + "."
            )
        feeds = {name: np.ascontiguousarray(padded[name], dtype=np.int64) for name in self.input_names}
        entity_ids = feeds.get("entity_ids")
        entities = entity_ids.shape[1] if entity_ids is not None and entity_ids.ndim == 2 else 0
        if entities < self.min_entities:
            raise ValueError(f"The exported {self.head} needs at least {self.min_entities} entity slot(s) per row; the batch has {entities}.")
        return self.session.run([self.output], feeds)[0]
