"""The linker and build-kb never fail silently: a KB of 0 entities is an error naming why, a call
with no candidate at all warns once; set_kb takes a KB, its folder or a kb_loader."""
from __future__ import annotations

import warnings

import pytest
import spacy
from spacy.kb import InMemoryLookupKB
from spacy.tokens import Span

from spacy_luke.pipeline._linker.kb_builder import build_kb
from spacy_luke.pipeline._linker.no_candidates import LukeNoCandidatesWarning
from support.cli import fails
from support.linker import LINKER_TITLES

ALIASES = "Jaguar\tJaguar Cars\t3\nJaguar\tJaguar (animal)\t1\n"


@pytest.fixture
def aliases(tmp_path):
    path = tmp_path / "aliases.tsv"
    path.write_text(ALIASES, encoding="utf8")
    return path


def linker(checkpoint, **candidates):
    nlp = spacy.blank("en")
    source = {"@misc": "spacy-luke.TitleCandidates.v1", **candidates}
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(checkpoint), "entity_candidates": source})
    nlp.initialize()
    return nlp


def mentions(nlp, text, spans):
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, s, e, label="MISC") for s, e in spans]
    return doc


def test_build_kb_of_no_known_title_is_an_error(capsys, linker_checkpoint, tmp_path):
    path = tmp_path / "unknown.tsv"
    path.write_text("Nobody\tNo Such Title\t1\nZorro\tZorro (film)\t2\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"none of its 2 titles \(e.g. 'No Such Title', 'Zorro \(film\)'\).*0 entities"):
        build_kb(path, linker_checkpoint)
    line = fails(capsys, "build-kb", path, linker_checkpoint, tmp_path / "kb")
    assert f"has {len(LINKER_TITLES)} other titles" in line and "use the checkpoint's titles in the alias file" in line
    assert not (tmp_path / "kb").exists()  # nothing written


def test_no_candidate_warns_once_naming_the_source(linker_checkpoint, aliases):
    nlp = linker(linker_checkpoint, aliases=str(aliases))
    doc = mentions(nlp, "Zorro met Xanadu .", [(0, 1), (2, 3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nlp(doc.copy())
        nlp(doc.copy())
    found = [w for w in caught if issubclass(w.category, LukeNoCandidatesWarning)]
    assert len(found) == 1, [str(w.message) for w in caught]
    message = str(found[0].message)
    assert "'Zorro', 'Xanadu'" in message and "spacy-luke.TitleCandidates.v1" in message
    assert str(aliases) in message and "titles of the entity vocabulary" in message
    assert [e.kb_id_ for e in first.ents] == ["", ""]


def test_a_call_with_candidates_does_not_warn(linker_checkpoint, aliases):
    nlp = linker(linker_checkpoint, aliases=str(aliases))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LukeNoCandidatesWarning)
        doc = nlp(mentions(nlp, "Jaguar met Zorro .", [(0, 1), (2, 3)]))
    assert doc.ents[0].kb_id_ in ("Jaguar Cars", "Jaguar (animal)") and doc.ents[1].kb_id_ == ""


@pytest.mark.parametrize("given", ["folder", "path", "object", "loader"])
def test_set_kb_takes_a_kb_its_folder_or_a_loader(linker_checkpoint, aliases, tmp_path, given):
    kb_folder = tmp_path / "kb"
    build_kb(aliases, linker_checkpoint).to_disk(kb_folder)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(
        "luke_entity_linker",
        config={"pretrained": str(linker_checkpoint), "entity_candidates": {"@misc": "spacy-luke.KBCandidates.v1"}},
    )
    nlp.initialize()

    def loader(vocab):
        kb = InMemoryLookupKB(vocab, entity_vector_length=1)
        kb.from_disk(kb_folder)
        return kb

    pipe.set_kb({"folder": str(kb_folder), "path": kb_folder, "object": loader(nlp.vocab), "loader": loader}[given])
    assert sorted(pipe.kb.kb.get_entity_strings()) == ["Jaguar (animal)", "Jaguar Cars"]
    doc = nlp(mentions(nlp, "Jaguar sells cars .", [(0, 1)]))
    assert [kb for kb, _ in doc.ents[0]._.luke_kb_scores] and doc.ents[0].kb_id_ in ("Jaguar Cars", "Jaguar (animal)")


def test_set_kb_errors(linker_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("luke_entity_linker", config={"pretrained": str(linker_checkpoint)})
    with pytest.raises(FileNotFoundError, match="no such knowledge base folder.*build-kb"):
        pipe.set_kb(tmp_path / "missing")
    with pytest.raises(TypeError, match="set_kb takes a KnowledgeBase.*got int"):
        pipe.set_kb(3)
    with pytest.raises(ValueError, match="the kb_loader returned dict"):
        pipe.set_kb(lambda vocab: {})
