"""Hypothesis fuzz (bounded, derandomized): random docs through all four pipes.

Random words (whitespace tokens, punctuation, odd Unicode, a word longer than the window),
sentence starts, pre-existing entities (some only whitespace, some with kb_ids), blocked and
outside tokens. Asserts: no exception, entities never overlap, nothing the user set is lost,
and a batch gives the same results as the docs one by one.
"""
import warnings

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span


WORDS = ["Tokyo", "Barack", "Obama", "visited", "Paris", ".", ",", " ", "  ", "\n", "Beyoncé", "東京", "🙂", "e\u0301",
         "", "don't", "U.S.", "-", "Los", "Angeles", "x" * 700]
KINDS = ("ent", "blocked", "outside")


@pytest.fixture(scope="module")
def fuzz_nlp(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, "respect_outside": True})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "max_pairs_per_sentence": 30})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(encoder_checkpoint)})
    return nlp


@st.composite
def doc_specs(draw):
    n = draw(st.integers(0, 30))
    words = [w for w in draw(st.lists(st.sampled_from(WORDS), min_size=n, max_size=n)) if w] or ([] if n == 0 else ["Tokyo"])
    n = len(words)
    spaces = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    sent_starts = [True] + draw(st.lists(st.booleans(), min_size=max(n - 1, 0), max_size=max(n - 1, 0))) if n else []
    marks, cursor = [], 0
    while n and cursor < n and len(marks) < 6:
        start = draw(st.integers(cursor, n - 1))
        end = draw(st.integers(start + 1, min(n, start + 3)))
        marks.append((start, end, draw(st.sampled_from(KINDS))))
        cursor = end + draw(st.integers(0, 4))
    return words, spaces, sent_starts if draw(st.booleans()) else None, marks


def make_doc(nlp, spec):
    words, spaces, sent_starts, marks = spec
    doc = Doc(nlp.vocab, words=words, spaces=spaces, sent_starts=sent_starts)
    ents = [Span(doc, s, e, label="USER", kb_id=f"Q{s}") for s, e, kind in marks if kind == "ent"]
    blocked = [doc[s:e] for s, e, kind in marks if kind == "blocked"]
    outside = [doc[s:e] for s, e, kind in marks if kind == "outside"]
    doc.set_ents(ents, blocked=blocked, outside=outside, default="missing")
    return doc


def annotations(doc):
    return (
        [(e.start, e.end, e.label_, e.kb_id_) for e in doc.ents],
        [(e.start, e.end, sorted(e._.luke_types)) for e in doc.ents if e._.luke_types],
        [(tuple(r["head"]), tuple(r["tail"]), r["label"]) for r in doc._.luke_relations or []],
        [(e.start, e.end) for e in doc.ents if e._.luke_vector is not None],
        [(e.start, e.end, round(e._.luke_score, 3)) for e in doc.ents if e._.luke_score is not None],
    )


def run(nlp, docs, batch_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped spans and pair caps warn by design
        return list(nlp.pipe(docs, batch_size=batch_size))


@pytest.mark.heavy  # 60 random batches through four pipes: 120-160 s
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=st.lists(doc_specs(), min_size=1, max_size=4))
def test_random_docs_through_four_pipes(fuzz_nlp, specs):
    one_by_one = [run(fuzz_nlp, [make_doc(fuzz_nlp, spec)], 1)[0] for spec in specs]
    batched = run(fuzz_nlp, [make_doc(fuzz_nlp, spec) for spec in specs], len(specs))
    for spec, single, doc in zip(specs, one_by_one, batched):
        _, _, _, marks = spec
        ents = [(e.start, e.end) for e in doc.ents]
        assert all(a[1] <= b[0] for a, b in zip(ents, ents[1:]))  # sorted, never overlapping
        for start, end, kind in marks:
            tokens = doc[start:end]
            if kind == "ent":
                assert (start, end, "USER", f"Q{start}") in annotations(doc)[0]
            elif kind == "blocked":
                assert all(t.ent_iob == 3 and t.ent_type == 0 for t in tokens)
            else:
                assert all(t.ent_iob_ == "O" for t in tokens)
        for head, tail, label in annotations(doc)[2]:
            assert head != tail and label != "no_relation"
        got, want = annotations(doc), annotations(single)
        assert got[:4] == want[:4]
        assert np.allclose([s for *_, s in got[4]], [s for *_, s in want[4]], atol=2e-3)
