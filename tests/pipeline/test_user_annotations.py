"""Nothing the user set is lost; spans that cannot be encoded are skipped with one warning; bounded pairs."""
import warnings

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, Span, SpanGroup

from spacy_luke.pipeline.relation_extractor import LukePairCapWarning, entity_pairs
from spacy_luke.layers.skipped import LukeSkippedSpanWarning
from support.ner import PARITY_TEXTS, make_nlp


def ner_nlp(ner_checkpoint, **config):
    return make_nlp(ner_checkpoint, **config)


def predicted_ents(nlp, text):
    return [(e.start, e.end, e.label_) for e in nlp(text).ents]


def busy_text(nlp):
    """A text where the pipe finds several entities."""
    return max(PARITY_TEXTS, key=lambda t: len(nlp(t).ents))


# ---------------------------------------------------------------------- blocked / outside / span groups


def test_blocked_tokens_never_get_an_entity_and_stay_blocked(ner_checkpoint):
    nlp = ner_nlp(ner_checkpoint)
    text = busy_text(nlp)
    free = nlp(text)
    assert len(free.ents) >= 2
    target = free.ents[0]
    doc = nlp.make_doc(text)
    doc.set_ents([], blocked=[doc[target.start : target.end]], default="missing")
    doc = nlp.get_pipe("luke_ner")(doc)
    assert all(not (e.start < target.end and target.start < e.end) for e in doc.ents)
    assert all(t.ent_iob_ == "B" and t.ent_type == 0 for t in doc[target.start : target.end])  # still blocked
    # the other entities are still found
    assert {(e.start, e.end) for e in free.ents[1:]} & {(e.start, e.end) for e in doc.ents}
    # overwrite never clears a block either
    overwriting = ner_nlp(ner_checkpoint, overwrite=True)
    doc = overwriting.make_doc(text)
    doc.set_ents([], blocked=[doc[target.start : target.end]], default="missing")
    doc = overwriting.get_pipe("luke_ner")(doc)
    assert all(t.ent_iob_ == "B" and t.ent_type == 0 for t in doc[target.start : target.end])


def test_outside_tokens_kept_and_respected_when_asked(ner_checkpoint):
    nlp = ner_nlp(ner_checkpoint, respect_outside=True)
    text = busy_text(nlp)
    free = nlp(text)
    target = free.ents[0]
    doc = nlp.make_doc(text)
    doc.set_ents([], outside=[doc[target.start : target.end]], default="missing")
    doc = nlp.get_pipe("luke_ner")(doc)
    assert all(t.ent_iob_ == "O" for t in doc[target.start : target.end])
    assert len(doc.ents) >= 1
    # by default (as spaCy's ner) O is no constraint: doc.ents = ... marks every other token O
    default = ner_nlp(ner_checkpoint)
    doc = default.make_doc(text)
    doc.ents = [Span(doc, free.ents[-1].start, free.ents[-1].end, label="USER")]
    doc = default.get_pipe("luke_ner")(doc)
    assert (free.ents[-1].start, free.ents[-1].end, "USER") in [(e.start, e.end, e.label_) for e in doc.ents]
    assert len(doc.ents) > 1


def test_existing_entities_keep_kb_ids(ner_checkpoint):
    nlp = ner_nlp(ner_checkpoint)
    doc = nlp.make_doc("Steve Jobs founded Apple in California .")
    doc.ents = [Span(doc, 0, 2, label="PERSON", kb_id="Q19837")]
    doc = nlp.get_pipe("luke_ner")(doc)
    assert [(e.start, e.end, e.label_, e.kb_id_) for e in doc.ents if e.start == 0] == [(0, 2, "PERSON", "Q19837")]


def test_spans_key_extends_an_existing_group(ner_checkpoint):
    nlp = ner_nlp(ner_checkpoint, spans_key="luke")
    text = busy_text(nlp)
    alone_doc = nlp(text)
    alone = alone_doc.spans["luke"]
    assert len(alone) >= 2
    doc = nlp.make_doc(text)
    mine = Span(doc, alone[0].start, alone[0].end, label="MINE")
    doc.spans["luke"] = SpanGroup(doc, name="luke", spans=[mine], attrs={"source": "user"})
    doc = nlp.get_pipe("luke_ner")(doc)
    group = doc.spans["luke"]
    assert (mine.start, mine.end, "MINE") in [(s.start, s.end, s.label_) for s in group]
    assert group.attrs["source"] == "user" and len(group.attrs["scores"]) == len(group) and len(group) >= 2
    assert np.isnan(group.attrs["scores"][[s.label_ for s in group].index("MINE")])
    assert not any(s.start < mine.end and mine.start < s.end for s in group if s.label_ != "MINE")
    overwriting = ner_nlp(ner_checkpoint, spans_key="luke", overwrite=True)
    doc = overwriting.make_doc(text)
    doc.spans["luke"] = [Span(doc, 0, 1, label="MINE")]
    assert "MINE" not in [s.label_ for s in overwriting.get_pipe("luke_ner")(doc).spans["luke"]]


