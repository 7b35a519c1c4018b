"""The traced graph of a LUKE head and its description: what :mod:`.onnx` writes and :mod:`.ort_runner` runs.

Only the model is needed here (no spaCy, no tokenizer): :func:`export_graph` traces a loaded
head, :func:`check_parity` runs ONNX Runtime against it, :func:`quantize_int8` makes the int8
graph, and :func:`spec_record` / :func:`read_spec` write and read ``onnx_export.json``. See
:mod:`.onnx` for what the graph takes and returns.
"""
from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..model.attention_options import attention_options
from ..model.mode import call_mode
from . import DEFAULT_OPSET, HEAD_ALIASES, MIN_OPSET

FORMAT = "spacy-luke-onnx"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
SPEC_FILE = "onnx_export.json"
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-5

#: The inputs of the classification and encoder heads, and each input's axes.
INPUT_AXES: Dict[str, Tuple[str, ...]] = {
    "input_ids": ("batch", "words"),
    "attention_mask": ("batch", "words"),
    "entity_ids": ("batch", "entities"),
    "entity_attention_mask": ("batch", "entities"),
    "entity_position_ids": ("batch", "entities", "mention"),
    "entity_start_positions": ("batch", "entities"),
    "entity_end_positions": ("batch", "entities"),
}
WORD_INPUTS = ("input_ids", "attention_mask")
BASE_INPUTS = WORD_INPUTS + ("entity_ids", "entity_attention_mask", "entity_position_ids")
SPAN_INPUTS = BASE_INPUTS + ("entity_start_positions", "entity_end_positions")


class OnnxExportError(ValueError):
    """An export that cannot be made or does not match the torch model; the message says why."""


@dataclass(frozen=True)
class HeadSpec:
    """What one exportable head takes and returns.

    output_axes: the output's axes, named when dynamic, None for a fixed one (labels, hidden).
    min_entities: entity slots a row needs (the head reads entities 0 and 1 of a pair).
    """

    head: str
    pipe: str
    output: str
    inputs: Tuple[str, ...]
    output_axes: Tuple[Optional[str], ...]
    min_entities: int = 1


HEADS: Dict[str, HeadSpec] = {
    spec.head: spec
    for spec in (
        HeadSpec("LukeForEntitySpanClassification", "luke_ner", "logits", SPAN_INPUTS, ("batch", "entities", None)),
        HeadSpec("LukeForEntityClassification", "luke_entity_typer", "logits", BASE_INPUTS, ("batch", None)),
        HeadSpec("LukeForEntityPairClassification", "luke_relation_extractor", "logits", BASE_INPUTS, ("batch", None), 2),
        HeadSpec("LukeModel", "luke_entity_vectors", "entity_last_hidden_state", BASE_INPUTS, ("batch", "entities", None)),
        HeadSpec("LukeForSequenceClassification", "luke_textcat", "logits", WORD_INPUTS, ("batch", None), 0),
    )
}


def head_spec(head: str) -> HeadSpec:
    """The spec of ``head`` (a class name of :data:`HEADS` or a short name of :data:`HEAD_ALIASES`)."""
    spec = HEADS.get(HEAD_ALIASES.get(head, head))
    if spec is None:
        choices = ", ".join(list(HEAD_ALIASES) + list(HEADS))
        raise OnnxExportError(f"head={head!r} cannot be exported to ONNX; choose one of {choices}.")
    return spec


# ------------------------------------------------------------------------------------------ tracing


class HeadForExport(nn.Module):
    """``model`` called with the pipes' padded inputs, positionally, returning the one output they read."""

    def __init__(self, model: nn.Module, spec: HeadSpec):
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(**dict(zip(self.spec.inputs, inputs))), self.spec.output)


@contextmanager
def padded_inference() -> Iterator[None]:
    """The calls inside run the traceable path: padded attention, no fused Q/K/V copy, inference mode."""
    with attention_options(unpad=False, fused_qkv=False), call_mode(False), torch.no_grad():
        yield


