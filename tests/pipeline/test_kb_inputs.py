"""LUKE's knowledge-enhanced input in the typer and the relation extractor (``use_kb_ids``): a span
whose kb_id_ is a vocabulary title goes in as that Wikipedia entity, as transformers' model does
given that entity id; other spans stay [MASK] / [MASK2]."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import Span


TEXT = "Tokyo is the capital of Japan and Houston is in Texas ."


def make_doc(nlp, kb_ids=("Tokyo", "Japan", "Not a title", "")):
    doc = nlp.make_doc(TEXT)
    doc.ents = [Span(doc, s, e, label="LOC", kb_id=kb) for (s, e), kb in zip([(0, 1), (5, 6), (7, 8), (10, 11)], kb_ids)]
    return doc


def entity_id(folder, title):
    return transformers.LukeTokenizer.from_pretrained(folder).entity_vocab[title]


def test_typer_feeds_linked_spans_as_their_entities(typer_checkpoint):
    nlp = spacy.blank("en")
    typer = nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint), "use_kb_ids": True})
    doc = make_doc(nlp)
    scores = typer.predict([doc])[0]
    tokenizer = transformers.LukeTokenizer.from_pretrained(typer_checkpoint, task="entity_classification")
    model = transformers.LukeForEntityClassification.from_pretrained(typer_checkpoint).eval()
    for i, ent in enumerate(doc.ents):
        inputs = tokenizer(doc.text, entity_spans=[(ent.start_char, ent.end_char)], return_tensors="pt")
        if ent.kb_id_ in ("Tokyo", "Japan"):
            inputs["entity_ids"][0, 0] = entity_id(typer_checkpoint, ent.kb_id_)
        with torch.no_grad():
            want = model(**inputs).logits[0].numpy()
        np.testing.assert_allclose(scores.values[i], want, atol=1e-4)
    # and the entity input matters: without use_kb_ids, Tokyo's logits differ
    plain = spacy.blank("en").add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    assert np.abs(plain.predict([make_doc(nlp)])[0].values[0] - scores.values[0]).max() > 1e-3
    np.testing.assert_allclose(plain.predict([make_doc(nlp)])[0].values[3], scores.values[3], atol=1e-5)


def test_relation_extractor_feeds_linked_heads_and_tails(relation_checkpoint):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "use_kb_ids": True})
    doc = make_doc(nlp, ("Tokyo", "Japan", "", ""))
    doc.ents = list(doc.ents[:2])
    scores = pipe.predict([doc])[0]
    tokenizer = transformers.LukeTokenizer.from_pretrained(relation_checkpoint, task="entity_pair_classification")
    model = transformers.LukeForEntityPairClassification.from_pretrained(relation_checkpoint).eval()
    kb = {(e.start, e.end): e.kb_id_ for e in doc.ents}
    assert len(scores.items) == 2
    for k, item in enumerate(scores.items):
        (hs, he), (ts, te) = np.asarray(item).reshape(2, 2).tolist()
        head, tail = Span(doc, hs, he, kb_id=kb[(hs, he)]), Span(doc, ts, te, kb_id=kb[(ts, te)])
        spans = [(head.start_char, head.end_char), (tail.start_char, tail.end_char)]
        inputs = tokenizer(doc.text, entity_spans=spans, return_tensors="pt")
        inputs["entity_ids"][0, 0] = entity_id(relation_checkpoint, head.kb_id_)
        inputs["entity_ids"][0, 1] = entity_id(relation_checkpoint, tail.kb_id_)
        with torch.no_grad():
            want = model(**inputs).logits[0].numpy()
        np.testing.assert_allclose(scores.values[k], want, atol=1e-4)


@pytest.mark.parametrize("factory", ["luke_entity_typer", "luke_relation_extractor", "luke_entity_vectors"])
def test_kb_inputs_need_the_full_entity_table(factory):
    with pytest.raises(ValueError, match="lite = false"):
        spacy.blank("en").add_pipe(factory, config={"use_kb_ids": True, "lite": True})
    pipe = spacy.blank("en").add_pipe(factory, config={"use_kb_ids": True})
    assert pipe.cfg["lite"] is False
    assert spacy.blank("en").add_pipe(factory).cfg["lite"] is True
