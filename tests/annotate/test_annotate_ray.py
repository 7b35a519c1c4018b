"""``annotate --executor ray`` on a local Ray cluster (2 CPUs): exactly the local engine's shards."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import DocBin

ray = pytest.importorskip("ray")

from support.tokenizers import make_sentences  # noqa: E402
from spacy_luke.annotate import annotate  # noqa: E402
from spacy_luke.annotate.ray_engine import MISSING_RAY, annotate_ray  # noqa: E402
from support.ner import MAX_LEN, PARITY_TEXTS  # noqa: E402

pytestmark = pytest.mark.heavy  # starts a Ray cluster, its actors and `python -m spacy_luke`


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list:
    """A text file and a JSONL file (carried fields of every JSON kind, one bad line): 300 records."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    texts = [f"{s} Acme Corp opened in Paris on day {i}." for i, s in enumerate(make_sentences(200, seed=5))][:300]
    (folder / "a.txt").write_text("\n".join(texts[:120]) + "\n\n", encoding="utf8")
    lines = []
    for i, text in enumerate(texts[120:]):
        record = {"id": i, "ratio": i / 7, "tags": ["x", i % 3, None], "meta": {"ok": i % 2 == 0, "big": 2**62 + i}, "text": text}
        lines.append(json.dumps(record, ensure_ascii=i % 2 == 0))
    lines.insert(40, "{not json")
    (folder / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    return [str(folder / "a.txt"), str(folder / "b.jsonl")]


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> str:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG", "pattern": "Acme Corp"}, {"label": "GPE", "pattern": [{"LOWER": "paris"}]}])
    folder = tmp_path_factory.mktemp("ruler") / "pipeline"
    nlp.to_disk(folder)
    return str(folder)


@pytest.fixture(scope="module")
def luke_pipeline(ner_checkpoint, tmp_path_factory) -> str:
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": MAX_LEN})
    folder = tmp_path_factory.mktemp("luke") / "pipeline"
    nlp.to_disk(folder)
    return str(folder)


@pytest.fixture(scope="module")
def cluster():
    """One local 2-CPU cluster for the module: annotate_ray joins it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


def run(pipeline, inputs, output, **settings):
    return annotate(pipeline, inputs, str(output), progress=False, report=lambda message: None, **settings)


def files(folder: Path) -> dict:
    """The output of a job (its manifest and shards; not the lock, which names its last holder)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != ".annotate.lock"}


def assert_same_shards(expected: Path, got: Path) -> None:
    assert sorted(files(got)) == sorted(files(expected))
    for name, data in files(expected).items():
        assert files(got)[name] == data, name


