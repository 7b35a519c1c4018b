"""annotate on a CUDA GPU: ``--gpu-id`` gives the CPU's records (float32: the same entities, scores
within 1e-4), ``--precision bfloat16`` runs (or falls back to float16 where the GPU lacks it),
``int8`` falls back to float32 with a note; LukeAnnotator with ``gpu_id``; Ray GPU actors.

Marked ``gpu``: skipped where torch sees no CUDA device (``benchmarks/gpu_check.sh`` runs them).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from support.ner import PARITY_TEXTS
from support.saved_pipelines import save_luke_pipeline

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is false)"),
]
REPO = Path(__file__).resolve().parents[2]
SCORE_TOLERANCE = 1e-4  # float32 on the GPU against float32 on the CPU


@pytest.fixture(scope="module")
def luke_pipeline(ner_checkpoint, typer_checkpoint, tmp_path_factory) -> str:
    return save_luke_pipeline(tmp_path_factory.mktemp("gpu-pipeline") / "pipeline", ner_checkpoint, typer_checkpoint)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("gpu-corpus") / "in.txt"
    path.write_text("\n".join(PARITY_TEXTS) + "\n", encoding="utf8")
    return str(path)


def annotate_cli(pipeline, corpus, out: Path, *flags):
    result = subprocess.run(
        [sys.executable, "-m", "spacy_luke", "annotate", pipeline, corpus, "-o", str(out), "--quiet", *flags],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for path in sorted(out.glob("part-*.jsonl")) for line in path.read_text("utf8").splitlines()]
    return records, result.stderr


def assert_same_records(got, expected):
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in got] == [
        [(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in expected
    ]
    pairs = [(a, b) for r, s in zip(got, expected) for a, b in zip(r["entities"], s["entities"])]
    assert pairs
    for a, b in pairs:
        assert abs(a["score"] - b["score"]) <= SCORE_TOLERANCE
        assert max(abs(a["types"][k] - b["types"][k]) for k in b["types"]) <= SCORE_TOLERANCE


def test_gpu_id_gives_the_cpu_records(luke_pipeline, corpus, tmp_path):
    expected, _ = annotate_cli(luke_pipeline, corpus, tmp_path / "cpu")
    got, stderr = annotate_cli(luke_pipeline, corpus, tmp_path / "gpu", "--gpu-id", "0")
    assert "on cuda:0" in stderr
    assert_same_records(got, expected)


def test_gpu_precisions_and_the_int8_fallback(luke_pipeline, corpus, tmp_path):
    records, stderr = annotate_cli(luke_pipeline, corpus, tmp_path / "bf16", "--gpu-id", "0", "--precision", "bfloat16")
    assert len(records) == len(PARITY_TEXTS) and all(0 < e["score"] <= 1 for r in records for e in r["entities"])
    if not torch.cuda.is_bf16_supported():
        assert "no bfloat16 support: running float16" in stderr
    _, stderr = annotate_cli(luke_pipeline, corpus, tmp_path / "int8", "--gpu-id", "0", "--precision", "int8")
    assert "int8 does not run on GPUs: running float32" in stderr


def test_luke_annotator_on_the_gpu(luke_pipeline, corpus, tmp_path):
    pa = pytest.importorskip("pyarrow")
    from spacy_luke.annotate.parquet import table_records
    from spacy_luke.ray import LukeAnnotator

    expected, _ = annotate_cli(luke_pipeline, corpus, tmp_path / "cpu")
    annotator = LukeAnnotator(luke_pipeline, gpu_id=0)
    assert any("cuda:0" in line for line in annotator.settings)
    got = table_records(annotator(pa.table({"text": PARITY_TEXTS})))
    assert_same_records(got, expected)


@pytest.mark.heavy  # a Ray cluster with a GPU actor
def test_ray_gpu_actor(luke_pipeline, corpus, tmp_path):
    pytest.importorskip("ray")
    expected, _ = annotate_cli(luke_pipeline, corpus, tmp_path / "cpu")
    got, stderr = annotate_cli(luke_pipeline, corpus, tmp_path / "ray", "--executor", "ray", "--gpu-id", "0", "--num-gpus", "1")
    assert_same_records(got, expected)
