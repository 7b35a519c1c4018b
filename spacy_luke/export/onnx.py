"""Export a LUKE head to ONNX: one self-contained folder that ONNX Runtime runs.

The exported graph takes the spaCy pipes' padded batches (the int64 arrays the thinc layers
receive, see :mod:`spacy_luke.layers.head_layer`) and returns the one output the pipe reads:

==================================  ============  ==========================================
head (pipe)                         output        inputs
==================================  ============  ==========================================
LukeForEntitySpanClassification     logits        (batch, entities, labels): the 5 inputs
(``luke_ner``)                                    below + entity_start/end_positions
LukeForEntityClassification         logits        (batch, labels)
(``luke_entity_typer``)
LukeForEntityPairClassification     logits        (batch, labels)
(``luke_relation_extractor``)
LukeModel (``luke_entity_vectors``) entity_last_  (batch, entities, hidden)
                                    hidden_state
LukeForSequenceClassification       logits        (batch, labels): the words only
(``luke_textcat``)
==================================  ============  ==========================================

The five inputs the entity heads take: ``input_ids``, ``attention_mask`` (batch, words),
``entity_ids``, ``entity_attention_mask`` (batch, entities), ``entity_position_ids`` (batch,
entities, mention). Every one of those axes is dynamic; there must be at least one entity per
row (two for the pair head). The sequence classifier takes the first two.

The graph is traced from our float32 model (``torch.onnx.export(dynamo=False)``: the
``torch.export`` exporter refuses the model's data-dependent input checks) with the plain padded
attention path: ``attention_options(unpad=False, fused_qkv=False)``; the unpadded path plans its
attention groups on the host and cannot be traced. Shared entity-aware queries (every public
checkpoint) are detected at export, as in inference, and exported as plain attention.

Entity mention means (one ``embedding_bag``) export as dense Scatter ops from opset 16 on
(:func:`.graph._mention_means_symbolic`): torch's own translation loops over the entity slots.

The folder (:func:`export_onnx`): ``model.onnx``, the checkpoint's ``config.json`` (labels,
shapes), its tokenizer files and ``entity_vocab.json``, and ``onnx_export.json`` naming the head,
the inputs and the output with their axes; with ``int8=True`` also ``model.int8.onnx``, ONNX
Runtime's dynamic quantization of the weight products (:func:`quantize_int8`). After the export
ONNX Runtime runs the float32 graph on the export sample and on a sample of other lengths,
against the torch model: a difference over ``atol`` (default 1e-4) plus 1e-5 times the largest
output is an :class:`OnnxExportError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .graph import (  # noqa: F401 (the names of the export, in one place)
    DEFAULT_ATOL,
    HEADS,
    INT8_FILE,
    MODEL_FILE,
    SPEC_FILE,
    HeadSpec,
    OnnxExportError,
    check_parity,
    export_graph,
    head_spec,
    quantize_int8,
    read_spec,
    sample_inputs,
    spec_record,
)
from ..sources.files import PIPE_MODEL_DIR
from ..sources.names import LUKE_PIPE_FOLDER, SAVED_PIPELINE, what_is
from . import DEFAULT_OPSET


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how close ONNX Runtime came to torch."""

    folder: Path
    head: str
    opset: int
    source: str
    max_abs_diff: Dict[str, float] = field(default_factory=dict)  # sample name -> largest |onnx - torch|
    int8_max_abs_diff: Dict[str, float] = field(default_factory=dict)  # the same for model.int8.onnx (informative)


# ------------------------------------------------------------------------------------------ sources


def _luke_pipe_folders(pipeline: Path) -> Dict[str, Path]:
    """The saved LUKE pipes of a spaCy pipeline folder: pipe name -> its ``luke/`` checkpoint folder."""
    return {d.name: d / PIPE_MODEL_DIR for d in sorted(pipeline.iterdir()) if what_is(d).kind == LUKE_PIPE_FOLDER}


