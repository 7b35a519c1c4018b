"""The command line: `python -m spacy_luke ner|convert-conll|convert-encoder`, and what `--help` imports."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_luke.cli.ner import build_ner_pipeline
from support.ner import PARITY_TEXTS, reference_entities
from support.cli import HEAVY

pytestmark = pytest.mark.heavy  # every test here starts `python -m spacy_luke`


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "spacy_luke", *map(str, args)], input=stdin, capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["ner"], ["export-onnx"], ["train-pruner"]], ids=lambda c: " ".join(c) or "top")
def test_help_imports_nothing_heavy(command):
    """`--help` builds every command's parser (about 0.05 s) with none of spaCy, torch, tqdm or the
    export's runtime imported: a command imports those when it runs."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "spacy_luke", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "spacy_luke.cli" in imported  # the import log was read
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY or name == "spacy_luke.export.onnx")
    assert not heavy, heavy


def test_ner_jsonl_from_files_and_stdin(ner_checkpoint, tmp_path):
    texts = PARITY_TEXTS[:25]
    (tmp_path / "a.txt").write_text("\n".join(texts[:20]) + "\n\n", encoding="utf8")
    (tmp_path / "b.txt").write_text("\n".join(texts[20:]), encoding="utf8")
    result = run("ner", "--pretrained", ner_checkpoint, "--max-mention-length", 8, tmp_path / "a.txt", tmp_path / "b.txt")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    assert records[0]["source"].endswith("a.txt:1") and records[20]["source"].endswith("b.txt:1")
    got = [sorted((e["start"], e["end"], e["label"]) for e in r["entities"]) for r in records]
    nlp = build_ner_pipeline(str(ner_checkpoint), max_mention_length=8)  # blank "en" + sentencizer + luke_ner
    assert got == [sorted((e.start_char, e.end_char, e.label_) for e in doc.ents) for doc in nlp.pipe(texts)]
    assert any(got)
    for record in records:
        for ent in record["entities"]:
            assert record["text"][ent["start"] : ent["end"]] == ent["text"] and 0 < ent["score"] <= 1
    piped = run("ner", "--pretrained", ner_checkpoint, "--max-mention-length", 8, "-", stdin="\n".join(texts[:3]))
    assert [json.loads(line)["text"] for line in piped.stdout.splitlines()] == texts[:3]


def test_ner_html_output(ner_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text(PARITY_TEXTS[0], encoding="utf8")
    result = run("ner", "--pretrained", ner_checkpoint, "--format", "html", "-o", tmp_path / "out.html", tmp_path / "in.txt")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out.html").read_text(encoding="utf8")
    assert html.startswith("<!DOCTYPE html>") and "entities" in html


def test_ner_with_a_saved_pipeline(ner_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 8})
    nlp.to_disk(tmp_path / "pipeline")
    result = run("ner", "--pretrained", tmp_path / "pipeline", "-", stdin=PARITY_TEXTS[0])
    assert result.returncode == 0, result.stderr
    got = sorted((e["start"], e["end"], e["label"]) for e in json.loads(result.stdout)["entities"])
    assert got == reference_entities(ner_checkpoint, PARITY_TEXTS[:1])[0]


def test_missing_model_is_a_message_not_a_trace(tmp_path):
    result = run("ner", "--pretrained", tmp_path / "nowhere", "-", stdin="Tokyo")
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    offline = subprocess.run(
        [sys.executable, "-m", "spacy_luke", "ner", "--pretrained", "studio-ousia/luke-large-finetuned-conll-2003", "-"],
        input="Tokyo", capture_output=True, text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert offline.returncode == 2 and "offline" in offline.stderr and "Traceback" not in offline.stderr
    missing_input = run("ner", "--pretrained", tmp_path, tmp_path / "no.txt")
    assert missing_input.returncode == 2 and "Traceback" not in missing_input.stderr


CONLL = """EU B-ORG 0
rejects O 0
German B-MISC 0
call O 0
. O 0

Peter B-PER 0
Blackburn I-PER 0

BRUSSELS B-LOC 0
1996-08-22 O 0

-DOCSTART- O 0

New I-LOC 0
York I-LOC 0
is O 0
big O 0
"""


def test_convert_conll(tmp_path):
    (tmp_path / "train.txt").write_text(CONLL, encoding="utf8")
    result = run("convert-conll", tmp_path / "train.txt", tmp_path / "train.spacy", "--n-sents", 2)
    assert result.returncode == 0, result.stderr
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 3  # 3 sentences -> 2 docs, then a new document (DOCSTART) -> 1 doc
    assert [(e.text, e.label_) for e in docs[0].ents] == [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")]
    assert len(list(docs[0].sents)) == 2
    assert [(e.text, e.label_) for e in docs[2].ents] == [("New York", "LOC")]  # IOB1 start
