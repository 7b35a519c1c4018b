"""spacy_luke.annotate.read_docbin: annotate's DocBin shards read back with the pipes' values,
in a fresh process too (where nothing has registered the LUKE extensions)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import spacy

from spacy_luke.annotate import annotate, read_docbin

TEXTS = ["Tokyo is the capital of Japan and Houston is in Texas .", "Steve Jobs founded Apple in California ."] * 3


def rounded(value):
    """Floats to 5 decimals, tuples as lists (a JSON round trip's form), for equality."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def values(docs):
    return rounded([
        {
            "text": doc.text,
            "ents": [[e.start_char, e.end_char, e.label_, e.kb_id_, e._.luke_score, e._.luke_types, e._.luke_kb_scores] for e in doc.ents],
        }
        for doc in docs
    ])


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, ner_checkpoint, typer_checkpoint, linker_checkpoint):
    root = tmp_path_factory.mktemp("read-docbin")
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_entity_linker", config={
        "pretrained": str(linker_checkpoint), "entity_candidates": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 2},
    })
    nlp.to_disk(root / "pipeline")
    (root / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf8")
    annotate(str(root / "pipeline"), [str(root / "in.txt")], str(root / "out"), output_format="docbin", shard_size=4, progress=False)
    expected = values(spacy.load(root / "pipeline").pipe(TEXTS))
    assert sum(len(doc["ents"]) for doc in expected) > 0
    return root, expected


def test_read_a_folder_or_a_shard(annotated):
    root, expected = annotated
    assert sorted(p.name for p in (root / "out").glob("part-*.spacy")) == ["part-00000.spacy", "part-00001.spacy"]
    assert values(read_docbin(root / "out")) == expected
    assert values(read_docbin(root / "out" / "part-00001.spacy", spacy.blank("en"))) == expected[4:]


@pytest.mark.heavy  # a fresh Python process
def test_read_in_a_fresh_process(annotated):
    root, expected = annotated
    code = (
        "import json, sys; from spacy_luke.annotate import read_docbin; "
        "docs = read_docbin(sys.argv[1]); "
        "print(json.dumps([[[e.kb_id_, e._.luke_score, e._.luke_types, e._.luke_kb_scores] for e in d.ents] for d in docs]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(root / "out")], capture_output=True, text=True, check=True)
    assert rounded(json.loads(done.stdout)) == [[e[3:] for e in doc["ents"]] for doc in expected]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such DocBin shard or annotate output folder"):
        list(read_docbin(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"holds no DocBin shard \(part-\*.spacy\).*--format docbin"):
        list(read_docbin(tmp_path))
