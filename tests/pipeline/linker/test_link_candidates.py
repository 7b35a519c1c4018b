"""Candidate sources of the entity linker: title matching, alias priors, KB candidates, whole vocabulary."""
from __future__ import annotations

import logging
import threading
import time
import warnings

import pytest
import spacy
from spacy.kb import Candidate, InMemoryLookupKB, KnowledgeBase
from spacy.util import registry

from spacy_luke.pipeline._linker.aliases import AliasFileError, normalize_mention, read_alias_table, title_keys
from spacy_luke.sources.entity_vocab import EntityVocab, load_entity_vocab
from spacy_luke.pipeline._linker import entity_candidates as link_candidates
from spacy_luke.pipeline._linker.entity_candidates import (
    AllEntitiesCandidates,
    KBCandidates,
    LinkCandidate,
    LinkContext,
    LukeUnknownEntityWarning,
    TitleCandidates,
    all_entities_candidates,
    kb_candidates,
    kb_id_for_title,
    title_candidates,
)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def vocab(linker_checkpoint):
    return load_entity_vocab(linker_checkpoint)


@pytest.fixture(scope="module")
def mluke_vocab(mluke_linker_checkpoint):
    return load_entity_vocab(mluke_linker_checkpoint)


def mentions(nlp, *texts):
    """One doc per text, the whole doc as the mention."""
    return [nlp(text)[:] for text in texts]


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return str(path)


def rounded(candidates):
    return [(c.kb_id, c.entity_id, round(c.prior, 12)) for c in candidates]


# ------------------------------------------------------------------------------------ normalization


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Paris", "paris"),
        ("  PARIS\t\n", "paris"),
        ("Apple_Inc.", "apple inc"),
        ("Apple Inc.", "apple inc"),
        ("Jean-Paul  Sartre", "jean paul sartre"),
        ("Ｔｏｋｙｏ", "tokyo"),  # NFKC: full-width letters
        ("Straße", "strasse"),  # casefold
        ("Beyoncé", "beyoncé"),  # letters of any script stay
        ("東京", "東京"),
        ("हिन्दी", "हिन्दी"),  # combining marks stay
        ("O'Brien!", "obrien"),
        ("C++ (language)", "c language"),
        ("!?", ""),
        ("   ", ""),
    ],
)
def test_normalize_mention(text, expected):
    assert normalize_mention(text) == expected


@pytest.mark.parametrize(
    "title,keys",
    [
        ("Paris", ["paris"]),
        ("Paris, Texas", ["paris texas", "paris"]),
        ("Paris (mythology)", ["paris mythology", "paris"]),
        ("Georgia (U.S. state)", ["georgia us state", "georgia"]),
        ("Washington, D.C. (film)", ["washington dc film", "washington dc", "washington"]),
        ("(film)", ["film"]),
    ],
)
def test_title_keys(title, keys):
    assert title_keys(title) == keys


# ------------------------------------------------------------------------------------ TitleCandidates


def test_paris_finds_three_titles_with_uniform_priors(nlp, vocab):
    source = title_candidates()
    (paris, jaguar, jaguar_cars, georgia, apple, nothing, blank) = source(
        mentions(nlp, "Paris", "JAGUAR", "Jaguar cars", "georgia", "Apple Inc", "Nowhereland", "  "), LinkContext(vocab)
    )
    third = round(1 / 3, 12)
    assert rounded(paris) == [
        ("Paris", vocab["Paris"], third),
        ("Paris (mythology)", vocab["Paris (mythology)"], third),
        ("Paris, Texas", vocab["Paris, Texas"], third),
    ]
    # Only a trailing "(...)" or ", qualifier" is dropped: "Jaguar Cars" needs an alias line for "Jaguar".
    assert [(c.kb_id, c.prior) for c in jaguar] == [("Jaguar (animal)", 1.0)]
    assert [(c.kb_id, c.prior) for c in jaguar_cars] == [("Jaguar Cars", 1.0)]
    assert [(c.kb_id, c.prior) for c in georgia] == [("Georgia (U.S. state)", 0.5), ("Georgia (country)", 0.5)]
    assert rounded(apple) == [("Apple Inc.", vocab["Apple Inc."], 1.0)]
    assert nothing == [] and blank == []
    assert all(isinstance(c, LinkCandidate) for c in paris)
    assert source.whole_vocabulary is False and source.max_candidates == 30


