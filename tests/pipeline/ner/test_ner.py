"""luke_ner: parity with the reference LUKE NER procedure, decoding rules, edge cases."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, Span

from support.tokenizers import make_sentences
from support.ner import PARITY_TEXTS, doc_entities, make_nlp, reference_entities


def test_parity_with_reference_procedure(ner_checkpoint):
    assert len(PARITY_TEXTS) >= 50
    expected = reference_entities(ner_checkpoint, PARITY_TEXTS)
    nlp = make_nlp(ner_checkpoint)
    got = [doc_entities(doc) for doc in nlp.pipe(PARITY_TEXTS, batch_size=7)]
    assert sum(len(e) for e in expected) > 50, "the random checkpoint should predict some entities"
    assert got == expected


def test_labels_from_checkpoint_and_scores(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    ner = nlp.get_pipe("luke_ner")
    assert not ner.is_loaded  # nothing loaded at construction
    doc = nlp(PARITY_TEXTS[0])
    assert ner.is_loaded
    assert ner.labels == ("PER", "ORG", "LOC")
    for ent in doc.ents:
        assert 0.0 < ent._.luke_score <= 1.0


def test_nil_class_found_by_name_not_index(pipe_root):
    from support.pipes import build_checkpoint

    folder = build_checkpoint(pipe_root, "ner-nil-last", "LukeForEntitySpanClassification", {0: "PER", 1: "LOC", 2: "NIL"})
    texts = PARITY_TEXTS[:12]
    nlp = make_nlp(folder)
    assert nlp.get_pipe("luke_ner").labels == ("PER", "LOC")
    assert [doc_entities(d) for d in nlp.pipe(texts)] == reference_entities(folder, texts)


def test_existing_entities_kept_and_never_overlapped(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    text = PARITY_TEXTS[1]
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, 1, 3, label="KEEP")]
    doc = nlp.get_pipe("luke_ner")(doc)
    assert any(e.label_ == "KEEP" and (e.start, e.end) == (1, 3) for e in doc.ents)
    for ent in doc.ents:
        if ent.label_ != "KEEP":
            assert ent.end <= 1 or ent.start >= 3
    # overwrite = true replaces them
    nlp2 = make_nlp(ner_checkpoint, overwrite=True)
    doc2 = nlp2.make_doc(text)
    doc2.ents = [Span(doc2, 1, 3, label="KEEP")]
    doc2 = nlp2.get_pipe("luke_ner")(doc2)
    assert all(e.label_ != "KEEP" for e in doc2.ents)
    assert doc_entities(doc2) == reference_entities(ner_checkpoint, [text])[0]


def test_spans_key_output(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint, spans_key="luke")
    doc = nlp(PARITY_TEXTS[2])
    group = doc.spans["luke"]
    assert sorted((s.start_char, s.end_char, s.label_) for s in group) == reference_entities(ner_checkpoint, [PARITY_TEXTS[2]])[0]
    assert len(group.attrs["scores"]) == len(group)
    assert list(doc.ents) == []


def test_candidates_never_cross_sentences(ner_checkpoint):
    from spacy_luke.pipeline._shared.suggesters import sentence_spans

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp("Tokyo is big . Japan is the capital of Japan .")
    spans = sentence_spans(doc, 16)
    sentences = [(s.start, s.end) for s in doc.sents]
    for start, end in spans.tolist():
        assert any(s <= start and end <= e for s, e in sentences)
    # every span within a sentence is there: n(n+1)/2 for each sentence of n tokens
    assert len(spans) == sum((e - s) * (e - s + 1) // 2 for s, e in sentences)
    # whitespace tokens never start or end a candidate
    doc = spacy.blank("en")("Tokyo  is\n\nbig")
    assert all(not doc[s].is_space and not doc[e - 1].is_space for s, e in sentence_spans(doc, 4).tolist())


def _spans_by_loops(doc, max_length):
    """The candidate rule spelled out with loops: within a sentence, no whitespace at either end."""
    sentences = [(s.start, s.end) for s in doc.sents] if doc.has_annotation("SENT_START") else [(0, len(doc))]
    return [
        (i, j)
        for start, end in (sentences if len(doc) else [])
        for i in range(start, end)
        for j in range(i + 1, min(end, i + max_length) + 1)
        if not doc[i].is_space and not doc[j - 1].is_space
    ]


def test_candidates_of_many_docs_at_once_equal_the_rule():
    import random

    from spacy_luke.pipeline._shared.suggesters import sentence_spans_of_docs

    nlp = spacy.blank("en")
    rng = random.Random(3)
    docs = []
    for _ in range(120):
        n = rng.randint(0, 30)
        words = [rng.choice(["Tokyo", "is", "\n", " ", "big", "."]) for _ in range(n)]
        kind = rng.random()
        sent_starts = None
        if n and kind < 0.4:
            sent_starts = [True] + [rng.random() < 0.2 for _ in range(n - 1)]
        elif n and kind < 0.6:
            sent_starts = [rng.choice([True, False, None]) for _ in range(n)]
        docs.append(Doc(nlp.vocab, words=words, spaces=[rng.random() < 0.5 for _ in words], sent_starts=sent_starts))
    for max_length in (1, 3, 16):
        got = sentence_spans_of_docs(docs, max_length)
        assert len(got) == len(docs)
        for doc, spans in zip(docs, got):
            assert spans.dtype == np.int64 and spans.shape[1:] == (2,)
            assert [tuple(s) for s in spans.tolist()] == _spans_by_loops(doc, max_length)


def test_spancat_suggester_plugs_in(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint, candidates={"@misc": "spacy.ngram_range_suggester.v1", "min_size": 1, "max_size": 2})
    text = PARITY_TEXTS[3]
    doc = nlp(text)
    assert all(len(e) <= 2 for e in doc.ents)
    assert doc_entities(doc) == reference_entities(ner_checkpoint, [text], max_mention_length=2)[0]


def test_edge_inputs(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    assert list(nlp("").ents) == []
    assert list(nlp("   \n  ").ents) == []
    docs = list(nlp.pipe(["", "Tokyo", "  ", PARITY_TEXTS[0]]))
    assert doc_entities(docs[3]) == reference_entities(ner_checkpoint, [PARITY_TEXTS[0]])[0]
    # no candidates at all (an empty span group as candidate source)
    nlp2 = make_nlp(ner_checkpoint, candidates={"@misc": "spacy-luke.span_group_candidates.v1", "spans_key": "none"})
    assert list(nlp2(PARITY_TEXTS[0]).ents) == []


@pytest.mark.heavy  # a 20,000-token doc: 25 s
def test_long_document_in_windows(ner_checkpoint):
    """A 20,000-token doc: windows of the model's 126-piece budget, passes of max_entities_per_pass."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 3, "max_entities_per_pass": 50})
    words = " ".join(make_sentences(3000, seed=5)).split()[:19990]
    text = " . ".join(" ".join(words[i : i + 10]) for i in range(0, len(words), 10))
    doc = nlp(text)
    assert len(doc) >= 20000
    ents = list(doc.ents)
    assert ents and all(len(e) <= 3 for e in ents)
    # a sentence gets the same entities as when it is scored inside its own window
    ner = nlp.get_pipe("luke_ner")
    assert ner.cfg["max_entities_per_pass"] == 50


