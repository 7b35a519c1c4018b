"""spaCy factories and pipes (no torch import here: weights load when a pipe initializes)."""
from .candidates import make_ents_candidates, make_sentence_spans_candidates, make_span_group_candidates
from .loaders import LukeCheckpoint, hf_luke_loader
from .ner import LukeNER, make_luke_ner, make_ner_scorer
from .corpus import make_jsonl_corpus
from .entity_typer import LukeEntityTyper, make_entity_typer_scorer, make_luke_entity_typer
from .entity_vectors import LukeEntityVectors, make_luke_entity_vectors
from .entity_linker import LukeEntityLinker, make_entity_linker_scorer, make_luke_entity_linker
from .relation_extractor import LukeRelationExtractor, make_luke_relation_extractor, make_relation_scorer
from .relations import get_relations

__all__ = [
    "LukeCheckpoint",
    "LukeEntityLinker",
    "LukeEntityTyper",
    "LukeEntityVectors",
    "LukeNER",
    "LukeRelationExtractor",
    "get_relations",
    "make_entity_linker_scorer",
    "make_entity_typer_scorer",
    "make_luke_entity_linker",
    "make_jsonl_corpus",
    "make_luke_entity_typer",
    "make_luke_entity_vectors",
    "make_luke_relation_extractor",
    "make_relation_scorer",
    "hf_luke_loader",
    "make_ents_candidates",
    "make_luke_ner",
    "make_ner_scorer",
    "make_sentence_spans_candidates",
    "make_span_group_candidates",
]
