"""luke_entity_linker: local and global decoding against transformers' LukeForMaskedLM on the same
weights, the whole-vocabulary top k, kb_ids kept, thresholds, round trips and errors."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin, Span
from support.linker_reference import ENTS, TEXT, Reference, make_doc, make_nlp, reference_global


SPECIALS = ("[PAD]", "[UNK]", "[MASK]", "[MASK2]")


def _candidate_titles(pipe, doc):
    context = pipe.context()
    return [[(c.kb_id, c.prior) for c in cands] for cands in pipe.entity_candidates(list(doc.ents), context)]


@pytest.mark.parametrize("incl_prior", [True, False])
def test_local_decoding_is_argmax_over_candidates(linker_checkpoint, incl_prior):
    nlp = make_nlp(linker_checkpoint, incl_prior=incl_prior)
    pipe = nlp.get_pipe("luke_entity_linker")
    doc = make_doc(nlp)
    candidates = _candidate_titles(pipe, doc)
    assert [len(c) for c in candidates] == [3, 2, 1, 1]  # Paris x3, Georgia x2
    reference = Reference(linker_checkpoint)
    logits = reference.entity_logits(doc, ["[MASK]"] * len(doc.ents))
    doc = pipe(doc)
    for i, ent in enumerate(doc.ents):
        titles = [t for t, _ in candidates[i]]
        priors = [p for _, p in candidates[i]] if incl_prior else None
        want = reference.probabilities(logits[i], titles, priors)
        got = dict(ent._.luke_kb_scores)
        assert sorted(got) == sorted(titles)
        np.testing.assert_allclose([got[t] for t in titles], want, atol=1e-4)
        assert ent.kb_id_ == titles[int(np.argmax(want))]
        assert [p for _, p in ent._.luke_kb_scores] == sorted(got.values(), reverse=True)


@pytest.mark.parametrize("max_passes", [100, 2])
def test_global_decoding_equals_a_reference_implementation(linker_checkpoint, max_passes):
    nlp = make_nlp(linker_checkpoint, decoding="global", max_global_passes=max_passes)
    pipe = nlp.get_pipe("luke_entity_linker")
    doc = make_doc(nlp)
    candidates = _candidate_titles(pipe, doc)
    want = reference_global(Reference(linker_checkpoint), doc, candidates, max_passes)
    doc = pipe(doc)
    for i, ent in enumerate(doc.ents):
        best, probs = want[i]
        assert ent.kb_id_ == best
        got = dict(ent._.luke_kb_scores)
        np.testing.assert_allclose([got[t] for t, _ in candidates[i]], probs, atol=1e-4)
    local = make_nlp(linker_checkpoint)(make_doc(nlp))
    # feeding resolved entities changes the later mentions' probabilities
    assert any(abs(a[1] - b[1]) > 1e-6 for x, y in zip(doc.ents, local.ents) for a, b in zip(x._.luke_kb_scores, y._.luke_kb_scores))


def test_mluke_titles_are_language_prefixed(mluke_linker_checkpoint):
    nlp = make_nlp(mluke_linker_checkpoint)
    pipe = nlp.get_pipe("luke_entity_linker")
    doc = make_doc(nlp)
    reference = Reference(mluke_linker_checkpoint, mluke=True)
    logits = reference.entity_logits(doc, ["[MASK]"] * len(doc.ents))
    candidates = _candidate_titles(pipe, doc)
    doc = pipe(doc)
    assert doc.ents[3].kb_id_ == "Tokyo"  # written without the "en:" prefix
    for i, ent in enumerate(doc.ents):
        titles = [t for t, _ in candidates[i]]
        want = reference.probabilities(logits[i], [f"en:{t}" for t in titles], [p for _, p in candidates[i]])
        got = dict(ent._.luke_kb_scores)
        np.testing.assert_allclose([got[t] for t in titles], want, atol=1e-4)


def test_whole_vocabulary_top_k_equals_a_full_computation(linker_checkpoint):
    nlp = make_nlp(linker_checkpoint, entity_candidates={"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 5})
    doc = make_doc(nlp)
    reference = Reference(linker_checkpoint)
    logits = reference.entity_logits(doc, ["[MASK]"] * len(doc.ents))
    id2title = {}
    for title, row in reference.vocab.items():
        id2title.setdefault(row, title)
    for s in SPECIALS:
        logits[:, reference.vocab[s]] = -np.inf
    doc = nlp.get_pipe("luke_entity_linker")(doc)
    for i, ent in enumerate(doc.ents):
        top = np.argsort(-logits[i])[:5]
        assert [t for t, _ in ent._.luke_kb_scores] == [id2title[int(r)] for r in top]
        z = logits[i][top]
        p = np.exp(z - z.max())
        np.testing.assert_allclose([p for _, p in ent._.luke_kb_scores], p / p.sum(), atol=1e-4)
        assert ent.kb_id_ == id2title[int(top[0])]


def test_existing_kb_ids_are_kept_and_fed_as_entities(linker_checkpoint):
    nlp = make_nlp(linker_checkpoint)
    doc = make_doc(nlp)
    doc.ents = [Span(doc, 0, 1, "LOC", kb_id="Paris (mythology)")] + list(doc.ents[1:])
    doc = nlp.get_pipe("luke_entity_linker")(doc)
    assert doc.ents[0].kb_id_ == "Paris (mythology)" and doc.ents[0]._.luke_kb_scores is None
    # the kept entity is the input entity of its mention (as transformers given its title)
    reference = Reference(linker_checkpoint)
    logits = reference.entity_logits(doc, ["Paris (mythology)"] + ["[MASK]"] * 3)
    want = reference.probabilities(logits[1], ["Georgia (country)", "Georgia (U.S. state)"])
    got = dict(doc.ents[1]._.luke_kb_scores)
    np.testing.assert_allclose([got["Georgia (country)"], got["Georgia (U.S. state)"]], want, atol=1e-4)
    overwritten = make_nlp(linker_checkpoint, overwrite=True)(doc)
    assert overwritten.ents[0]._.luke_kb_scores is not None


def test_threshold_no_candidates_and_nil_id(linker_checkpoint):
    nlp = make_nlp(linker_checkpoint, threshold=0.99, nil_id="NIL")
    doc = make_doc(nlp, "Paris met Zorblax in Tokyo .", [(0, 1, "LOC"), (2, 3, "PER"), (4, 5, "LOC")])
    doc = nlp.get_pipe("luke_entity_linker")(doc)
    assert doc.ents[0].kb_id_ == "NIL" and len(doc.ents[0]._.luke_kb_scores) == 3  # below the threshold
    assert doc.ents[1].kb_id_ == "NIL" and doc.ents[1]._.luke_kb_scores == []  # no candidate
    assert doc.ents[2].kb_id_ == "Tokyo"  # one candidate: probability 1
    assert [e.label_ for e in doc.ents] == ["LOC", "PER", "LOC"]


def test_span_group_mentions(linker_checkpoint):
    nlp = make_nlp(linker_checkpoint, spans_key="mentions")
    doc = nlp.make_doc(TEXT)
    doc.spans["mentions"] = [Span(doc, 0, 1, "LOC"), Span(doc, 10, 11, "X")]
    doc = nlp.get_pipe("luke_entity_linker")(doc)
    group = doc.spans["mentions"]
    assert [s.label_ for s in group] == ["LOC", "X"] and group[1].kb_id_ == "Tokyo"
    assert group[0].kb_id_ in ("Paris", "Paris, Texas", "Paris (mythology)") and len(group[0]._.luke_kb_scores) == 3
    assert not doc.ents


def test_round_trips_keep_kb_ids(linker_checkpoint, tmp_path):
    nlp = make_nlp(linker_checkpoint, decoding="global")
    texts = [TEXT, "Tokyo and Paris .", "Jaguar Cars is in Georgia ."]
    ents = [ENTS, [(0, 1, "LOC"), (2, 3, "LOC")], [(0, 2, "ORG"), (4, 5, "LOC")]]
    docs = [nlp.get_pipe("luke_entity_linker")(make_doc(nlp, t, e)) for t, e in zip(texts, ents)]
    expected = [[(e.kb_id_, e._.luke_kb_scores) for e in d.ents] for d in docs]
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    again = [loaded.get_pipe("luke_entity_linker")(make_doc(loaded, t, e)) for t, e in zip(texts, ents)]
    for got, want in zip(again, expected):
        assert [e.kb_id_ for e in got.ents] == [k for k, _ in want]
        for e, (_, scores) in zip(got.ents, want):
            np.testing.assert_allclose([p for _, p in e._.luke_kb_scores], [p for _, p in scores], atol=1e-6)
    restored = list(DocBin(docs=docs, store_user_data=True).from_bytes(DocBin(docs=docs, store_user_data=True).to_bytes()).get_docs(nlp.vocab))
    assert [[(e.kb_id_, [tuple(x) for x in e._.luke_kb_scores]) for e in d.ents] for d in restored] == [
        [(k, [tuple(x) for x in s]) for k, s in w] for w in expected
    ]
    fresh = spacy.blank("en")
    fresh.add_pipe("luke_entity_linker", config={"decoding": "global"})
    fresh.from_bytes(nlp.to_bytes())
    assert [e.kb_id_ for e in fresh.get_pipe("luke_entity_linker")(make_doc(fresh)).ents] == [k for k, _ in expected[0]]


def test_n_process_2_keeps_kb_ids(linker_checkpoint):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "LOC", "pattern": p} for p in ("Paris", "Georgia", "Tokyo")])
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(linker_checkpoint)})
    texts = [TEXT, "Tokyo and Paris .", "Georgia is far from Tokyo ."] * 2
    expected = [[(e.text, e.kb_id_) for e in d.ents] for d in nlp.pipe(texts)]
    assert all(kb for d in expected for _, kb in d)
    got = [[(e.text, e.kb_id_) for e in d.ents] for d in nlp.pipe(texts, n_process=2, batch_size=2)]
    assert got == expected


def test_errors_name_the_setting(linker_checkpoint):
    with pytest.raises(ValueError, match="lite"):
        spacy.blank("en").add_pipe("luke_entity_linker", config={"lite": True})
    with pytest.raises(ValueError, match="decoding='best'"):
        spacy.blank("en").add_pipe("luke_entity_linker", config={"decoding": "best"})
    with pytest.raises(ValueError, match="max_global_passes"):
        spacy.blank("en").add_pipe("luke_entity_linker", config={"max_global_passes": 0})
    nlp = make_nlp(linker_checkpoint, entity_candidates={"@misc": "spacy-luke.AllEntitiesCandidates.v1"})
    from spacy.training import Example

    doc = make_doc(nlp)
    with pytest.raises(ValueError, match="TitleCandidates"):
        nlp.get_pipe("luke_entity_linker").update([Example(nlp.make_doc(TEXT), doc)])


def test_empty_docs_and_docs_without_mentions(linker_checkpoint):
    nlp = make_nlp(linker_checkpoint)
    pipe = nlp.get_pipe("luke_entity_linker")
    docs = list(pipe.pipe([nlp.make_doc(""), nlp.make_doc("no entities here ."), make_doc(nlp)]))
    assert [len(d.ents) for d in docs] == [0, 0, 4] and all(e.kb_id_ for e in docs[2].ents)


def test_kb_candidates_from_a_built_kb_saved_with_the_pipe(linker_checkpoint, tmp_path):
    """build-kb's KB, loaded in initialize as spaCy's entity_linker does; KB priors; saved in kb/."""
    from spacy.util import registry

    from spacy_luke.pipeline._linker.kb_builder import build_kb

    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("Paris\tParis\t6\nParis\tParis, Texas\t3\nParis\tParis (mythology)\t1\nTokyo\tTokyo\t1\n", encoding="utf8")
    nlp = spacy.blank("en")
    build_kb(aliases, linker_checkpoint, vocab=nlp.vocab).to_disk(tmp_path / "kb")
    pipe = nlp.add_pipe("luke_entity_linker", config={"entity_candidates": {"@misc": "spacy-luke.KBCandidates.v1"}, "incl_prior": True})
    pipe.initialize(lambda: [], nlp=nlp, kb_loader=registry.misc.get("spacy.KBFromFile.v1")(tmp_path / "kb"),
                    loader=registry.misc.get("spacy-luke.HFLukeLoader.v1")(str(linker_checkpoint)))
    doc = pipe(make_doc(nlp, "Paris and Tokyo and Georgia .", [(0, 1, "LOC"), (2, 3, "LOC"), (4, 5, "LOC")]))
    reference = Reference(linker_checkpoint)
    logits = reference.entity_logits(doc, ["[MASK]"] * 3)
    titles = ["Paris", "Paris, Texas", "Paris (mythology)"]
    want = reference.probabilities(logits[0], titles, [0.6, 0.3, 0.1])
    got = dict(doc.ents[0]._.luke_kb_scores)
    np.testing.assert_allclose([got[t] for t in titles], want, atol=1e-4)
    assert doc.ents[1].kb_id_ == "Tokyo" and doc.ents[2].kb_id_ == ""  # Georgia: not in the KB
    nlp.to_disk(tmp_path / "nlp")
    assert (tmp_path / "nlp" / "luke_entity_linker" / "kb").exists()
    loaded = spacy.load(tmp_path / "nlp")
    again = loaded.get_pipe("luke_entity_linker")(make_doc(loaded, "Paris and Tokyo and Georgia .", [(0, 1, "LOC"), (2, 3, "LOC"), (4, 5, "LOC")]))
    assert [e.kb_id_ for e in again.ents] == [e.kb_id_ for e in doc.ents]
    np.testing.assert_allclose([p for _, p in again.ents[0]._.luke_kb_scores], [p for _, p in doc.ents[0]._.luke_kb_scores], atol=1e-6)


def test_prune_entities_keeps_the_kb_and_gold_titles_and_the_same_scores(linker_checkpoint, tmp_path):
    from spacy.training import Example
    from spacy.util import registry

    from spacy_luke.pipeline._linker.kb_builder import build_kb

    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("Paris\tParis\t6\nParis\tParis, Texas\t3\nTokyo\tTokyo\t1\n", encoding="utf8")
    nlp = spacy.blank("en")
    build_kb(aliases, linker_checkpoint, vocab=nlp.vocab).to_disk(tmp_path / "kb")
    config = {"entity_candidates": {"@misc": "spacy-luke.KBCandidates.v1"}, "prune_entities": True}
    pipe = nlp.add_pipe("luke_entity_linker", config=config)
    reference = make_doc(nlp, "Paris and Tokyo and Georgia .", [(0, 1, "LOC"), (2, 3, "LOC"), (4, 5, "LOC")])
    reference.ents = list(reference.ents[:2]) + [Span(reference, 4, 5, "LOC", kb_id="Georgia (country)")]
    examples = [Example(make_doc(nlp, reference.text, [(0, 1, "LOC"), (2, 3, "LOC"), (4, 5, "LOC")]), reference)]
    pipe.initialize(lambda: examples, nlp=nlp, kb_loader=registry.misc.get("spacy.KBFromFile.v1")(tmp_path / "kb"),
                    loader=registry.misc.get("spacy-luke.HFLukeLoader.v1")(str(linker_checkpoint)))
    vocab = pipe.tokenizer.entity_vocab
    assert sorted(vocab) == sorted(list(SPECIALS) + ["Paris", "Paris, Texas", "Tokyo", "Georgia (country)"])
    assert pipe.luke_model.entity_vocab is vocab  # one vocabulary: the model's is the tokenizer's
    assert pipe.luke_model.config.entity_vocab_size == 8
    assert pipe.luke_model.luke.entity_embeddings.entity_embeddings.weight.shape[0] == 8
    doc = pipe(make_doc(nlp, "Paris and Tokyo .", [(0, 1, "LOC"), (2, 3, "LOC")]))
    # the same numbers as the full table gives at those titles
    ref = Reference(linker_checkpoint)
    logits = ref.entity_logits(doc, ["[MASK]"] * 2)
    want = ref.probabilities(logits[0], ["Paris", "Paris, Texas"], [6 / 9, 3 / 9])
    got = dict(doc.ents[0]._.luke_kb_scores)
    np.testing.assert_allclose([got["Paris"], got["Paris, Texas"]], want, atol=1e-4)
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert len(loaded.get_pipe("luke_entity_linker").tokenizer.entity_vocab) == 8
    again = loaded.get_pipe("luke_entity_linker")(make_doc(loaded, "Paris and Tokyo .", [(0, 1, "LOC"), (2, 3, "LOC")]))
    assert [e.kb_id_ for e in again.ents] == [e.kb_id_ for e in doc.ents]
    with pytest.raises(ValueError, match="aliases"):
        make_nlp(linker_checkpoint, prune_entities=True).initialize()


def test_threads_match_sequential_results(linker_checkpoint):
    from concurrent.futures import ThreadPoolExecutor

    nlp = make_nlp(linker_checkpoint, decoding="global")
    pipe = nlp.get_pipe("luke_entity_linker")
    texts = [TEXT, "Tokyo and Paris .", "Georgia is far from Paris ."] * 8
    ents = [ENTS, [(0, 1, "LOC"), (2, 3, "LOC")], [(0, 1, "LOC"), (4, 5, "LOC")]] * 8

    def link(k):
        doc = pipe(make_doc(nlp, texts[k], ents[k]))
        return [(e.kb_id_, [(kb, round(p, 6)) for kb, p in e._.luke_kb_scores]) for e in doc.ents]

    sequential = [link(k) for k in range(len(texts))]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(link, range(len(texts)))) == sequential


def test_user_annotations_are_kept(linker_checkpoint):
    """Blocked and outside tokens stay as they were; a whitespace mention is skipped with a warning."""
    from spacy_luke.layers.skipped import LukeSkippedSpanWarning

    nlp = make_nlp(linker_checkpoint)
    doc = nlp.make_doc("Paris  is in Tokyo .")  # token 1 is whitespace
    doc.set_ents([Span(doc, 0, 1, "LOC"), Span(doc, 1, 2, "X"), Span(doc, 4, 5, "LOC")], blocked=[Span(doc, 3, 4)], outside=[Span(doc, 2, 3)])
    before = [(t.ent_iob, t.ent_type) for t in doc[2:4]]
    with pytest.warns(LukeSkippedSpanWarning):
        doc = nlp.get_pipe("luke_entity_linker")(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "LOC"), (" ", "X"), ("Tokyo", "LOC")]
    assert doc.ents[2].kb_id_ == "Tokyo" and doc.ents[1].kb_id_ == "" and doc.ents[1]._.luke_kb_scores == []  # no candidate
    assert [(t.ent_iob, t.ent_type) for t in doc[2:4]] == before  # outside and blocked kept


def test_the_old_candidates_setting_still_works_with_a_deprecation_warning(linker_checkpoint, tmp_path):
    """``entity_candidates`` was ``candidates`` (the other pipes' span suggester setting): the old name
    still works in a config and on the pipe, each time with a DeprecationWarning."""
    import warnings

    from spacy_luke.pipeline._linker.entity_candidates import AllEntitiesCandidates, TitleCandidates

    source = {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 3}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = make_nlp(linker_checkpoint, entity_candidates=source)
    assert not [w for w in caught if "entity_candidates" in str(w.message)]
    with pytest.warns(DeprecationWarning, match=r"`candidates` is now `entity_candidates`.*\[components\.luke_entity_linker\.entity_candidates\]"):
        old = make_nlp(linker_checkpoint, candidates=source)
    pipe = old.get_pipe("luke_entity_linker")
    assert isinstance(pipe.entity_candidates, AllEntitiesCandidates) and pipe.entity_candidates.top_k == 3
    assert old.config["components"]["luke_entity_linker"]["entity_candidates"]["@misc"] == "spacy-luke.TitleCandidates.v1"  # the default, unused

    def links(nlp):
        return [(e.kb_id_, e._.luke_kb_scores) for e in nlp(make_doc(nlp)).ents]

    assert links(old) == links(new)
    # a saved pipeline whose config says `candidates` loads with the same source
    old.to_disk(tmp_path / "old")
    with pytest.warns(DeprecationWarning, match="entity_candidates"):
        loaded = spacy.load(tmp_path / "old")
    assert isinstance(loaded.get_pipe("luke_entity_linker").entity_candidates, AllEntitiesCandidates) and links(loaded) == links(new)
    # the pipe attribute
    with pytest.warns(DeprecationWarning, match="entity_candidates"):
        assert pipe.candidates is pipe.entity_candidates
    with pytest.warns(DeprecationWarning, match="entity_candidates"):
        pipe.candidates = TitleCandidates()
    assert isinstance(pipe.entity_candidates, TitleCandidates)