def test_alias_priors_exact(nlp, vocab, tmp_path, caplog):
    aliases = write(tmp_path, "aliases.tsv", [
        "Frisco\tTokyo\t3",
        "Frisco\tHouston\t2",
        "Frisco\tTokyo\t5",  # repeated lines add up: Tokyo 8
        "",
        "Paris\tParis\t8",
        "Paris\tParis, Texas\t2",
        "Paris\tParis Hilton\t5",  # not in the vocabulary: ignored
        "Big Apple\tNo Such Title\t1",
        "Jaguar\tJaguar Cars\t3",
    ])
    source = title_candidates(aliases=aliases)
    with caplog.at_level(logging.WARNING, logger="spacy_luke"):
        frisco, paris, frisco_upper, big_apple = source(mentions(nlp, "Frisco", "Paris", "FRISCO!", "Big Apple"), LinkContext(vocab))
    # No title match for "Frisco": the alias counts alone, 8/10 and 2/10.
    assert [(c.kb_id, c.entity_id, c.prior) for c in frisco] == [("Tokyo", vocab["Tokyo"], 0.8), ("Houston", vocab["Houston"], 0.2)]
    assert frisco_upper == frisco
    # "Paris (mythology)" is a title match the alias file does not list: it counts as seen once.
    assert [(c.kb_id, c.entity_id) for c in paris] == [
        ("Paris", vocab["Paris"]), ("Paris, Texas", vocab["Paris, Texas"]), ("Paris (mythology)", vocab["Paris (mythology)"])
    ]
    assert [c.prior for c in paris] == pytest.approx([8 / 11, 2 / 11, 1 / 11], abs=1e-15)
    assert big_apple == []
    (jaguar,) = source(mentions(nlp, "Jaguar"), LinkContext(vocab))  # alias 3 + unlisted title match 1
    assert [(c.kb_id, c.prior) for c in jaguar] == [("Jaguar Cars", 0.75), ("Jaguar (animal)", 0.25)]
    warned = [r for r in caplog.records if "not in the checkpoint's entity vocabulary" in r.getMessage()]
    assert len(warned) == 1 and "2 title(s)" in warned[0].getMessage() and "'Paris Hilton'" in warned[0].getMessage()
    # The index (and its warning) is built once.
    caplog.clear()
    source(mentions(nlp, "Paris"), LinkContext(vocab))
    assert not caplog.records


def test_max_candidates_cut(nlp, vocab, tmp_path):
    aliases = write(tmp_path, "aliases.tsv", ["Paris\tParis, Texas\t3", "Paris\tParis\t1"])
    (paris,) = title_candidates(aliases=aliases, max_candidates=2)(mentions(nlp, "Paris"), LinkContext(vocab))
    assert [(c.kb_id, c.prior) for c in paris] == [("Paris, Texas", 0.6), ("Paris", 0.2)]
    (paris,) = title_candidates(max_candidates=1)(mentions(nlp, "Paris"), LinkContext(vocab))
    assert [c.kb_id for c in paris] == ["Paris"]  # ties sorted by title


@pytest.mark.parametrize(
    "line,lineno,expected",
    [
        ("Paris\tParis", 2, "expected alias<TAB>title<TAB>count"),
        ("Paris\tParis\t1\textra", 2, "expected alias<TAB>title<TAB>count"),
        ("\tParis\t1", 2, "none empty"),
        ("Paris\tParis\tmany", 2, "'many' is not a positive number"),
        ("Paris\tParis\t0", 2, "'0' is not a positive number"),
        ("Paris\tParis\tnan", 2, "'nan' is not a positive number"),
    ],
)
def test_bad_alias_line_names_file_and_line(tmp_path, line, lineno, expected):
    path = write(tmp_path, "bad.tsv", ["Tokyo\tTokyo\t1", line])
    with pytest.raises(AliasFileError) as err:
        read_alias_table(path)
    assert f"{path}:{lineno}:" in str(err.value) and expected in str(err.value)


