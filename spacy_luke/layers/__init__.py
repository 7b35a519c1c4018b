"""Thinc glue between spaCy pipes and the LUKE torch modules: the registered architectures
(:mod:`.architectures`), the shim that owns the weights and tokenizer (:mod:`.luke_shim`)."""
from .architectures import (
    LukeBatch,
    LukeHeadModel,
    entity_classifier,
    entity_disambiguator,
    entity_encoder,
    entity_pair_classifier,
    entity_span_classifier,
    get_pieces,
    get_torch_module,
    has_torch_module,
    is_loaded,
    load_luke_folder,
    save_luke_folder,
    set_precision,
    set_torch_module,
)
from .luke_shim import LukePieces, LukeShim

__all__ = [
    "LukeBatch",
    "LukeHeadModel",
    "LukePieces",
    "LukeShim",
    "entity_classifier",
    "entity_disambiguator",
    "entity_encoder",
    "entity_pair_classifier",
    "entity_span_classifier",
    "get_pieces",
    "get_torch_module",
    "has_torch_module",
    "is_loaded",
    "load_luke_folder",
    "save_luke_folder",
    "set_precision",
    "set_torch_module",
]
