"""luke_entity_vectors: equal to transformers' LukeModel entity_last_hidden_state; kb ids; hooks; round trips."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import DocBin, Span

from support.entity_docs import TEXTS, make_docs


def make_nlp(folder, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(folder), **config})
    return nlp


def reference_vectors(folder, docs, titles=None):
    tokenizer = transformers.LukeTokenizer.from_pretrained(folder)
    model = transformers.LukeModel.from_pretrained(folder).eval()
    out = []
    for k, doc in enumerate(docs):
        spans = [(e.start_char, e.end_char) for e in doc.ents]
        kwargs = {"entities": titles[k]} if titles else {}
        inputs = tokenizer(doc.text, entity_spans=spans, return_tensors="pt", **kwargs)
        with torch.no_grad():
            out.append(model(**inputs).entity_last_hidden_state[0].numpy())
    return out


def test_vectors_equal_transformers(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint)
    docs = make_docs(nlp, TEXTS[:20])
    expected = reference_vectors(encoder_checkpoint, docs)
    pipe = nlp.get_pipe("luke_entity_vectors")
    assert not pipe.is_loaded
    docs = [pipe(d) for d in docs]
    worst = 0.0
    for doc, ref in zip(docs, expected):
        for ent, vector in zip(doc.ents, ref):
            assert ent._.luke_vector.dtype == np.float32 and ent._.luke_vector.shape == (32,)
            worst = max(worst, float(np.abs(ent._.luke_vector - vector).max()))
    assert worst < 1e-4, worst


def test_kb_ids_use_wikipedia_entities(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, use_kb_ids=True)
    doc = nlp.make_doc("Tokyo is the capital of Japan and Houston is in Texas .")
    doc.ents = [Span(doc, 0, 1, label="LOC", kb_id="Tokyo"), Span(doc, 5, 6, label="LOC", kb_id="Japan"),
                Span(doc, 7, 8, label="LOC", kb_id="Not a title"), Span(doc, 10, 11, label="LOC")]
    nlp.get_pipe("luke_entity_vectors")(doc)
    # transformers: titles for known ids; unknown / missing kb ids are [MASK] (the contextual vector)
    expected = reference_vectors(encoder_checkpoint, [doc], titles=[["Tokyo", "Japan", "[MASK]", "[MASK]"]])[0]
    got = np.stack([e._.luke_vector for e in doc.ents])
    assert np.abs(got - expected).max() < 1e-4
    contextual = make_nlp(encoder_checkpoint)
    doc2 = contextual.make_doc(doc.text)
    doc2.ents = [Span(doc2, e.start, e.end, label="LOC") for e in doc.ents]
    contextual.get_pipe("luke_entity_vectors")(doc2)
    assert np.abs(doc2.ents[0]._.luke_vector - doc.ents[0]._.luke_vector).max() > 1e-3


def test_kb_ids_need_the_full_entity_vocab():
    with pytest.raises(ValueError, match="lite"):
        spacy.blank("en").add_pipe("luke_entity_vectors", config={"use_kb_ids": True, "lite": True})


def test_vector_hooks_and_similarity(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, set_vector_hooks=True)
    doc = make_docs(nlp, TEXTS[:1])[0]
    nlp.get_pipe("luke_entity_vectors")(doc)
    a, b = doc.ents[0], doc.ents[1]
    np.testing.assert_array_equal(a.vector, a._.luke_vector)
    expected = float(np.dot(a._.luke_vector, b._.luke_vector) / np.linalg.norm(a._.luke_vector) / np.linalg.norm(b._.luke_vector))
    assert abs(a.similarity(b) - expected) < 1e-6
    assert abs(a.similarity(a) - 1.0) < 1e-6


def test_any_checkpoint_works_and_round_trips(typer_checkpoint, tmp_path):
    nlp = make_nlp(typer_checkpoint)  # a fine-tuned checkpoint: its encoder is used, the head ignored
    docs = [nlp.get_pipe("luke_entity_vectors")(d) for d in make_docs(nlp, TEXTS[:5])]
    expected = [[e._.luke_vector for e in d.ents] for d in docs]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    got = [[e._.luke_vector for e in loaded.get_pipe("luke_entity_vectors")(d).ents] for d in make_docs(loaded, TEXTS[:5])]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.stack(g), np.stack(e), atol=1e-6)
    restored = list(DocBin(docs=docs, store_user_data=True).from_bytes(DocBin(docs=docs, store_user_data=True).to_bytes()).get_docs(nlp.vocab))
    for doc, e in zip(restored, expected):
        np.testing.assert_array_equal(np.stack([x._.luke_vector for x in doc.ents]), np.stack(e))


def test_empty_and_no_ents(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint)
    docs = list(nlp.pipe(["", "no entities here ."]))
    assert [len(d) for d in docs] == [0, 4]
    assert not nlp.get_pipe("luke_entity_vectors").is_loaded
