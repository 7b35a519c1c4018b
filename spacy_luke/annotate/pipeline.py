"""The one pipeline loader of the commands (``annotate``, ``ner``) and the Ray actors: a saved spaCy
pipeline (folder or installed package) with any of our pipes, or a LUKE checkpoint (folder or hub
id, an encoder folder converted first), which gets a sentencizer (or a spaCy model's tokens and
sentences) and luke_ner. What a name is: :func:`spacy_luke.sources.names.what_is`."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from ..sources.names import CHECKPOINTS, HUB_ID, MISSING, PACKAGE, SAVED_PIPELINE, Source, what_is


def pipeline_kind(name: str) -> str:
    """"spacy" (a saved pipeline folder or an installed package) or "luke" (a LUKE checkpoint)."""
    return _kind(what_is(name))


def _kind(source: Source) -> str:
    if source.kind in (SAVED_PIPELINE, PACKAGE):
        return "spacy"
    if source.kind in CHECKPOINTS + (HUB_ID, MISSING):  # a name not found anywhere: its loader says so
        return "luke"
    raise ValueError(f"{source.name}: neither a saved spaCy pipeline (config.cfg) nor a LUKE checkpoint (config.json)")


def load_pipeline(
    name: str, *, lang: str = "en", spacy_model: Optional[str] = None, ner_settings: Optional[Mapping[str, Any]] = None
):
    """The pipeline called ``name`` (see the module docstring).

    For a LUKE checkpoint: ``spacy_model`` (loaded without its own ner) gives the tokens and
    sentences, else a blank ``lang`` pipeline and a sentencizer; ``ner_settings`` go to luke_ner
    (those that are None are left at its defaults). Its weights load at first use.
    """
    import spacy

    source = what_is(name)
    if _kind(source) == "spacy":
        return spacy.load(source.path or name)
    if spacy_model:
        nlp = spacy.load(spacy_model, exclude=["ner"])
    else:
        nlp = spacy.blank(lang)
        nlp.add_pipe("sentencizer")
    settings = {k: v for k, v in (ner_settings or {}).items() if v is not None}
    nlp.add_pipe("luke_ner", config={"pretrained": name, **settings})
    return nlp
