"""luke_ner after training scores only candidates up to the longest training entity (less work,
same answers: longer spans were NIL in every training example)."""
from __future__ import annotations

import spacy
from spacy.tokens import Span
from spacy.training import Example


TRAIN = [
    ("Steve Jobs founded Apple in California .", [(0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC")]),
    ("The New York Times is a company .", [(1, 4, "ORG")]),
]


def examples(nlp):
    out = []
    for text, ents in TRAIN:
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label=label) for s, e, label in ents]
        out.append(Example(nlp.make_doc(text), reference))
    return out


def lengths(pipe, text):
    spans = pipe._items([spacy.blank("en").make_doc(text)])[0]
    return int((spans[:, 1] - spans[:, 0]).max())


def test_longest_training_entity_bounds_prediction_candidates(mlm_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 8})
    text = "one two three four five six seven eight nine ten"
    assert lengths(ner, text) == 8  # before training: max_mention_length
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    assert ner.cfg["longest_entity"] == 3
    assert lengths(ner, text) == 3
    # training still sees the longer candidates (as NIL)
    spans = ner._training_items(egs)[0].spans
    assert int((spans[:, 1] - spans[:, 0]).max()) == 7  # the whole 7-token sentence
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp").get_pipe("luke_ner")
    assert loaded.cfg["longest_entity"] == 3 and lengths(loaded, text) == 3
    off = spacy.blank("en").add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 8, "skip_longer_than_trained": False})
    off.cfg["longest_entity"] = 3
    assert lengths(off, text) == 8
