"""The pipeline ``annotate`` runs: a saved spaCy pipeline (folder or installed package) with any
of our pipes, or a LUKE checkpoint (folder or hub id), which gets a sentencizer and luke_ner."""
from __future__ import annotations

from pathlib import Path


def pipeline_kind(name: str) -> str:
    """"spacy" (a saved pipeline folder or an installed package) or "luke" (a LUKE checkpoint)."""
    path = Path(name)
    if (path / "config.cfg").is_file():
        return "spacy"
    if (path / "config.json").is_file():
        return "luke"
    if path.exists():
        raise ValueError(f"{name}: neither a saved spaCy pipeline (config.cfg) nor a LUKE checkpoint (config.json)")
    from spacy.util import is_package

    return "spacy" if is_package(name) else "luke"  # else a hub id


def load_pipeline(name: str, *, lang: str = "en"):
    """The pipeline called ``name`` (see the module docstring)."""
    import spacy

    if pipeline_kind(name) == "spacy":
        return spacy.load(name)
    nlp = spacy.blank(lang)
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": name})
    return nlp

