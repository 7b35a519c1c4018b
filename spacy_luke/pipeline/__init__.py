"""spaCy factories and pipes (no torch import here: weights load when a pipe initializes)."""
from .candidates import make_ents_candidates, make_sentence_spans_candidates, make_span_group_candidates
from .loaders import LukeCheckpoint, hf_luke_loader
from .ner import LukeNER, make_luke_ner, make_ner_scorer

__all__ = [
    "LukeCheckpoint",
    "LukeNER",
    "hf_luke_loader",
    "make_ents_candidates",
    "make_luke_ner",
    "make_ner_scorer",
    "make_sentence_spans_candidates",
    "make_span_group_candidates",
]
