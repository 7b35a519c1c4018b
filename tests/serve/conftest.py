"""The serve tests' pipelines: luke_ner on the session's NER checkpoint, in memory and saved."""
from __future__ import annotations

import pytest
import spacy

from support.ner import MAX_LEN


@pytest.fixture(scope="module")
def ner_nlp(ner_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": MAX_LEN})
    return nlp


@pytest.fixture(scope="module")
def ner_pipeline(ner_nlp, tmp_path_factory) -> str:
    """``ner_nlp`` saved (what the command line and Ray load)."""
    folder = tmp_path_factory.mktemp("serve") / "ner-pipeline"
    ner_nlp.to_disk(folder)
    return str(folder)

