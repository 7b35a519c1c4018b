"""spaCy factories and pipes (no torch import here: weights load when a pipe initializes).

One module per pipe (``ner``, ``entity_typer``, ``relation_extractor``, ``entity_vectors``,
``entity_linker``, ``textcat``); what they share in ``_shared/`` (the pipe base, the items pipe,
the classifier base, suggesters, losses, extensions, the checkpoint loader); each pipe's own
internals beside it (``_ner/``: the span pruner's settings and training; ``_linker/``: entity
candidates, decoding, the KB, alias files; ``_relations/``: the relation records).
"""
from ._shared.suggesters import make_ents_candidates, make_sentence_spans_candidates, make_span_group_candidates
from ._shared.corpus import make_jsonl_corpus
from ._shared.loaders import hf_luke_loader
from ..layers.skipped import LukeSkippedSpanWarning
from .ner import LukeNER, make_luke_ner, make_ner_scorer
from .entity_typer import LukeEntityTyper, make_entity_typer_scorer, make_luke_entity_typer
from .entity_vectors import LukeEntityVectors, make_luke_entity_vectors
from .entity_linker import LukeEntityLinker, make_entity_linker_scorer, make_luke_entity_linker
from .relation_extractor import LukeRelationExtractor, make_luke_relation_extractor, make_relation_scorer
from ._relations.records import get_relations
from .textcat import LukeTextCategorizer, make_luke_textcat, make_textcat_scorer

__all__ = [
    "LukeCheckpoint",
    "LukeSkippedSpanWarning",
    "LukeEntityLinker",
    "LukeEntityTyper",
    "LukeEntityVectors",
    "LukeNER",
    "LukeRelationExtractor",
    "LukeTextCategorizer",
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
    "make_luke_textcat",
    "make_textcat_scorer",
]


def __getattr__(name: str):
    if name == "LukeCheckpoint":  # lazily: importing the pipes loads no conversion code
        from ..convert.checkpoints import LukeCheckpoint

        return LukeCheckpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
