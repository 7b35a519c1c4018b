"""The linker's whole-table search (spacy-luke.AllEntitiesCandidates.v1): any top_k with any table
size (k clamped to the rows searched, in the model and in the pipe alike), only rows with a title in
the pipe's language (mLUKE), and a warning when there is nothing to search."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import Span

from support.linker import LINKER_TITLES, UNTITLED_ROWS, linker_entity_vocab
from spacy_luke.sources.entity_vocab import load_entity_vocab
from spacy_luke.model import LukeForEntityDisambiguation
from spacy_luke.pipeline._linker.entity_candidates import LinkContext, LukeNoEntitiesWarning, all_entities_candidates
from support.linker_reference import ENTS, TEXT, Reference, make_doc, make_nlp, reference_global

ALL = "spacy-luke.AllEntitiesCandidates.v1"
SPECIALS = ("[PAD]", "[UNK]", "[MASK]", "[MASK2]")


def kb_scores(doc):
    return [(e.kb_id_, [(kb, p) for kb, p in e._.luke_kb_scores]) for e in doc.ents]


def assert_matches_reference(doc, want):
    """``want``: per mention, {title: probability} over every title it may get."""
    for ent, probs in zip(doc.ents, want):
        got = dict(ent._.luke_kb_scores)
        assert sorted(got) == sorted(probs)
        np.testing.assert_allclose([got[t] for t in probs], list(probs.values()), atol=1e-4)
        assert ent.kb_id_ == max(probs, key=probs.get)
        assert [p for _, p in ent._.luke_kb_scores] == sorted(got.values(), reverse=True)


def reference_probs(reference, doc, titles, decoding):
    """Per mention, {title: P} over ``titles`` (transformers' LukeForMaskedLM), as the pipe decodes."""
    candidates = [[(t, 1.0) for t in titles] for _ in doc.ents]
    if decoding == "global":
        resolved = reference_global(reference, doc, candidates)
        return [dict(zip(titles, resolved[i][1])) for i in range(len(doc.ents))]
    logits = reference.entity_logits(doc, ["[MASK]"] * len(doc.ents))
    return [dict(zip(titles, reference.probabilities(row, titles))) for row in logits]


# ---------------------------------------------------------------------- top_k >= the table


@pytest.mark.parametrize("decoding", ["local", "global"])
def test_top_k_larger_than_the_table_keeps_every_entity(linker_checkpoint, decoding):
    nlp = make_nlp(linker_checkpoint, decoding=decoding, entity_candidates={"@misc": ALL, "top_k": 1000})
    doc = nlp(make_doc(nlp))
    want = reference_probs(Reference(linker_checkpoint), make_doc(nlp), LINKER_TITLES, decoding)
    assert len(LINKER_TITLES) == 314 and all(len(e._.luke_kb_scores) == 314 for e in doc.ents)
    assert_matches_reference(doc, want)


@pytest.mark.parametrize("decoding", ["local", "global"])
def test_pruned_table_smaller_than_the_default_top_k(linker_checkpoint, tmp_path, decoding):
    from spacy.util import registry

    from spacy_luke.pipeline._linker.kb_builder import build_kb

    aliases = tmp_path / "aliases.tsv"
    aliases.write_text("Paris\tParis\t6\nParis\tParis, Texas\t3\nTokyo\tTokyo\t1\nGeorgia\tGeorgia (country)\t1\n", encoding="utf8")
    pruning = spacy.blank("en")
    build_kb(aliases, linker_checkpoint, vocab=pruning.vocab).to_disk(tmp_path / "kb")
    config = {"entity_candidates": {"@misc": "spacy-luke.KBCandidates.v1"}, "prune_entities": True, "decoding": decoding}  # cfg travels in the bytes
    pipe = pruning.add_pipe("luke_entity_linker", config=config)
    pipe.initialize(lambda: [], nlp=pruning, kb_loader=registry.misc.get("spacy.KBFromFile.v1")(tmp_path / "kb"),
                    loader=registry.misc.get("spacy-luke.HFLukeLoader.v1")(str(linker_checkpoint)))
    kept = ["Paris", "Paris, Texas", "Tokyo", "Georgia (country)"]
    assert len(pipe.tokenizer.entity_vocab) == 8  # the 4 specials and 4 titles: fewer than top_k = 10
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_linker", config={"entity_candidates": {"@misc": ALL}, "decoding": decoding})
    nlp.from_bytes(pruning.to_bytes())
    assert nlp.get_pipe("luke_entity_linker").entity_candidates.top_k == 10
    doc = nlp(make_doc(nlp))
    # the pruned table holds the full table's rows: the same numbers at those titles
    assert_matches_reference(doc, reference_probs(Reference(linker_checkpoint), make_doc(nlp), kept, decoding))


def test_model_clamps_top_k_to_the_rows_searched(linker_checkpoint):
    ours = LukeForEntityDisambiguation.from_pretrained(linker_checkpoint)
    tokenizer = transformers.LukeTokenizer.from_pretrained(linker_checkpoint)
    inputs = tokenizer(TEXT, entity_spans=[(0, 5), (46, 51)], entities=["[MASK]"] * 2, return_tensors="pt")
    with torch.no_grad():
        full = transformers.LukeForMaskedLM.from_pretrained(linker_checkpoint).eval()(**inputs).entity_logits
        allowed = torch.tensor([9, 5, 300, 5, 7, 10_000])  # a repeated row and one outside the table count once / not at all
        out = ours(**inputs, top_k=torch.tensor(50), allowed_entity_ids=allowed, excluded_entity_ids=torch.tensor([7, 7]))
        assert out.candidate_ids.shape == (1, 2, 3)
        want_logits, order = full[..., [5, 9, 300]].sort(dim=-1, descending=True)
        assert torch.equal(out.candidate_ids, torch.tensor([5, 9, 300])[order])
        torch.testing.assert_close(out.candidate_logits, want_logits, atol=1e-4, rtol=1e-4)
        n_rows = full.shape[-1]
        everything = ours(**inputs, top_k=torch.tensor(n_rows + 10), excluded_entity_ids=torch.tensor([0, 1, 2, 3, 3]))
        assert everything.candidate_ids.shape == (1, 2, n_rows - 4)
        nothing = ours(**inputs, top_k=torch.tensor(5), allowed_entity_ids=torch.tensor([2]), excluded_entity_ids=torch.tensor([2]))
        assert nothing.candidate_ids.shape == (1, 2, 0) and nothing.candidate_logits.shape == (1, 2, 0)


# ---------------------------------------------------------------------- mLUKE: the pipe's language only


def test_search_rows_are_those_titled_in_the_language(mluke_foreign_rows_checkpoint):
    vocab = load_entity_vocab(mluke_foreign_rows_checkpoint)
    n_rows = vocab.size + UNTITLED_ROWS
    source = all_entities_candidates(top_k=5)
    en = source.search(LinkContext(vocab, language="en"), n_rows)
    english = linker_entity_vocab("en:")
    assert en.kb_ids == {row: title[3:] for title, row in english.items() if title not in SPECIALS}
    assert en.top_k == 5
    # the shorter list: every row but the English ones (specials, Japanese / German only, untitled)
    assert list(en.model_inputs) == ["excluded_entity_ids"]
    assert en.model_inputs["excluded_entity_ids"].tolist() == [0, 1, 2, 3] + list(range(vocab.size - 3, n_rows))
    ja = source.search(LinkContext(vocab, language="ja"), n_rows)
    assert ja.kb_ids == {english["en:Tokyo"]: "東京", vocab["ja:大阪"]: "大阪", vocab["ja:富士山"]: "富士山"}
    assert ja.top_k == 3  # fewer rows than top_k
    assert list(ja.model_inputs) == ["allowed_entity_ids"]
    assert ja.model_inputs["allowed_entity_ids"].tolist() == sorted(ja.kb_ids)
    assert source.search(LinkContext(vocab, language="en"), n_rows) is en  # built once per table


def test_mluke_search_returns_only_titles_in_the_pipe_language(mluke_foreign_rows_checkpoint):
    nlp = make_nlp(mluke_foreign_rows_checkpoint, entity_candidates={"@misc": ALL, "top_k": 5})
    doc = nlp(make_doc(nlp))
    english = {t for t in LINKER_TITLES}
    for ent in doc.ents:
        assert ent.kb_id_ and ent.kb_id_ in english
        assert len(ent._.luke_kb_scores) == 5 and all(kb in english for kb, _ in ent._.luke_kb_scores)
    # the same numbers as transformers' softmax over the 5 best English-titled rows
    reference = Reference(mluke_foreign_rows_checkpoint, mluke=True)
    logits = reference.entity_logits(make_doc(nlp), ["[MASK]"] * len(ENTS))
    for ent, row in zip(doc.ents, logits):
        z = np.array([row[reference.vocab[f"en:{t}"]] for t in LINKER_TITLES])
        top = np.argsort(-z)[:5]
        p = np.exp(z[top] - z[top].max())
        assert [kb for kb, _ in ent._.luke_kb_scores] == [LINKER_TITLES[i] for i in top]
        np.testing.assert_allclose([q for _, q in ent._.luke_kb_scores], p / p.sum(), atol=1e-4)
    # in Japanese: the three rows with a Japanese title (fewer than top_k), in both decodings
    for decoding in ("local", "global"):
        ja = make_nlp(mluke_foreign_rows_checkpoint, language="ja", decoding=decoding, entity_candidates={"@misc": ALL, "top_k": 5})
        for ent in ja(make_doc(ja)).ents:
            assert ent.kb_id_ and sorted(kb for kb, _ in ent._.luke_kb_scores) == sorted(["東京", "大阪", "富士山"])


@pytest.mark.parametrize("decoding", ["local", "global"])
def test_no_entity_in_the_language_warns_and_links_nothing(mluke_foreign_rows_checkpoint, decoding):
    nlp = make_nlp(mluke_foreign_rows_checkpoint, language="fr", decoding=decoding, nil_id="NIL", entity_candidates={"@misc": ALL})
    doc = make_doc(nlp)
    doc.ents = [Span(doc, 0, 1, "LOC", kb_id="Paris")] + list(doc.ents[1:])  # a kept kb_id stays
    with pytest.warns(LukeNoEntitiesWarning, match=r"no entity with a title in language 'fr'.*'de', 'en', 'ja'"):
        doc = nlp(doc)
    assert [e.kb_id_ for e in doc.ents] == ["Paris", "NIL", "NIL", "NIL"]
    assert [e._.luke_kb_scores for e in doc.ents] == [None, [], [], []]