def resolve_source(source: Union[str, Path], pipe: Optional[str] = None) -> Path:
    """The LUKE checkpoint folder to export: ``source`` itself (a local LUKE folder or a hub id),
    the ``luke/`` folder of a saved LUKE pipe, or that of pipe ``pipe`` of a saved spaCy pipeline."""
    from ..model.checkpoint import CheckpointError
    from ..convert.checkpoints import LukeCheckpoint

    found = what_is(source)
    path = found.path
    if found.kind == SAVED_PIPELINE:
        folders = _luke_pipe_folders(path)
        if pipe is not None:
            if pipe not in folders:
                have = ", ".join(folders) or "none"
                raise OnnxExportError(f"{path}: no saved LUKE pipe named {pipe!r} (LUKE pipes: {have}).")
            return folders[pipe]
        if len(folders) != 1:
            if not folders:
                raise OnnxExportError(f"{path} is a spaCy pipeline without saved LUKE pipes (no <pipe>/{PIPE_MODEL_DIR}/config.json).")
            raise OnnxExportError(f"{path} has several LUKE pipes ({', '.join(folders)}): name the one to export with pipe=NAME (--pipe).")
        return next(iter(folders.values()))
    if pipe is not None:
        raise OnnxExportError(f"pipe={pipe!r} names a pipe of a spaCy pipeline, but {source} is not one (no config.cfg).")
    if found.kind == LUKE_PIPE_FOLDER:
        return path / PIPE_MODEL_DIR  # one saved pipe's folder
    try:
        return LukeCheckpoint(str(source)).resolve()
    except (OSError, CheckpointError) as err:
        raise OnnxExportError(str(err)) from None


def _checkpoint_head(folder: Path) -> Optional[str]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise OnnxExportError(f"{folder / 'config.json'}: cannot read the checkpoint's config ({err}).") from None
    architectures = data.get("architectures") or []
    return str(architectures[0]) if architectures else None


def _head_for(folder: Path, head: Optional[str]) -> HeadSpec:
    """The head to export: ``head``, else the one the checkpoint's config.json names."""
    if head is not None:
        return head_spec(head)
    found = _checkpoint_head(folder)
    if found in HEADS:
        return HEADS[found]
    what = f"a {found}" if found else "no architectures entry"
    raise OnnxExportError(
        f"{folder / 'config.json'} names {what}; export-onnx exports {', '.join(HEADS)}: "
        "name the head to export (head='encoder' exports the encoder of any LUKE checkpoint)."
    )


def load_head(folder: Path, spec: HeadSpec, *, lite: bool = False) -> nn.Module:
    """``spec.head`` loaded from ``folder`` in float32 on the CPU; a head the checkpoint lacks is an error."""
    from .. import model as luke_models
    from ..model.checkpoint import CheckpointError

    try:
        model = getattr(luke_models, spec.head).from_pretrained(folder, lite=lite)
    except (OSError, CheckpointError) as err:
        raise OnnxExportError(str(err)) from None
    # The pooler is no part of any exported output (a pretraining checkpoint may lack it).
    fresh = [name for name in model.loading_info.get("newly_initialized") or [] if ".pooler." not in f".{name}"]
    if fresh:
        raise OnnxExportError(
            f"{folder} has no trained {spec.head} head ({', '.join(fresh)} not in the checkpoint): "
            "exporting random weights makes no sense. Export a fine-tuned checkpoint, or head='encoder'."
        )
    return model.eval()


# ------------------------------------------------------------------------------------------ export


def export_file_names() -> Tuple[str, ...]:
    """The names of the files an export writes (all that ``overwrite=True`` removes)."""
    from ..tokenization.doc_inputs.pieces import WORD_TOKENIZER_FILES

    return (MODEL_FILE, INT8_FILE, SPEC_FILE, "config.json", "entity_vocab.json") + WORD_TOKENIZER_FILES