def sample_inputs(
    spec: HeadSpec, config, *, batch: int = 2, words: int = 16, entities: int = 3, mention: int = 4, seed: int = 0
) -> Dict[str, np.ndarray]:
    """A padded batch as the pipes build it (int64): rows of different lengths, padded entity slots
    (all positions -1) on the last row, mentions of 1 to ``mention`` pieces."""
    rng = np.random.default_rng(seed)
    entities = max(entities, spec.min_entities)
    input_ids = np.full((batch, words), config.pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((batch, words), dtype=np.int64)
    entity_ids = np.zeros((batch, entities), dtype=np.int64)
    entity_attention_mask = np.zeros((batch, entities), dtype=np.int64)
    positions = np.full((batch, entities, mention), -1, dtype=np.int64)
    starts = np.zeros((batch, entities), dtype=np.int64)
    ends = np.zeros((batch, entities), dtype=np.int64)
    for row in range(batch):
        used = min(words, max(4, words - 3 * row))
        input_ids[row, :used] = rng.integers(3, config.vocab_size, used)
        input_ids[row, 0], input_ids[row, used - 1] = config.bos_token_id, config.eos_token_id
        attention_mask[row, :used] = 1
        real = entities if row < batch - 1 or entities == spec.min_entities else entities - 1
        for slot in range(real):
            start = int(rng.integers(1, used - 1))
            width = int(rng.integers(1, min(mention, used - 1 - start) + 1))
            positions[row, slot, :width] = np.arange(start, start + width)
            starts[row, slot], ends[row, slot] = start, start + width - 1
            entity_ids[row, slot] = rng.integers(0, config.entity_vocab_size)
            entity_attention_mask[row, slot] = 1
    arrays = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "entity_ids": entity_ids,
        "entity_attention_mask": entity_attention_mask,
        "entity_position_ids": positions,
        "entity_start_positions": starts,
        "entity_end_positions": ends,
    }
    return {name: arrays[name] for name in spec.inputs}


def torch_outputs(module: HeadForExport, inputs: Dict[str, np.ndarray]) -> np.ndarray:
    """``module``'s output on ``inputs`` in the traced (padded) path, as float32 numpy."""
    device = next(module.parameters()).device
    with padded_inference():
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name])).to(device) for name in module.spec.inputs]
        return module(*tensors).float().cpu().numpy()


#: From this opset on, Scatter ops can sum (``reduction="add"``): entity mention means export as
#: dense ops (:func:`_mention_means_symbolic`) instead of torch's default ``Loop`` over the entities.
DENSE_MEANS_OPSET = 16


