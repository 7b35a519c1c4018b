"""The thinc layer behind ``spacy-luke.LukeTransformerModel.v1``: Docs in, a spacy-transformers
``FullTransformerBatch`` out, computed by our ``LukeModel``.

It mirrors spacy-transformers' ``TransformerModel``: spans from ``get_spans`` (strided windows,
sentences, whole docs), their word pieces and token alignment (here from our Doc encoder, see
:mod:`.inputs`), one forward pass, and a backprop callback that takes the listeners' gradients
of ``last_hidden_state`` (and of ``entity_last_hidden_state`` when given) back into the encoder.

``model_output`` (a transformers ``ModelOutput``, as spacy-transformers uses) holds
``last_hidden_state`` ``(windows, pieces, hidden)``; with entity inputs also
``entity_last_hidden_state`` ``(windows, entities, hidden)`` and ``entity_token_spans``
``(windows, entities, 2)``: the doc token ``[start, end)`` of each entity slot, ``-1`` padded.
``FullTransformerBatch.split_by_doc`` slices all three per doc into ``doc._.trf_data``.

Weights: the layer is built empty. Its ``init`` (which the ``transformer`` pipe's
``initialize`` calls) loads ``pretrained`` (a LUKE / mLUKE folder or hub id; a BERT / RoBERTa /
XLM-R folder is converted to LUKE first) unless weights are already there; ``from_bytes``
(``spacy.load``) restores them with the tokenizer files and entity vocabulary, never reading
``pretrained``.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from spacy.tokens import Doc
from spacy_transformers.data_classes import FullTransformerBatch, WordpieceBatch
from spacy_transformers.layers._util import replace_listener
from spacy_transformers.span_getters import get_strided_spans
from thinc.api import ArgsKwargs, Model, NumpyOps, xp2torch
from thinc.types import Ragged

from .inputs import ENTITY_MODES, WindowEncoder
from .shim import LukeEncoderShim

LAYER_NAME = "luke-transformer"


def build_luke_transformer(
    *,
    pretrained: Optional[str],
    get_spans: Optional[Callable],
    entities: str = "none",
    entity_spans_key: Optional[str] = None,
    max_entities: int = 64,
    revision: Optional[str] = None,
    lite: Optional[bool] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
    replace_listener_cfg: Optional[Callable] = None,
) -> Model:
    if entities not in ENTITY_MODES:
        raise ValueError(f"entities={entities!r}: choose one of {ENTITY_MODES}.")
    if entities == "kb_ids" and lite:
        raise ValueError(
            "entities = \"kb_ids\" needs the full entity vocabulary, but lite = true keeps only the special "
            "entities: set lite = false (or leave it unset)."
        )
    if max_entities < 1:
        raise ValueError(f"max_entities={max_entities}: at least 1.")
    if get_spans is None:
        get_spans = _default_spans
    shim = LukeEncoderShim(mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config)
    attrs = {
        "get_spans": get_spans,
        "pretrained": pretrained,
        "revision": revision,
        "lite": (entities != "kb_ids") if lite is None else bool(lite),
        "entities": entities,
        "entity_spans_key": entity_spans_key,
        "max_entities": max_entities,
        "replace_listener": replace_listener,
    }
    if replace_listener_cfg is not None:
        attrs["replace_listener_cfg"] = replace_listener_cfg
    return Model(LAYER_NAME, forward, init=init, shims=[shim], dims={"nO": None}, attrs=attrs)


def _default_spans(docs):
    """spacy-transformers' default: windows of 128 tokens every 96."""
    return get_strided_spans(docs, window=128, stride=96)


def luke_shim(model: Model) -> LukeEncoderShim:
    return model.shims[0]


def init(model: Model, X=None, Y=None) -> None:
    shim = luke_shim(model)
    if not shim.is_loaded:
        pretrained = model.attrs["pretrained"]
        if not pretrained:
            raise ValueError(
                f"The {model.name} layer has no weights and no `pretrained` checkpoint to load them from: set "
                "`pretrained` in [components.transformer.model] (a LUKE / mLUKE / BERT / RoBERTa / XLM-R folder or hub id)."
            )
        from ..convert.checkpoints import LukeCheckpoint

        folder = LukeCheckpoint(str(pretrained), revision=model.attrs["revision"], lite=model.attrs["lite"]).resolve()
        shim.load_folder(folder, lite=model.attrs["lite"])
    model.set_dim("nO", shim.head_model.config.hidden_size, force=True)


def _window_encoder(model: Model) -> WindowEncoder:
    shim = luke_shim(model)
    pieces = shim.pieces
    encoder = shim.window_encoder
    if encoder is None or encoder.tokenizer is not pieces.tokenizer:
        config = shim.head_model.config
        limit = config.max_position_embeddings - config.pad_token_id - 1
        encoder = WindowEncoder(
            pieces.tokenizer,
            pieces.doc_encoder,
            max_length=min(int(pieces.tokenizer.model_max_length), limit),
            entities=model.attrs["entities"],
            spans_key=model.attrs["entity_spans_key"],
            max_entities=model.attrs["max_entities"],
        )
        shim.window_encoder = encoder
    return encoder


def forward(model: Model, docs: List[Doc], is_train: bool):
    from transformers.file_utils import ModelOutput

    shim = luke_shim(model)
    if not shim.is_loaded:
        raise ValueError(f"The {model.name} layer has no weights yet: initialize the pipeline first (nlp.initialize()).")
    nested_spans = model.attrs["get_spans"](docs)
    encoder = _window_encoder(model)
    batch = encoder.encode(docs, nested_spans)
    flat = [span for doc_spans in nested_spans for span in doc_spans]
    wordpieces = WordpieceBatch(
        strings=encoder.piece_strings(batch.input_ids),
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask.astype("float32"),
        lengths=batch.lengths,
        token_type_ids=None,
    )
    align = Ragged(batch.align_data, batch.align_lengths)
    assert len(flat) == len(batch.lengths)
    device = shim._model.device
    kwargs = {key: xp2torch(np.ascontiguousarray(value), device=device) for key, value in batch.model_inputs().items()}
    (word_states, entity_states), torch_backprop = shim(ArgsKwargs(args=(), kwargs=kwargs), is_train)
    if isinstance(model.ops, NumpyOps) and word_states.is_cuda:  # weights on a GPU that thinc does not use
        word_states = word_states.cpu()
        entity_states = entity_states.cpu() if entity_states is not None else None
    model_output = ModelOutput(last_hidden_state=word_states)
    if entity_states is not None:
        import torch

        model_output["entity_last_hidden_state"] = entity_states
        model_output["entity_token_spans"] = torch.from_numpy(batch.entity_token_spans).to(entity_states.device)
    output = FullTransformerBatch(spans=nested_spans, wordpieces=wordpieces, model_output=model_output, align=align)

    def backprop(d_output: FullTransformerBatch) -> List[Doc]:
        grads = [g for g in d_output.model_output.values() if g is not None]
        outputs = [word_states, entity_states][: len(grads)]
        pairs = [(y, g) for y, g in zip(outputs, grads) if y is not None]
        torch_backprop(
            ArgsKwargs(
                args=tuple(y for y, _ in pairs),
                kwargs={"grad_tensors": [_as_tensor(g, y) for y, g in pairs]},
            )
        )
        return docs

    return output, backprop


def _as_tensor(grad, like):
    """A gradient (torch tensor or array) as a tensor with ``like``'s device and dtype."""
    import torch

    if not isinstance(grad, torch.Tensor):
        grad = xp2torch(grad)
    return grad.to(device=like.device, dtype=like.dtype)