def test_alias_file_errors_at_construction_and_first_use(nlp, vocab, tmp_path):
    with pytest.raises(FileNotFoundError, match="aliases file 'nowhere.tsv' was not found"):
        title_candidates(aliases="nowhere.tsv")
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Zürich\tTokyo\t1\n".encode("latin1"))
    source = title_candidates(aliases=str(path))
    with pytest.raises(AliasFileError, match="not UTF-8"):
        source(mentions(nlp, "Tokyo"), LinkContext(vocab))


def test_mluke_prefix(nlp, mluke_vocab, tmp_path):
    aliases = write(tmp_path, "aliases.tsv", ["Edo\tTokyo\t4", "Edo\tJapan\t1"])
    source = title_candidates(aliases=aliases)
    en = LinkContext(mluke_vocab, language="en")
    tokyo, tokyo_ja, edo, paris = source(mentions(nlp, "Tokyo", "東京", "Edo", "Paris"), en)
    assert [(c.kb_id, c.entity_id, c.prior) for c in tokyo] == [("Tokyo", mluke_vocab["en:Tokyo"], 1.0)]
    assert tokyo_ja == []  # only "en:" titles are indexed
    assert [(c.kb_id, c.entity_id, c.prior) for c in edo] == [("Tokyo", mluke_vocab["en:Tokyo"], 0.8), ("Japan", mluke_vocab["en:Japan"], 0.2)]
    assert [c.kb_id for c in paris] == ["Paris", "Paris (mythology)", "Paris, Texas"]
    (ja,) = source(mentions(nlp, "東京"), LinkContext(mluke_vocab, language="ja"))
    assert [(c.kb_id, c.entity_id) for c in ja] == [("東京", mluke_vocab["en:Tokyo"])]  # the row shared with en:Tokyo


