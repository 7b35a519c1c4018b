"""The registered LUKE architectures: each builds a pipe's whole thinc model, Docs and items in,
per-doc scores out (:mod:`.items_model`).

Each registered name says which input layer and which head it runs: span inputs for entity span
classification (luke_ner, with its span pruner: :mod:`.span_pruner`), the encoder (entity
vectors) and entity disambiguation (the linker); marked inputs for entity (pair) classification
(the typer, the relation extractor); whole-doc inputs for sequence classification (luke_textcat).
The head layer inside (:mod:`.head_layer`) is built empty:
its shim receives the weights and tokenizer when the pipe loads them, so building a model needs
no torch.
"""
from __future__ import annotations

from typing import Callable

from spacy.util import registry

from .doc_inputs import build_doc_inputs
from .head_layer import build_luke_head_model
from .items_model import LukeItemsModel, build_items_model
from .marked_inputs import build_marked_inputs
from .span_inputs import build_span_inputs
from .span_pruner import build_span_classifier_model

_ARGUMENTS = """
    mixed_precision (bool): run the forward pass under torch autocast (CUDA only).
    grad_scaler_config (dict): settings of thinc's PyTorchGradScaler for mixed-precision training.
    """


def _architecture(registered_name: str, layer_name: str, head: str, summary: str, build: Callable, output: str = "logits"):
    """Register one architecture: ``build(name, head layer)`` over the ``spacy_luke.model`` class ``head``."""

    def make(mixed_precision: bool = False, grad_scaler_config: dict = {}) -> LukeItemsModel:
        head_layer = build_luke_head_model(
            f"{layer_name}_head", head=head, output=output, mixed_precision=mixed_precision, grad_scaler_config=grad_scaler_config
        )
        return build(layer_name, head_layer)

    make.__name__ = make.__qualname__ = layer_name.replace("luke_", "", 1)
    make.__doc__ = summary + "\n" + _ARGUMENTS
    return registry.architectures(registered_name)(make)


def _span_model(positions: bool) -> Callable:
    return lambda name, head: build_items_model(name, build_span_inputs(head, positions=positions), head)


def _doc_model(name: str, head) -> LukeItemsModel:
    return build_items_model(name, build_doc_inputs(head), head)


def _marked_model(n_markers: int) -> Callable:
    return lambda name, head: build_items_model(name, build_marked_inputs(head, n_markers=n_markers), head)


entity_span_classifier = _architecture(
    "spacy-luke.EntitySpanClassifier.v1",
    "luke_entity_span_classifier",
    "LukeForEntitySpanClassification",
    "LUKE with the entity-span classification head (NER): logits per candidate span, and its span pruner.",
    build_span_classifier_model,
)
entity_classifier = _architecture(
    "spacy-luke.EntityClassifier.v1",
    "luke_entity_classifier",
    "LukeForEntityClassification",
    "LUKE with the entity classification head (entity typing): logits of the one marked span per input.",
    _marked_model(1),
)
entity_pair_classifier = _architecture(
    "spacy-luke.EntityPairClassifier.v1",
    "luke_entity_pair_classifier",
    "LukeForEntityPairClassification",
    "LUKE with the entity pair classification head (relation extraction): logits of the marked (head, tail) pair.",
    _marked_model(2),
)
entity_encoder = _architecture(
    "spacy-luke.EntityEncoder.v1",
    "luke_entity_encoder",
    "LukeModel",
    "The LUKE encoder alone (entity vectors): the last hidden state of each entity input.",
    _span_model(positions=False),
    output="entity_last_hidden_state",
)
entity_disambiguator = _architecture(
    "spacy-luke.EntityDisambiguator.v1",
    "luke_entity_disambiguator",
    "LukeForEntityDisambiguation",
    "LUKE with its masked entity prediction head (entity linking): per mention, the logits of its candidate "
    "entities and the entity rows they score.",
    _span_model(positions=False),
    output="candidates",
)
sequence_classifier = _architecture(
    "spacy-luke.SequenceClassifier.v1",
    "luke_sequence_classifier",
    "LukeForSequenceClassification",
    "LUKE with the sequence classification head (text classification): logits of each doc (the mean of its windows').",
    _doc_model,
)