def _mention_means_symbolic(g, weight, indices, offsets, scale_grad_by_freq, mode, sparse, per_sample_weights, include_last_offset, padding_idx):
    """ONNX for ``F.embedding_bag(indices, weight, offsets, mode="mean")`` without a loop.

    The entity embeddings average the position embeddings of each mention's pieces with one
    ``embedding_bag`` (:func:`spacy_luke.model.embeddings.mean_position_embeddings`). torch's own
    translation is an ONNX ``Loop`` with one iteration per entity slot, which on ONNX Runtime took
    more time than the rest of a small model. Here: the rows of all pieces (Gather), each piece's
    bag (a ScatterElements of the offsets, CumSum), the sums per bag (ScatterND, add), divided
    by the pieces per bag (at least 1: an empty bag stays zeros, as in torch).
    """
    from torch.onnx import symbolic_helper as helper

    if (
        helper._maybe_get_const(mode, "i") != 1
        or not helper._is_none(per_sample_weights)
        or helper._maybe_get_const(include_last_offset, "b")
        or not (helper._is_none(padding_idx) or helper._maybe_get_const(padding_idx, "i") in (None, -1))
    ):
        return helper._onnx_unsupported("embedding_bag other than mode='mean' without weights (spacy-luke's export)")

    def const(values, dtype=torch.long):
        return g.op("Constant", value_t=torch.tensor(values, dtype=dtype))

    rows = g.op("Gather", weight, indices, axis_i=0)  # (pieces, width)
    n_pieces = g.op("Shape", indices)  # [pieces]
    n_bags = g.op("Shape", offsets)  # [bags]
    starts = g.op("ConstantOfShape", g.op("Add", n_pieces, const([1])), value_t=torch.tensor([0], dtype=torch.long))
    ones = g.op("ConstantOfShape", n_bags, value_t=torch.tensor([1], dtype=torch.long))
    # starts[k]: bags starting at piece k (empty bags share their successor's offset).
    starts = g.op("ScatterElements", starts, offsets, ones, axis_i=0, reduction_s="add")
    bag = g.op("Sub", g.op("CumSum", starts, const(0)), const(1))
    bag = g.op("Slice", bag, const([0]), n_pieces, const([0]))  # (pieces,): each piece's bag
    width = g.op("Gather", g.op("Shape", weight), const([1]), axis_i=0)
    zeros = g.op("ConstantOfShape", g.op("Concat", n_bags, width, axis_i=0), value_t=torch.tensor([0.0], dtype=torch.float32))
    zeros = g.op("CastLike", zeros, weight)
    sums = g.op("ScatterND", zeros, g.op("Unsqueeze", bag, const([1])), rows, reduction_s="add")
    ends = g.op("Concat", g.op("Slice", offsets, const([1]), const([2**62]), const([0])), n_pieces, axis_i=0)
    counts = g.op("Max", g.op("Sub", ends, offsets), const([1]))
    counts = g.op("CastLike", g.op("Unsqueeze", counts, const([1])), weight)
    return g.op("Div", sums, counts), None, None, None


