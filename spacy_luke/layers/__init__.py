"""Thinc glue between spaCy pipes and the LUKE torch modules."""
from .luke_model import LukeBatch, LukeHeadModel, entity_span_classifier, get_torch_module, has_torch_module, set_torch_module

__all__ = ["LukeBatch", "LukeHeadModel", "entity_span_classifier", "get_torch_module", "has_torch_module", "set_torch_module"]
