"""The registered architectures for spacy-transformers' stock ``transformer`` pipe.

Importing this module needs neither spacy-transformers nor torch (spaCy may load every entry
point of the architectures registry); building an architecture does, and says how to get it.
"""
from __future__ import annotations

import copy
from typing import Callable, Optional

from spacy.util import registry
from thinc.api import Model

LUKE_TRANSFORMER = "spacy-luke.LukeTransformerModel.v1"
LUKE_TOK2VEC_TRANSFORMER = "spacy-luke.LukeTok2VecTransformer.v1"


def require_spacy_transformers() -> None:
    try:
        import spacy_transformers  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"{LUKE_TRANSFORMER} runs inside spacy-transformers' `transformer` pipe, which is not installed: "
            'pip install "spacy-luke[transformers]" (spacy-transformers needs transformers < 4.53.3).'
        ) from err


@registry.architectures(LUKE_TRANSFORMER)
def luke_transformer_model(
    pretrained: Optional[str] = None,
    get_spans: Optional[Callable] = None,
    entities: str = "none",
    entity_spans_key: Optional[str] = None,
    max_entities: int = 64,
    revision: Optional[str] = None,
    lite: Optional[bool] = None,
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
) -> Model:
    """Our LUKE encoder as the model of spacy-transformers' `transformer` pipe: doc._.trf_data is a
    spacy-transformers TransformerData (last_hidden_state = LUKE's word states), so
    spacy-transformers.TransformerListener.v1 works unchanged and `spacy train` fine-tunes the encoder.

    pretrained (Optional[str]): hub id or local folder of a LUKE / mLUKE checkpoint (a BERT / RoBERTa / XLM-R folder is converted to LUKE); read only when the pipe initializes, never by spacy.load.
    get_spans (Optional[Callable]): a spacy-transformers span getter (spacy-transformers.strided_spans.v1, sent_spans.v1, doc_spans.v1); default: strided windows of 128 tokens every 96.
    entities (str): "none", or add the entity spans inside each window to the encoder input: "mask" ([MASK] entities) or "kb_ids" (the Wikipedia entity named by span.kb_id_ where the entity vocabulary has it, else [MASK]).
    entity_spans_key (Optional[str]): take the entity spans from doc.spans[key] instead of doc.ents.
    max_entities (int): entity inputs per window at most.
    revision (Optional[str]): a hub branch, tag or commit of `pretrained`.
    lite (Optional[bool]): keep only the special entities of the entity table; default: true unless entities = "kb_ids".
    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """
    require_spacy_transformers()
    from .layer import build_luke_transformer

    return build_luke_transformer(
        pretrained=pretrained,
        get_spans=get_spans,
        entities=entities,
        entity_spans_key=entity_spans_key,
        max_entities=max_entities,
        revision=revision,
        lite=lite,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
        replace_listener_cfg=replace_listener_cfg,
    )


@registry.architectures(LUKE_TOK2VEC_TRANSFORMER)
def luke_tok2vec_transformer(model: Model, pooling: Model, grad_factor: float = 1.0) -> Model:
    """A component's own copy of the LUKE transformer, pooled to one vector per token: what
    nlp.replace_listeners puts in place of a TransformerListener listening to a LUKE `transformer` pipe.

    model (Model): the LUKE transformer (spacy-luke.LukeTransformerModel.v1).
    pooling (Model): reduces the word-piece vectors of a token to one (e.g. reduce_mean.v1).
    grad_factor (float): scales the gradients that reach the encoder (0: frozen).
    """
    require_spacy_transformers()
    from spacy_transformers.layers import split_trf_batch, trfs2arrays
    from thinc.api import chain

    # A chain of a chain, as nlp.replace_listeners builds it (so saved weights line up).
    return chain(chain(model, split_trf_batch()), trfs2arrays(pooling, grad_factor))


def replace_listener_cfg(tok2vec_model_cfg: dict, listener_model_cfg: dict) -> dict:
    """The config of what replaces a listener (``nlp.replace_listeners``): a LukeTok2VecTransformer
    around a copy of the transformer's model config, with the listener's pooling."""
    if "TransformerListener" not in str(listener_model_cfg.get("@architectures", "")):
        return copy.deepcopy(dict(tok2vec_model_cfg))
    result = {"@architectures": LUKE_TOK2VEC_TRANSFORMER, "model": copy.deepcopy(dict(tok2vec_model_cfg))}
    result["pooling"] = copy.deepcopy(listener_model_cfg["pooling"])
    result["grad_factor"] = listener_model_cfg.get("grad_factor", 1.0)
    return result