@contextmanager
def _dense_mention_means(opset: int) -> Iterator[None]:
    """During one export: :func:`_mention_means_symbolic` for ``aten::embedding_bag`` (from opset 16;
    torch's loop before). torch's registry is global: it is restored after the export."""
    if opset < DENSE_MEANS_OPSET:
        yield
        return
    torch.onnx.register_custom_op_symbolic("aten::embedding_bag", _mention_means_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::embedding_bag", opset)


def export_graph(model: nn.Module, spec: HeadSpec, target, *, opset: int = DEFAULT_OPSET) -> Dict[str, np.ndarray]:
    """Trace ``model`` (a loaded ``spec.head``, float32) into ONNX at ``target`` (a path or a binary
    file object); returns the sample it was traced on."""
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise OnnxExportError(f"opset={opset!r}: the export needs ONNX opset {MIN_OPSET} or later (default {DEFAULT_OPSET}).")
    if type(model).__name__ != spec.head:
        raise OnnxExportError(f"The model is a {type(model).__name__}, not the {spec.head} to export.")
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise OnnxExportError(f"The model's weights are {dtype}; export the float32 model (the parity reference).")
    module = HeadForExport(model, spec).eval()
    sample = sample_inputs(spec, model.config)
    device = next(model.parameters()).device
    args = tuple(torch.from_numpy(sample[name]).to(device) for name in spec.inputs)
    dynamic_axes = {name: dict(enumerate(INPUT_AXES[name])) for name in spec.inputs}
    dynamic_axes[spec.output] = {i: axis for i, axis in enumerate(spec.output_axes) if axis is not None}
    with padded_inference(), _dense_mention_means(opset), warnings.catch_warnings():
        # The tracer warns about the model's input checks (Python branches on tensor values): they
        # check the sample and are not part of the graph, which is what is wanted.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            target,
            input_names=list(spec.inputs),
            output_names=[spec.output],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return sample


def check_parity(
    model: nn.Module, spec: HeadSpec, session, *, atol: Optional[float] = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL
) -> Dict[str, float]:
    """Largest |ONNX Runtime - torch| on the export sample and on one of other batch / word / entity /
    mention lengths (so the dynamic axes are exercised); an OnnxExportError over ``atol`` plus
    ``rtol`` times the largest |torch output| (float32 rounding grows with the outputs: random
    weights give logits near 100), None: no limit."""
    module = HeadForExport(model, spec).eval()
    samples = {
        "export sample": sample_inputs(spec, model.config),
        "other lengths": sample_inputs(spec, model.config, batch=3, words=11, entities=5, mention=6, seed=1),
    }
    diffs = {}
    for name, inputs in samples.items():
        expected = torch_outputs(module, inputs)
        got = session.run([spec.output], {key: inputs[key] for key in spec.inputs})[0]
        if got.shape != expected.shape:
            raise OnnxExportError(f"ONNX Runtime returned {spec.output} of shape {got.shape} on the {name}; torch {expected.shape}.")
        if not np.isfinite(got).all():
            raise OnnxExportError(f"ONNX Runtime returned NaN/Inf in {spec.output} on the {name} (torch: finite).")
        diffs[name] = float(np.abs(got - expected).max()) if got.size else 0.0
        tolerance = None if atol is None else atol + rtol * (float(np.abs(expected).max()) if expected.size else 0.0)
        if tolerance is not None and diffs[name] > tolerance:
            raise OnnxExportError(
                f"ONNX Runtime's {spec.output} differs from torch's by {diffs[name]:.3g} on the {name} "
                f"(tolerance {tolerance:.3g}: atol {atol:g} + rtol {rtol:g} x the largest output): "
                f"the exported graph does not compute what the {spec.head} does. Try another opset, or report it."
            )
    return diffs


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization of the float32 graph ``source`` into ``target``, as
    the torch ``int8`` view quantizes (``spacy_luke.model.views.precision``): the weight products only
    (not attention's), 7-bit weights per output channel (no int16 saturation on CPUs without
    VNNI), 8-bit activations quantized per call; the classifier stays float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep_float = [node.name for node in graph.node if "/classifier/" in node.name]
    logging.disable(logging.WARNING)  # the quantizer logs each tensor it leaves alone on the root logger
    try:
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            nodes_to_exclude=keep_float, extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.disable(logging.NOTSET)


def spec_record(spec: HeadSpec, *, opset: int, int8: bool = False) -> dict:
    """The ``onnx_export.json`` description of an exported ``spec`` (without provenance)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_files": {"float32": MODEL_FILE, **({"int8": INT8_FILE} if int8 else {})},
        "head": spec.head,
        "pipe": spec.pipe,
        "opset": opset,
        "inputs": [{"name": name, "dtype": "int64", "axes": list(INPUT_AXES[name])} for name in spec.inputs],
        "outputs": [{"name": spec.output, "dtype": "float32", "axes": list(spec.output_axes)}],
        "min_entities": spec.min_entities,
    }


def read_spec(folder: Union[str, Path]) -> dict:
    """The ``onnx_export.json`` of an exported folder (an OnnxExportError when it is not one)."""
    path = Path(folder) / SPEC_FILE
    try:
        record = json.loads(path.read_text(encoding="utf8"))
    except FileNotFoundError:
        raise OnnxExportError(f"{folder} is not an ONNX export of spacy-luke ({SPEC_FILE} is missing): run export-onnx first.") from None
    except (OSError, ValueError) as err:
        raise OnnxExportError(f"{path}: cannot read it ({err}).") from None
    if record.get("format") != FORMAT or int(record.get("format_version", 0)) > FORMAT_VERSION:
        raise OnnxExportError(f"{path} is not a {FORMAT} description of version <= {FORMAT_VERSION}.")
    return record


def input_names(record: dict) -> List[str]:
    return [entry["name"] for entry in record["inputs"]]
