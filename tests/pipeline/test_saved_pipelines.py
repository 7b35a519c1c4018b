"""A pipeline saved by the code before the thinc model owned the path from Docs to scores (commit
19ee252) loads and annotates as it did: its config.cfg, each pipe's cfg and tokenizer files are
kept as test data (``tests/pipeline/data/saved_before_redesign``, written by its ``make_data.py``), its
weights are rebuilt here from the same random-weight checkpoints."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import spacy

DATA = Path(__file__).resolve().parent / "data" / "saved_before_redesign"
sys.path.insert(0, str(DATA))

from pipelines_before import TEXTS, annotations, build_checkpoints, build_pipeline  # noqa: E402

LUKE_PIPES = ("luke_ner", "luke_entity_typer", "luke_relation_extractor", "luke_entity_vectors", "luke_entity_linker")


def assert_close(got, expected, path="") -> None:
    """Equal structure, strings and integers; floats within 2e-4 (they were rounded to 4 decimals)."""
    if isinstance(expected, float):
        assert got == pytest.approx(expected, abs=2e-4, rel=1e-3), path
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (path, got, expected)
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (path, got, expected)
        for key in expected:
            assert_close(got[key], expected[key], f"{path}.{key}")
    else:
        assert got == expected, (path, got, expected)


def test_a_pipeline_saved_before_the_redesign_loads_and_annotates_the_same(tmp_path):
    expected = json.loads((DATA / "expected.json").read_text(encoding="utf8"))
    fresh = tmp_path / "fresh"
    build_pipeline(build_checkpoints(tmp_path / "checkpoints")).to_disk(fresh)
    old = tmp_path / "old"
    shutil.copytree(DATA / "pipeline", old)
    for name in LUKE_PIPES:
        assert not (old / name / "luke" / "model.safetensors").exists()  # only the config files are kept
        shutil.copy(fresh / name / "luke" / "model.safetensors", old / name / "luke" / "model.safetensors")
    with pytest.warns(DeprecationWarning, match="entity_candidates"):  # its linker config says `candidates`
        nlp = spacy.load(old)
    assert nlp.pipe_names == ["sentencizer", *LUKE_PIPES]
    got = [annotations(doc) for doc in nlp.pipe(TEXTS)]
    assert sum(len(doc["ents"]) for doc in expected) > 20 and sum(len(doc["relations"]) for doc in expected) > 20
    assert_close(got, expected)