def test_index_built_once_per_vocabulary_and_language(nlp, vocab, mluke_vocab, monkeypatch):
    calls = []
    build = link_candidates._build_title_index

    def counting(*args):
        calls.append(args[1])
        time.sleep(0.05)  # widen the race
        return build(*args)

    monkeypatch.setattr(link_candidates, "_build_title_index", counting)
    source = TitleCandidates()
    threads = [threading.Thread(target=source.index, args=(vocab,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [None]
    assert source.index(vocab) is source.index(vocab)
    source.index(mluke_vocab, "en")
    source.index(mluke_vocab, "ja")
    assert calls == [None, "en", "ja"]
    copy = EntityVocab(vocab.to_dict())  # an equal but different vocabulary gets its own index
    assert source.index(copy) is not source.index(vocab)


def built(source, vocab):
    """What ``source`` builds once per vocabulary: the title index, or the whole-table search."""
    if isinstance(source, AllEntitiesCandidates):
        return source.search(LinkContext(vocab), vocab.size if hasattr(vocab, "size") else len(vocab))
    return source.index(vocab)


def content(found):
    return found.kb_ids if isinstance(found, link_candidates.EntitySearch) else found


@pytest.mark.parametrize("make", [TitleCandidates, AllEntitiesCandidates])
def test_a_new_vocabulary_object_never_gets_the_old_ones_cache(vocab, make):
    """The caches live on the vocabulary object (no id() keys): a vocabulary built where a freed one
    lived, a copy, an unpickled one each get their own; the source does not keep a vocabulary alive."""
    import copy
    import gc
    import pickle
    import weakref

    source = make()
    titles = vocab.to_dict()
    first = EntityVocab(titles)
    old = built(source, first)
    assert built(source, first) is old
    address, alive = id(first), weakref.ref(first)
    del first
    gc.collect()
    assert alive() is None  # nothing of the source holds it
    for _ in range(100):  # try for one where the freed one was (CPython may reuse its address)
        fresh = EntityVocab(titles)
        if id(fresh) == address:
            break
        del fresh
    else:
        fresh = EntityVocab(titles)
    assert built(source, fresh) is not old and built(source, fresh) is built(source, fresh)
    shallow, deep, unpickled = copy.copy(fresh), copy.deepcopy(fresh), pickle.loads(pickle.dumps(fresh))
    for other in (shallow, deep, unpickled):
        assert built(source, other) is not built(source, fresh)
        assert built(source, other) is built(source, other)
    assert content(built(source, fresh)) == content(built(source, shallow)) == content(old)  # the same, built again
    plain = dict(titles)  # a vocabulary without attributes: no cache, each call builds
    assert built(source, plain) is not built(source, plain) and content(built(source, plain)) == content(old)


@pytest.mark.heavy  # a 500,000-title index: seconds
def test_500k_title_index_builds_in_seconds(nlp):
    titles = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2}
    for i in range(500_000):
        titles[f"Title {i} (thing, {i % 7})" if i % 3 == 0 else f"Place {i}, Region {i % 11}" if i % 3 == 1 else f"Name_{i}"] = i + 3
    vocab = EntityVocab(titles)
    source = TitleCandidates()
    start = time.perf_counter()
    index = source.index(vocab)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"building the index of 500,000 titles took {elapsed:.1f} s"
    assert len(index.titles) > 500_000
    (found,) = source(mentions(nlp, "Title 3"), LinkContext(vocab))
    assert [(c.kb_id, c.entity_id) for c in found] == [("Title 3 (thing, 3)", 6)]


# ------------------------------------------------------------------------------------ KBCandidates


def make_kb(nlp, entities, aliases):
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=2)
    for entity in entities:
        kb.add_entity(entity, freq=1, entity_vector=[0.0, 1.0])
    for alias, (names, priors) in aliases.items():
        kb.add_alias(alias, names, priors)
    return kb


def test_kb_candidates_priors_renormalized_and_unknown_dropped(nlp, vocab):
    kb = make_kb(nlp, ["Paris", "Paris, Texas", "Paris Hilton", "Jaguar Cars"], {
        "Paris": (["Paris", "Paris, Texas", "Paris Hilton"], [0.5, 0.3, 0.1]),
        "Jaguar": (["Jaguar Cars"], [0.0]),
    })
    source = kb_candidates()
    with pytest.warns(LukeUnknownEntityWarning, match=r"1 KB candidate title\(s\).*'Paris Hilton'.*mapping file") as record:
        paris, jaguar, other = source(mentions(nlp, "Paris", "Jaguar", "paris"), LinkContext(vocab, kb=kb))
    assert len(record) == 1
    assert [(c.kb_id, c.entity_id) for c in paris] == [("Paris", vocab["Paris"]), ("Paris, Texas", vocab["Paris, Texas"])]
    assert [c.prior for c in paris] == pytest.approx([0.625, 0.375], abs=1e-7)  # 0.5/0.8, 0.3/0.8 (float32 priors)
    assert [(c.kb_id, c.prior) for c in jaguar] == [("Jaguar Cars", 1.0)]  # all zero: uniform
    assert other == []  # InMemoryLookupKB matches the exact text
    assert source.whole_vocabulary is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert source([], LinkContext(vocab, kb=kb)) == []


def test_kb_candidates_with_mapping(nlp, vocab, mluke_vocab, tmp_path):
    kb = make_kb(nlp, ["Q90", "Q16858", "Q1490"], {"Paris": (["Q90", "Q16858"], [0.6, 0.2]), "Tokyo": (["Q1490"], [0.9])})
    mapping = write(tmp_path, "mapping.tsv", ["Q90\tParis", "Q16858\tParis, Texas", "Q1490\tTokyo"])
    source = kb_candidates(mapping=mapping, max_candidates=1)
    paris, tokyo = source(mentions(nlp, "Paris", "Tokyo"), LinkContext(vocab, kb=kb))
    assert [(c.kb_id, c.entity_id) for c in paris] == [("Q90", vocab["Paris"])]
    assert paris[0].prior == pytest.approx(0.75, abs=1e-7)
    assert [(c.kb_id, c.entity_id, c.prior) for c in tokyo] == [("Q1490", vocab["Tokyo"], 1.0)]
    (tokyo,) = kb_candidates(mapping=mapping)(mentions(nlp, "Tokyo"), LinkContext(mluke_vocab, language="en", kb=kb))
    assert [(c.kb_id, c.entity_id) for c in tokyo] == [("Q1490", mluke_vocab["en:Tokyo"])]
    bad = write(tmp_path, "bad.tsv", ["Q90\tParis", "Q90\tParis, Texas"])
    with pytest.raises(AliasFileError, match=r"bad.tsv:2: 'Q90' is mapped twice"):
        kb_candidates(mapping=bad)(mentions(nlp, "Paris"), LinkContext(vocab, kb=kb))


def test_kb_candidates_through_any_knowledge_base(nlp, vocab):
    class OneEntityKB(KnowledgeBase):
        """A KnowledgeBase that only implements get_candidates (get_candidates_batch is the base class's)."""

        def get_candidates(self, mention):
            entity = self.vocab.strings.add("Tokyo")
            return [Candidate(self, entity, 1, [0.0], self.vocab.strings.add(mention.text), 0.3)]

    kb = OneEntityKB(nlp.vocab, entity_vector_length=1)
    (found,) = kb_candidates()(mentions(nlp, "the capital"), LinkContext(vocab, kb=kb))
    assert [(c.kb_id, c.entity_id, c.prior) for c in found] == [("Tokyo", vocab["Tokyo"], 1.0)]


def test_missing_kb_is_a_clear_error(nlp, vocab):
    with pytest.raises(ValueError, match=r"linker\.set_kb\(\.\.\.\).*kb_loader.*\[initialize\.components\.NAME\]"):
        kb_candidates()(mentions(nlp, "Paris"), LinkContext(vocab))


# ------------------------------------------------------------------------------------ AllEntitiesCandidates


def test_all_entities_flags(nlp, vocab):
    source = all_entities_candidates(top_k=5)
    assert isinstance(source, AllEntitiesCandidates)
    assert source.whole_vocabulary is True and source.top_k == 5 and source.max_candidates == 5
    assert source(mentions(nlp, "Paris", "Tokyo"), LinkContext(vocab)) == [[], []]
    assert source.kb_id_of("en:Tokyo", "en") == "Tokyo" and source.kb_id_of("Tokyo", None) == "Tokyo"
    assert kb_id_for_title("en:Tokyo", "en") == "Tokyo"
    assert kb_id_for_title("ja:東京", "en") == "ja:東京" and kb_id_for_title("en:Tokyo", None) == "en:Tokyo"


@pytest.mark.parametrize(
    "make,name,value",
    [
        (lambda v: all_entities_candidates(top_k=v), "top_k", 0),
        (lambda v: all_entities_candidates(top_k=v), "top_k", True),
        (lambda v: title_candidates(max_candidates=v), "max_candidates", 0),
        (lambda v: kb_candidates(max_candidates=v), "max_candidates", -3),
        (lambda v: title_candidates(max_candidates=v), "max_candidates", 2.5),
    ],
)
def test_counts_must_be_positive(make, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= 1, got {value!r}"):
        make(value)


def test_registered_names_resolve(tmp_path):
    aliases = write(tmp_path, "aliases.tsv", ["Edo\tTokyo\t1"])
    config = {
        "title": {"@misc": "spacy-luke.TitleCandidates.v1", "aliases": aliases, "max_candidates": 7},
        "kb": {"@misc": "spacy-luke.KBCandidates.v1"},
        "all": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 3},
    }
    resolved = registry.resolve(config)
    assert isinstance(resolved["title"], TitleCandidates) and resolved["title"].max_candidates == 7
    assert isinstance(resolved["kb"], KBCandidates) and resolved["kb"].max_candidates == 30
    assert isinstance(resolved["all"], AllEntitiesCandidates) and resolved["all"].top_k == 3
    for name, function in [
        ("spacy-luke.TitleCandidates.v1", title_candidates),
        ("spacy-luke.KBCandidates.v1", kb_candidates),
        ("spacy-luke.AllEntitiesCandidates.v1", all_entities_candidates),
    ]:
        assert registry.misc.get(name) is function