def test_cli_starts_a_local_cluster(ruler_pipeline, inputs, tmp_path):
    """Runs before the module's cluster exists: the command starts (and stops) its own."""
    run(ruler_pipeline, inputs, tmp_path / "local", shard_size=100)
    command = [sys.executable, "-m", "spacy_luke", "annotate", ruler_pipeline, *inputs, "--output", str(tmp_path / "ray")]
    result = subprocess.run([*command, "--shard-size", "100", "--executor", "ray", "--concurrency", "2", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Wrote 300 docs" in result.stderr and "1 bad lines skipped" in result.stderr
    assert_same_shards(tmp_path / "local", tmp_path / "ray")


def test_entity_ruler_jsonl_and_docbin(cluster, ruler_pipeline, inputs, tmp_path):
    local = run(ruler_pipeline, inputs, tmp_path / "local", shard_size=64, batch_size=16)
    got = run(ruler_pipeline, inputs, tmp_path / "ray", shard_size=64, batch_size=16, executor="ray", ray_concurrency=2)
    assert (got.written, got.words, got.skipped_bad) == (local.written, local.words, local.skipped_bad) == (300, local.words, 1)
    assert_same_shards(tmp_path / "local", tmp_path / "ray")
    records = [json.loads(line) for line in (tmp_path / "ray" / "part-00004.jsonl").read_text(encoding="utf8").splitlines()]
    assert records[-1]["meta"]["big"] == 2**62 + 179 and records[-1]["source"].endswith("b.jsonl")
    assert any(e["label"] == "ORG" for e in records[0]["entities"])

    run(ruler_pipeline, inputs, tmp_path / "local-db", shard_size=128, output_format="docbin")
    run(ruler_pipeline, inputs, tmp_path / "ray-db", shard_size=128, output_format="docbin", executor="ray", ray_concurrency=2)
    vocab = spacy.blank("en").vocab
    for name in ("part-00000.spacy", "part-00001.spacy", "part-00002.spacy"):
        expected = [(d.to_json(), d.user_data) for d in DocBin().from_disk(tmp_path / "local-db" / name).get_docs(vocab)]
        got_docs = [(d.to_json(), d.user_data) for d in DocBin().from_disk(tmp_path / "ray-db" / name).get_docs(vocab)]
        assert got_docs == expected and expected


def test_luke_ner_pipeline(cluster, luke_pipeline, tmp_path):
    (tmp_path / "in.txt").write_text("\n".join(PARITY_TEXTS[:40]), encoding="utf8")
    inputs = [str(tmp_path / "in.txt")]
    # Ray gives a 1-CPU actor one torch thread (OMP_NUM_THREADS=1); float32 sums depend on the
    # thread count in their last bits, so the local reference runs on one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(luke_pipeline, inputs, tmp_path / "local", shard_size=16, batch_size=8)
    finally:
        torch.set_num_threads(threads)
    got = run(luke_pipeline, inputs, tmp_path / "ray", shard_size=16, batch_size=8, executor="ray", ray_concurrency=2)
    assert got.written == 40
    assert_same_shards(tmp_path / "local", tmp_path / "ray")
    shards = [(tmp_path / "ray" / f"part-0000{n}.jsonl").read_text("utf8") for n in range(3)]
    records = [json.loads(line) for shard in shards for line in shard.splitlines()]
    scores = [e["score"] for r in records for e in r["entities"]]
    assert scores and all(0 < s <= 1 for s in scores)  # luke_ner ran (its scores are in the records)


def test_resume_with_ray_after_an_interrupted_local_run(cluster, ruler_pipeline, inputs, tmp_path):
    run(ruler_pipeline, inputs, tmp_path / "whole", shard_size=70, batch_size=8)
    run(ruler_pipeline, inputs, tmp_path / "resumed", shard_size=70, batch_size=8)
    resumed = tmp_path / "resumed"
    (resumed / "part-00004.jsonl").unlink()  # the last shard must be redone
    shard = (resumed / "part-00002.jsonl").read_bytes()  # an interrupted shard: 25 lines and a torn one
    (resumed / "part-00002.jsonl").unlink()
    keep = b"".join(shard.splitlines(keepends=True)[:25])
    (resumed / "part-00002.jsonl.partial").write_bytes(keep + b'{"torn": ')
    (resumed / "part-00003.jsonl").unlink()
    got = run(ruler_pipeline, inputs, resumed, shard_size=70, batch_size=8, executor="ray", ray_concurrency=2)
    assert got.written == 300 - 140 - 25
    assert_same_shards(tmp_path / "whole", resumed)
    again = run(ruler_pipeline, inputs, resumed, shard_size=70, batch_size=8, executor="ray", ray_concurrency=2)
    assert again.written == 0  # nothing left: no actors started
    assert_same_shards(tmp_path / "whole", resumed)


def test_settings_are_checked_before_any_work(cluster, ruler_pipeline, inputs, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="need 6 CPUs"):
        run(ruler_pipeline, inputs, tmp_path / "out", executor="ray", ray_concurrency=3, ray_num_cpus=2)
    with pytest.raises(ValueError, match="--num-gpus 1 without --gpu-id"):
        run(ruler_pipeline, inputs, tmp_path / "out", executor="ray", ray_num_gpus=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=re.escape(MISSING_RAY)):
        annotate_ray(ruler_pipeline, iter([]), None, plan=None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the actor's process in /proc")
def test_a_lost_actor_stops_with_a_resumable_message_and_the_rerun_completes(cluster, ruler_pipeline, tmp_path):
    import os
    import signal
    import threading
    import time

    data = tmp_path / "in.txt"
    data.write_text("".join(f"Acme Corp opened in Paris on day {i} .\n" for i in range(40000)), encoding="utf8")
    out = tmp_path / "out"
    errors = []

    def job():
        try:
            run(ruler_pipeline, [str(data)], out, shard_size=2000, batch_size=4, executor="ray")
        except Exception as err:  # noqa: BLE001 - the test looks at it
            errors.append(err)

    thread = threading.Thread(target=job)
    thread.start()

    def actor_pids():
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if (proc / "cmdline").read_bytes().startswith(b"ray::LukeAnnotator"):
                        pids.append(int(proc.name))
                except OSError:
                    pass
        return pids

    deadline = time.time() + 120
    while time.time() < deadline and not (list(out.glob("part-*.jsonl")) and actor_pids()):
        time.sleep(0.05)
    for pid in actor_pids():
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert len(errors) == 1 and type(errors[0]).__name__ == "RunStoppedError", errors
    assert str(errors[0]).startswith("a Ray actor or node was lost (") and "run the same command again to resume" in str(errors[0])
    summary = run(ruler_pipeline, [str(data)], out, shard_size=2000, batch_size=4, executor="ray")
    assert summary.resumed >= 2000 and summary.written + summary.resumed == 40000
    records = [json.loads(line) for p in sorted(out.glob("part-*.jsonl")) for line in p.read_text("utf8").splitlines()]
    assert [r["line"] for r in records] == list(range(1, 40001))
