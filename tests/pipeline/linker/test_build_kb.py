"""build_kb / `python -m spacy_luke build-kb`: a spaCy KB of LUKE's entity embeddings; kb_id in the ner CLI output."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import spacy
from safetensors import safe_open
from spacy.kb import InMemoryLookupKB
from spacy.language import Language
from spacy.tokens import Span
from spacy.vocab import Vocab

from spacy_luke import cli
from spacy_luke.cli import ner as ner_command
from spacy_luke.sources.entity_vocab import load_entity_vocab
from spacy_luke.pipeline._linker.kb_builder import build_kb, build_kb_with_report
from support.cli import fails

EMBEDDINGS = "luke.entity_embeddings.entity_embeddings.weight"
ALIASES = [
    "Paris\tParis\t6",
    "Paris\tParis, Texas\t3",
    "Paris\tParis Hilton\t9",  # not in the entity vocabulary
    "City of Light\tParis\t4",
    "Jaguar\tJaguar Cars\t1",
    "Jaguar\tJaguar (animal)\t3",
    "Edo\tTokyo\t2",
    "Nobody\tNo Such Title\t1",  # an alias with no title left
]


@pytest.fixture
def aliases(tmp_path):
    path = tmp_path / "aliases.tsv"
    path.write_text("\n".join(ALIASES) + "\n", encoding="utf8")
    return path


def embedding_rows(checkpoint, titles):
    vocab = load_entity_vocab(checkpoint)
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as f:
        table = f.get_tensor(EMBEDDINGS)
    return [table[vocab[title]].tolist() for title in titles]


def freq_of(kb, alias, entity):
    return next(c.entity_freq for c in kb.get_alias_candidates(alias) if c.entity_ == entity)


def check_kb(kb, checkpoint, prefix=""):
    entities = ["Paris", "Paris, Texas", "Jaguar Cars", "Jaguar (animal)", "Tokyo"]
    assert list(kb.get_entity_strings()) and sorted(kb.get_entity_strings()) == sorted(entities)
    assert sorted(kb.get_alias_strings()) == sorted(["Paris", "City of Light", "Jaguar", "Edo"])
    assert kb.entity_vector_length == 16  # the checkpoint's entity_emb_size
    expected = embedding_rows(checkpoint, [prefix + title for title in entities])
    assert [list(kb.get_vector(entity)) for entity in entities] == expected  # float32, exactly
    assert kb.get_prior_prob("Paris", "Paris") == pytest.approx(6 / 9, abs=1e-7)
    assert kb.get_prior_prob("Paris, Texas", "Paris") == pytest.approx(3 / 9, abs=1e-7)
    assert kb.get_prior_prob("Paris", "City of Light") == 1.0
    assert kb.get_prior_prob("Jaguar Cars", "Jaguar") == 0.25 and kb.get_prior_prob("Jaguar (animal)", "Jaguar") == 0.75
    assert kb.get_prior_prob("Tokyo", "Edo") == 1.0
    assert freq_of(kb, "Paris", "Paris") == 10  # 6 + 4: every alias line of the entity
    assert freq_of(kb, "Paris", "Paris, Texas") == 3 and freq_of(kb, "Edo", "Tokyo") == 2


def test_build_kb(linker_checkpoint, aliases, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="spacy_luke"):
        kb, report = build_kb_with_report(aliases, linker_checkpoint)
    check_kb(kb, linker_checkpoint)
    assert report.entities == 5 and report.aliases == 4 and report.skipped_aliases == 1
    assert report.skipped_titles == ["Paris Hilton", "No Such Title"]
    assert any("2 title(s) are not in the entity vocabulary" in r.getMessage() for r in caplog.records)
    kb.to_disk(tmp_path / "kb")
    loaded = InMemoryLookupKB(Vocab(), entity_vector_length=16)
    loaded.from_disk(tmp_path / "kb")
    check_kb(loaded, linker_checkpoint)


def test_build_kb_mluke_shares_the_vocab(mluke_linker_checkpoint, aliases):
    nlp = spacy.blank("en")
    kb = build_kb(aliases, mluke_linker_checkpoint, vocab=nlp.vocab, language="en")
    assert kb.vocab is nlp.vocab
    check_kb(kb, mluke_linker_checkpoint, prefix="en:")  # KB ids unprefixed, vectors of the "en:" rows
    with pytest.raises(FileNotFoundError, match="no such alias file"):
        build_kb(aliases.parent / "missing.tsv", mluke_linker_checkpoint)


# ------------------------------------------------------------------------------------ command line


@pytest.mark.heavy  # runs `python -m spacy_luke build-kb` in a subprocess
def test_build_kb_command(linker_checkpoint, aliases, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spacy_luke", "build-kb", str(aliases), str(linker_checkpoint), str(tmp_path / "kb")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    summary = [line for line in result.stderr.splitlines() if line.startswith("Wrote")]
    assert summary == [
        f"Wrote a knowledge base to {tmp_path / 'kb'}: 5 entities, 4 aliases; "
        "skipped 2 titles not in the entity vocabulary (1 aliases with none left)"
    ]
    kb = InMemoryLookupKB(Vocab(), entity_vector_length=16)
    kb.from_disk(tmp_path / "kb")
    check_kb(kb, linker_checkpoint)


def one_line_error(capsys, argv, *expected):
    line = fails(capsys, *argv)  # exit code 2, one "error: ..." line on stderr
    for text in expected:
        assert text in line, line


def test_build_kb_command_errors(capsys, linker_checkpoint, aliases, tmp_path):
    one_line_error(capsys, ["build-kb", tmp_path / "missing.tsv", linker_checkpoint, tmp_path / "kb"], "missing.tsv: no such input file")
    bad = tmp_path / "bad.tsv"
    bad.write_text("Paris\tParis\t1\nParis\tParis, Texas\n", encoding="utf8")
    one_line_error(capsys, ["build-kb", bad, linker_checkpoint, tmp_path / "kb"], f"{bad}:2:", "alias<TAB>title<TAB>count")
    one_line_error(capsys, ["build-kb", aliases, tmp_path / "nowhere", tmp_path / "kb"], "nowhere")
    one_line_error(capsys, ["build-kb", aliases, linker_checkpoint, aliases], "is a file")
    assert not (tmp_path / "kb").exists()


def test_ner_jsonl_has_kb_id(capsys, ner_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("Tokyo is the capital of Japan .\n", encoding="utf8")
    assert cli.main(["ner", "--pretrained", str(ner_checkpoint), "--max-mention-length", "4", "-o", str(tmp_path / "out.jsonl"), str(tmp_path / "in.txt")]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf8").splitlines()]
    assert record["entities"], "the fixture model finds entities in this text"
    for entity in record["entities"]:
        assert entity["kb_id"] == "" and entity.get("kb_scores") is None


@Language.component("_test_linked_ents")
def _linked_ents(doc):
    doc.ents = [Span(doc, 0, 1, label="LOC", kb_id="Paris"), Span(doc, 2, 3, label="LOC")]
    if Span.has_extension("luke_kb_scores"):
        doc.ents[0]._.luke_kb_scores = [("Paris", 0.75), ("Paris, Texas", 0.25)]
    return doc


def test_ner_output_of_linked_entities(monkeypatch, tmp_path):
    """kb_id / kb_scores in JSONL and Wikipedia links in the displaCy page, with a stand-in pipeline."""
    if not Span.has_extension("luke_kb_scores"):  # what the entity linker registers
        Span.set_extension("luke_kb_scores", default=None)
    from spacy_luke.pipeline._shared import extensions  # noqa: F401  (Span._.luke_score)

    def pipeline(*args, **kwargs):
        nlp = spacy.blank("en")
        nlp.add_pipe("_test_linked_ents")
        return nlp

    monkeypatch.setattr(ner_command, "build_ner_pipeline", pipeline)
    (tmp_path / "in.txt").write_text("Paris and Lyon\n", encoding="utf8")
    assert cli.main(["ner", "--pretrained", "x", "-o", str(tmp_path / "out.jsonl"), str(tmp_path / "in.txt")]) == 0
    record = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf8"))
    paris, lyon = record["entities"]
    assert paris["kb_id"] == "Paris" and paris["kb_scores"] == [["Paris", 0.75], ["Paris, Texas", 0.25]]
    assert lyon["kb_id"] == "" and lyon.get("kb_scores") is None
    html = tmp_path / "out.html"
    assert cli.main(["ner", "--pretrained", "x", "--format", "html", "-o", str(html), str(tmp_path / "in.txt")]) == 0
    assert 'href="https://en.wikipedia.org/wiki/Paris"' in html.read_text(encoding="utf8")
    assert cli.main(["ner", "--pretrained", "x", "--format", "html", "--kb-url-template", "https://www.wikidata.org/wiki/{}", "-o", str(html), str(tmp_path / "in.txt")]) == 0
    assert 'href="https://www.wikidata.org/wiki/Paris"' in html.read_text(encoding="utf8")