# ---------------------------------------------------------------------- spans that cannot be encoded


def whitespace_doc(nlp):
    doc = Doc(nlp.vocab, words=["Steve", " ", "Jobs", "founded", "Apple", "."], spaces=[True, False, True, True, False, False])
    doc.ents = [Span(doc, 1, 2, label="SPACE"), Span(doc, 2, 3, label="PER"), Span(doc, 4, 5, label="ORG")]
    return doc


def test_whitespace_entity_is_skipped_with_one_warning_in_every_pipe(typer_checkpoint, relation_checkpoint, encoder_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "max_pair_distance": 10})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(encoder_checkpoint)})
    for name in nlp.pipe_names:
        doc = whitespace_doc(nlp)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nlp.get_pipe(name)(doc)
        skipped = [w for w in caught if issubclass(w.category, LukeSkippedSpanWarning)]
        assert len(skipped) == 1, (name, [str(w.message) for w in caught])
        message = str(skipped[0].message)
        assert f"[{name}]" in message and "' '" in message and "tokens 1-2" in message and "whitespace" in message
    # the other spans are annotated, the whitespace one is not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LukeSkippedSpanWarning)
        doc = nlp(whitespace_doc(nlp))
    assert doc.ents[1]._.luke_types and doc.ents[2]._.luke_types and doc.ents[0]._.luke_types is None
    assert doc.ents[1]._.luke_vector is not None and doc.ents[0]._.luke_vector is None
    assert doc._.luke_relations is not None
    assert all([6, 7] not in (r["head"], r["tail"]) for r in doc._.luke_relations)  # the " " token's characters


def test_ner_suggester_whitespace_and_overlong_candidates_are_skipped(ner_checkpoint):
    nlp = ner_nlp(ner_checkpoint)
    ner = nlp.get_pipe("luke_ner")
    budget = ner._word_budget()
    long_word = "x" * (budget * 8)  # many more pieces than the window holds
    doc = Doc(nlp.vocab, words=["Barack", "Obama", " ", long_word, "visited", "Paris", "."], spaces=[True, True, False, True, True, False, False])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = ner(doc)
    messages = [str(w.message) for w in caught if issubclass(w.category, LukeSkippedSpanWarning)]
    assert len(messages) == 1 and "[luke_ner]" in messages[0] and "window" in messages[0]
    assert all(not (e.start <= 3 < e.end) for e in doc.ents)
    # a suggester that proposes a whitespace-only span
    def suggester(docs, *, ops):
        from thinc.api import Ragged

        data = np.asarray([[2, 3], [0, 2], [4, 6]], dtype="i")
        return Ragged(ops.asarray(data), ops.asarray(np.asarray([3], dtype="i")))

    ner.candidates = suggester
    doc2 = Doc(nlp.vocab, words=["Barack", "Obama", " ", "visited", "Paris", "."])
    with pytest.warns(LukeSkippedSpanWarning, match="whitespace"):
        ner(doc2)


# ---------------------------------------------------------------------- bounded relation pairs


def test_pairs_are_capped_per_sentence_nearest_first():
    nlp = spacy.blank("en")
    doc = nlp.make_doc(" ".join(["w"] * 2000))
    spans = np.asarray([(i, i + 1) for i in range(0, 2000, 2)])  # 1,000 entities in one "sentence"
    cut = []
    pairs = entity_pairs(doc, spans, None, 50, cut)
    assert len(pairs) == 50 and cut == [(0, 1000)]
    assert all(abs(h[0] - t[0]) == 2 for h, t in pairs)  # neighbours first
    assert entity_pairs(doc, spans[:6], None, 50) == entity_pairs(doc, spans[:6], None)  # under the cap: all 30
    assert len(entity_pairs(doc, spans[:6], None)) == 30


def test_relation_extractor_warns_when_the_cap_cuts(relation_checkpoint):
    nlp = spacy.blank("en")
    rex = nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "max_pairs_per_sentence": 12})
    doc = nlp.make_doc(" ".join(" ".join(PARITY_TEXTS[:6]).split()[:40]))
    doc.ents = [Span(doc, i, i + 1, label="E") for i in range(0, min(len(doc), 20), 2)]
    assert len(doc.ents) >= 6
    with pytest.warns(LukePairCapWarning, match="max_pairs_per_sentence=12"):
        predictions = rex.predict([doc])
    assert len(predictions[0][0]) == 12
    with pytest.raises(ValueError, match="max_pairs_per_sentence"):
        nlp.add_pipe("luke_relation_extractor", name="bad", config={"max_pairs_per_sentence": 0})
