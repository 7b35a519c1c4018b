"""A saved pipeline of sentencizer, luke_ner and any of the typer and the relation extractor, for the
tests that load pipelines by path (annotate, Ray, the GPU checks)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import spacy

from support.ner import MAX_LEN


def save_luke_pipeline(folder: Path, ner: Path, typer: Optional[Path] = None, relations: Optional[Path] = None) -> str:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner), "max_mention_length": MAX_LEN})
    if typer is not None:
        nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer)})
    if relations is not None:
        nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relations)})
    nlp.to_disk(folder)
    return str(folder)
