"""Thinc glue between spaCy pipes and the LUKE torch modules: each pipe's model, Docs and items in,
per-doc scores out (:mod:`.items_model`), its input layers, batch runner and head layer, the
registered architectures (:mod:`.architectures`) and the shim that owns the weights and
tokenizer (:mod:`.luke_shim`)."""
from .architectures import (
    entity_classifier,
    entity_disambiguator,
    entity_encoder,
    entity_pair_classifier,
    entity_span_classifier,
    sequence_classifier,
)
from .call_plan import ItemScores, MarkedItems, Plan, SpanItems
from .head_layer import (
    LukeBatch,
    LukeHeadModel,
    build_luke_head_model,
    get_pieces,
    get_torch_module,
    has_torch_module,
    head_layer,
    is_loaded,
    load_luke_folder,
    luke_shim,
    save_luke_folder,
    set_engine,
    set_precision,
    set_torch_module,
)
from .items_model import LukeItemsModel, configure_items_model, padded_batches
from .luke_shim import LukePieces, LukeShim

__all__ = [
    "ItemScores",
    "LukeBatch",
    "LukeHeadModel",
    "LukeItemsModel",
    "LukePieces",
    "LukeShim",
    "MarkedItems",
    "Plan",
    "SpanItems",
    "build_luke_head_model",
    "configure_items_model",
    "entity_classifier",
    "entity_disambiguator",
    "entity_encoder",
    "entity_pair_classifier",
    "entity_span_classifier",
    "sequence_classifier",
    "get_pieces",
    "get_torch_module",
    "has_torch_module",
    "head_layer",
    "is_loaded",
    "load_luke_folder",
    "luke_shim",
    "padded_batches",
    "save_luke_folder",
    "set_engine",
    "set_precision",
    "set_torch_module",
]