def _check_output(output: Path, sources: Sequence[Path], overwrite: bool) -> List[Path]:
    """Refuse an output folder that is, holds or lies in a source folder, or that holds anything but
    an earlier export (with ``overwrite``); returns the earlier export's files to remove. Removes nothing."""
    where = output.resolve()
    for source in sources:
        source = source.resolve()
        if where == source or source in where.parents or where in source.parents:
            relation = "is" if where == source else "is inside" if source in where.parents else "contains"
            raise OnnxExportError(
                f"output folder {output} {relation} the source folder {source}: write the ONNX export to a folder "
                "outside the source."
            )
    if output.exists() and not output.is_dir():
        raise OnnxExportError(f"{output} is a file: give a folder to write the ONNX export to.")
    entries = sorted(output.iterdir()) if output.is_dir() else []
    if not entries:
        return []
    if not overwrite:
        raise FileExistsError(f"{output} is not empty: pass overwrite=True to replace its files.")
    names = export_file_names()
    if (output / SPEC_FILE).exists():
        read_spec(output)  # an OnnxExportError unless it is our own description
    elif not (output / MODEL_FILE).is_file() or any(path.name not in names for path in entries):
        # Without onnx_export.json, only an interrupted export (model.onnx and export files alone) is ours.
        raise OnnxExportError(
            f"{output} holds no earlier ONNX export ({SPEC_FILE} is missing), and overwrite=True (--overwrite) replaces only the "
            "files of one: give a new or empty folder."
        )
    ours = [path for path in entries if path.name in names]
    for path in ours:
        if path.is_dir() and not path.is_symlink():
            raise OnnxExportError(
                f"{path} is a folder, where the export writes a file: remove it, or give a new or empty output folder."
            )
    return ours


def export_onnx(
    checkpoint_or_pipeline: Union[str, Path],
    output_folder: Union[str, Path],
    *,
    head: Optional[str] = None,
    pipe: Optional[str] = None,
    opset: int = DEFAULT_OPSET,
    lite: bool = False,
    int8: bool = False,
    check: bool = True,
    atol: float = DEFAULT_ATOL,
    overwrite: bool = False,
) -> ExportReport:
    """Export a LUKE head to ``output_folder``: model.onnx, config.json, tokenizer files,
    entity_vocab.json and onnx_export.json (see the module docstring).

    checkpoint_or_pipeline: a LUKE checkpoint folder or hub id, a saved spaCy pipeline (its LUKE
        pipe; ``pipe`` names it when there are several), or one saved LUKE pipe's folder.
    head: the head to export (a class name or ``ner`` / ``typer`` / ``relation`` / ``encoder``);
        default: the one the checkpoint's config.json names.
    opset: the ONNX opset (at least 14).
    lite: keep only the special entities of the entity table ([MASK] heads: NER, typer, relations).
    int8: also write ``model.int8.onnx``, the float32 graph quantized (:func:`quantize_int8`);
        with ``check``, its difference from torch float32 is measured (not limited).
    check: run ONNX Runtime against the torch model (a difference over ``atol`` is an error).
    overwrite: replace the files of an earlier export in ``output_folder`` (it holds onnx_export.json;
        only the files an export writes are removed, others are left). An output folder that is, holds
        or lies in the source folder is an error.
    """
    from ..tokenization.doc_inputs.pieces import LukePieces

    folder = resolve_source(checkpoint_or_pipeline, pipe)
    spec = _head_for(folder, head)
    output = Path(output_folder).expanduser()
    given = Path(str(checkpoint_or_pipeline)).expanduser()
    earlier = _check_output(output, [folder] + ([given] if given.exists() else []), overwrite)
    model = load_head(folder, spec, lite=lite)
    pieces = LukePieces.from_folder(folder, lite=lite)
    for path in earlier:  # the earlier export's files only (unlinked: a link's target is left alone)
        path.unlink()
    output.mkdir(parents=True, exist_ok=True)
    model_path = output / MODEL_FILE
    export_graph(model, spec, str(model_path), opset=opset)
    pieces.save(output)
    model.config.to_json_file(output / "config.json")
    report = ExportReport(folder=output, head=spec.head, opset=opset, source=str(checkpoint_or_pipeline))
    if check:
        from .ort_runner import new_session

        report.max_abs_diff = check_parity(model, spec, new_session(model_path), atol=atol)
    if int8:
        quantize_int8(model_path, output / INT8_FILE)
        if check:
            report.int8_max_abs_diff = check_parity(model, spec, new_session(output / INT8_FILE), atol=None)
    record = spec_record(spec, opset=opset, int8=int8)
    record.update(
        source=str(checkpoint_or_pipeline),
        lite=lite,
        torch=torch.__version__,
        attention="padded (unpad=False), fused_qkv=False",
        parity={"atol": atol, "max_abs_diff": report.max_abs_diff, "int8_max_abs_diff": report.int8_max_abs_diff or None}
        if check else None,
    )
    (output / SPEC_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf8")
    return report