def test_long_sentence_without_boundaries(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint, max_mention_length=2)
    text = " ".join(make_sentences(80, seed=9))  # one "sentence" far over the 126-piece budget
    doc = nlp(text)
    assert len(doc.ents) > 0


def test_no_pretrained_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": None})
    with pytest.raises(ValueError, match="has no weights: set `pretrained`"):
        nlp("Tokyo is big")


def test_bad_settings_are_clear_errors(ner_checkpoint):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="max_mention_length must be at least 1"):
        nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 0})


def test_checkpoint_without_nil_class(pipe_root):
    from support.pipes import build_checkpoint

    folder = build_checkpoint(pipe_root, "ner-no-nil", "LukeForEntitySpanClassification", {0: "PER", 1: "LOC"})
    nlp = make_nlp(folder)
    with pytest.raises(ValueError, match="exactly one non-entity class named NIL or O"):
        nlp("Tokyo is big")


def test_windows_plan_gives_balanced_context():
    from spacy_luke.layers.bucketing import bucket_by_cost
    from spacy_luke.layers.windows import centred_window, plan_windows

    starts = np.arange(100)
    ends = starts + 1
    assert centred_window(starts, ends, (40, 50), 30) == (30, 60)
    assert centred_window(starts, ends, (0, 10), 30) == (0, 30)
    spans = np.array([[41, 43], [5, 6], [95, 100]])
    sentences = [(0, 10), (10, 40), (40, 50), (50, 90), (90, 100)]
    planned, dropped = plan_windows(starts, ends, sentences, spans, 30)
    assert len(dropped) == 0
    windows = {tuple(idx.tolist()): w for w, idx in planned}
    assert windows[(0,)] == (30, 60) and windows[(1,)] == (0, 30) and windows[(2,)] == (70, 100)
    batches = bucket_by_cost([(10, 5), (100, 50), (12, 4), (11, 6)], max_cost=60)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    assert [1] in batches  # over the limit on its own
