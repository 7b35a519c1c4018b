"""annotate: streaming in constant memory, resumable shards, bad lines, every pipe's fields,
device selection (without a GPU), the command line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_luke.annotate import annotate
from spacy_luke.annotate.device import DeviceError, plan_device
from spacy_luke.annotate.inputs import BadInputError, read_records

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> Path:
    """A fast saved pipeline (entity ruler only): the streaming tests are about the runner."""
    folder = tmp_path_factory.mktemp("ruler") / "pipeline"
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "LOC", "pattern": "Tokyo"}, {"label": "PER", "pattern": "Alice"}])
    nlp.to_disk(folder)
    return folder


def write_lines(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf8") as f:
        for i in range(n):
            f.write(f"Alice went to Tokyo on day {i} .\n")
    return path


def read_shards(folder: Path):
    records = []
    for path in sorted(folder.glob("part-*.jsonl")):
        records.extend(json.loads(line) for line in path.read_text(encoding="utf8").splitlines())
    return records


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "spacy_luke", "annotate", *map(str, args)], capture_output=True, text=True, cwd=REPO, **kwargs)


# ---------------------------------------------------------------------------------- inputs


def test_reader_streams_text_jsonl_and_reports_bad_lines(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"first\n\nsecond\r\nbad \xff byte\nthird\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x", "id": 7}\n{oops\n[1]\n{"body": "y"}\n{"text": 3}\n{"text": "z"}\n', encoding="utf8")
    reported = []
    records = list(read_records([str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")], report=reported.append))
    assert [(r.index, Path(r.source).name, r.line, r.text, r.fields) for r in records] == [
        (0, "a.txt", 1, "first", {}), (1, "a.txt", 3, "second", {}), (2, "a.txt", 5, "third", {}),
        (3, "b.jsonl", 1, "x", {"id": 7}), (4, "b.jsonl", 6, "z", {}),
    ]
    assert [m.split(": ")[0] for m in reported] == [f"{tmp_path}/a.txt:4"] + [f"{tmp_path}/b.jsonl:{n}" for n in (2, 3, 4, 5)]
    assert "not UTF-8" in reported[0] and "invalid JSON" in reported[1] and "'text' field is missing" in reported[3]
    assert "got an array" in reported[2] and "the 'text' field is a number; each record needs it as a string" in reported[4]
    with pytest.raises(BadInputError, match=r"a.txt:4: not UTF-8"):
        list(read_records([str(tmp_path / "a.txt")], on_error="fail"))


def test_whole_file_mode(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n", encoding="utf8")
    records = list(read_records([str(tmp_path / "a.txt")], whole_file=True))
    assert [(r.line, r.text) for r in records] == [(0, "one\ntwo\n")]


# ---------------------------------------------------------------------------------- shards and resume


def test_shards_and_resume_after_an_interrupt(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 95)
    full = tmp_path / "full"
    annotate(str(ruler_pipeline), [str(data)], str(full), shard_size=20, progress=False)
    assert sorted(p.name for p in full.glob("part-*")) == [f"part-{i:05d}.jsonl" for i in range(5)]
    expected = read_shards(full)
    assert [r["line"] for r in expected] == list(range(1, 96))
    assert expected[0]["entities"][0] == {"start": 0, "end": 5, "label": "PER", "text": "Alice", "score": None, "kb_id": "", "kb_scores": None, "types": None}

    # an interrupted run: two shards complete, the third half written with a torn last line
    out = tmp_path / "out"
    annotate(str(ruler_pipeline), [str(data)], str(out), shard_size=20, progress=False)
    (out / "part-00004.jsonl").unlink()
    (out / "part-00003.jsonl").unlink()
    lines = (out / "part-00002.jsonl").read_text(encoding="utf8").splitlines(keepends=True)
    (out / "part-00002.jsonl").unlink()
    (out / "part-00002.jsonl.partial").write_text("".join(lines[:7]) + lines[7][:30], encoding="utf8")
    summary = annotate(str(ruler_pipeline), [str(data)], str(out), shard_size=20, progress=False)
    assert summary.written == 95 - 40 - 7
    assert read_shards(out) == expected
    assert not list(out.glob("*.partial"))
    # a complete output: nothing to do
    assert annotate(str(ruler_pipeline), [str(data)], str(out), shard_size=20, progress=False).written == 0


def test_progress_bar_counts_texts_to_a_known_total(ruler_pipeline, tmp_path, capsys):
    """Files give the bar its total (non-blank lines; bad lines and records a resume skips count as
    done), so it ends at 100% with an ETA on the way; stdin has no total."""
    from spacy_luke.annotate.inputs import count_texts

    data = write_lines(tmp_path / "in.txt", 30)
    with open(data, "a", encoding="utf8") as f:
        f.write("\n   \n")  # blank lines: not texts
    (tmp_path / "b.jsonl").write_text('{"text": "Alice"}\n{oops\n\n{"text": "Tokyo"}\n', encoding="utf8")
    inputs = [str(data), str(tmp_path / "b.jsonl")]
    assert count_texts(inputs) == 33 and count_texts(["-"]) is None
    assert count_texts([str(data)], whole_file=True) == 1
    out = tmp_path / "out"
    annotate(str(ruler_pipeline), inputs, str(out), shard_size=10, progress=True, report=lambda m: None)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in bar if line.startswith("annotate:")][-1]
    assert "100%" in last and "33/33" in last and "texts" in last and "words/s" in last, last
    (out / "part-00003.jsonl").unlink()  # a resume: the 30 records kept count as done
    annotate(str(ruler_pipeline), inputs, str(out), shard_size=10, progress=True, report=lambda m: None)
    last = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("annotate:")][-1]
    assert "100%" in last and "33/33" in last, last


def test_another_job_in_the_output_folder_is_refused(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 5)
    annotate(str(ruler_pipeline), [str(data)], str(tmp_path / "out"), shard_size=20, progress=False)
    with pytest.raises(ValueError, match="another job.*shard_size.*--overwrite"):
        annotate(str(ruler_pipeline), [str(data)], str(tmp_path / "out"), shard_size=3, progress=False)
    assert annotate(str(ruler_pipeline), [str(data)], str(tmp_path / "out"), shard_size=3, overwrite=True, progress=False).written == 5


@pytest.mark.heavy  # runs the command line and kills it
def test_killed_run_resumes_complete_and_unduplicated(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 60000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "spacy_luke", "annotate", str(ruler_pipeline), str(data), "-o", str(out),
                             "--shard-size", "5000", "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("part-*.jsonl"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(out.glob("part-*.jsonl"))) < 12
    result = run_cli(ruler_pipeline, data, "-o", out, "--shard-size", "5000", "--quiet")
    assert result.returncode == 0, result.stderr
    records = read_shards(out)
    assert [r["line"] for r in records] == list(range(1, 60001))
    assert records[-1]["text"] == "Alice went to Tokyo on day 59999 ."


@pytest.mark.heavy  # two command-line runs over 20,000 and 200,000 lines
def test_memory_stays_flat_over_a_large_input(ruler_pipeline, tmp_path):
    """Peak memory of a 200,000-line run is that of a 20,000-line run: nothing accumulates."""
    peaks = []
    for n in (20000, 200000):
        data = write_lines(tmp_path / f"in-{n}.txt", n)
        code = (
            "import resource, sys; from spacy_luke.annotate import annotate; "
            f"annotate({str(ruler_pipeline)!r}, [{str(data)!r}], {str(tmp_path / f'out-{n}')!r}, progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stdout.split()[-1]) / 1024)  # MB
        assert len(read_shards(tmp_path / f"out-{n}")) == n
    assert peaks[1] - peaks[0] < 40, peaks


# ---------------------------------------------------------------------------------- our pipes' fields


def test_every_pipes_fields_in_the_records(ner_checkpoint, typer_checkpoint, relation_checkpoint, linker_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint)})
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(linker_checkpoint), "entity_candidates": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 2}})
    nlp.to_disk(tmp_path / "pipeline")
    texts = ["Tokyo is the capital of Japan and Houston is in Texas .", "Steve Jobs founded Apple in California ."] * 3
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "doc_id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf8")
    annotate(str(tmp_path / "pipeline"), [str(tmp_path / "in.jsonl")], str(tmp_path / "out"), progress=False)
    records = read_shards(tmp_path / "out")
    expected_docs = list(spacy.load(tmp_path / "pipeline").pipe(texts))
    assert [r["doc_id"] for r in records] == list(range(6)) and [r["line"] for r in records] == list(range(1, 7))
    for record, doc in zip(records, expected_docs):
        assert [(e["start"], e["end"], e["label"]) for e in record["entities"]] == [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        for e, ent in zip(record["entities"], doc.ents):
            assert e["score"] == pytest.approx(ent._.luke_score) and e["kb_id"] == ent.kb_id_
            assert e["types"] == pytest.approx(ent._.luke_types) and len(e["kb_scores"]) == 2
        assert [(r["head"], r["tail"], r["label"]) for r in record["relations"]] == [
            (list(r["head"]), list(r["tail"]), r["label"]) for r in doc._.luke_relations
        ]
    assert sum(len(r["entities"]) for r in records) > 0


def test_docbin_shards(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 25)
    annotate(str(ruler_pipeline), [str(data)], str(tmp_path / "out"), output_format="docbin", shard_size=10, progress=False)
    docs = [d for p in sorted((tmp_path / "out").glob("part-*.spacy")) for d in DocBin().from_disk(p).get_docs(spacy.blank("en").vocab)]
    assert [d.text for d in docs] == [f"Alice went to Tokyo on day {i} ." for i in range(25)]
    assert all([e.label_ for e in d.ents] == ["PER", "LOC"] for d in docs)


def test_a_luke_checkpoint_gets_sentencizer_and_ner(ner_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("Tokyo is in Japan . Alice met Bob .\n", encoding="utf8")
    annotate(str(ner_checkpoint), [str(tmp_path / "in.txt")], str(tmp_path / "out"), progress=False)
    record = read_shards(tmp_path / "out")[0]
    assert record["text"] == "Tokyo is in Japan . Alice met Bob ." and all(e["score"] is not None for e in record["entities"])


def test_executor_and_its_old_name_engine(ruler_pipeline, tmp_path, capsys):
    """annotate's local / Ray choice is ``executor`` (``--executor``); ``engine`` (``--engine``), the
    name of a pipe's torch / ONNX Runtime choice, still works with a deprecation warning."""
    from spacy_luke.annotate.run import EXECUTORS
    from spacy_luke.cli import main
    from spacy_luke.cli.annotate import EXECUTORS as CLI_EXECUTORS

    assert CLI_EXECUTORS == EXECUTORS
    data = str(write_lines(tmp_path / "in.txt", 5))
    annotate(str(ruler_pipeline), [data], str(tmp_path / "new"), executor="local", progress=False)
    with pytest.warns(DeprecationWarning, match=r"engine=\.\.\.\) is deprecated: use executor="):
        annotate(str(ruler_pipeline), [data], str(tmp_path / "old"), engine="local", progress=False)
    assert read_shards(tmp_path / "old") == read_shards(tmp_path / "new") != []
    with pytest.raises(ValueError, match="executor='ray' and its old name engine='local' disagree"), pytest.warns(DeprecationWarning):
        annotate(str(ruler_pipeline), [data], str(tmp_path / "both"), executor="ray", engine="local", progress=False)
    with pytest.raises(ValueError, match=r"executor='dask': choose one of \('local', 'ray', 'ray-data'\)"):
        annotate(str(ruler_pipeline), [data], str(tmp_path / "bad"), executor="dask", progress=False)
    capsys.readouterr()
    assert main(["annotate", str(ruler_pipeline), data, "-o", str(tmp_path / "cli"), "--engine", "local", "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == ["warning: --engine is deprecated, use --executor (a pipe's engine is what runs its predictions)"]
    assert read_shards(tmp_path / "cli") == read_shards(tmp_path / "new")
    assert main(["annotate", str(ruler_pipeline), data, "-o", str(tmp_path / "cli2"), "--executor", "ray", "--engine", "local", "--quiet"]) == 2
    assert "error: --executor ray and --engine local (its old name) disagree: give --executor only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    shown = capsys.readouterr().out
    assert "--executor" in shown and "--engine" not in shown  # the old name works, unlisted


# ---------------------------------------------------------------------------------- device selection


def test_device_plans_without_a_gpu():
    cpu = plan_device(None, None, None, cuda_available=False, device_count=0)
    assert (cpu.device, cpu.precision, cpu.batch_cost_factor, cpu.is_gpu) == ("cpu", None, 1, False)
    assert plan_device(None, "int8", 5000, cuda_available=True, device_count=1).max_batch_cost == 5000
    gpu = plan_device(1, "bfloat16", None, cuda_available=True, device_count=2, bf16_supported=True)
    assert (gpu.device, gpu.precision, gpu.batch_cost_factor, gpu.is_gpu) == ("cuda:1", "bfloat16", 8, True)
    old = plan_device(0, "bfloat16", None, cuda_available=True, device_count=1, bf16_supported=False)
    assert old.precision == "float16" and "no bfloat16" in old.notes[0]
    int8 = plan_device(0, "int8", None, cuda_available=True, device_count=1)
    assert int8.precision == "float32" and "does not run on GPUs" in int8.notes[0]
    with pytest.raises(DeviceError, match="--gpu-id 0: torch sees no CUDA device"):
        plan_device(0, None, None, cuda_available=False, device_count=0)
    with pytest.raises(DeviceError, match="--gpu-id 2: this machine has 2 CUDA device"):
        plan_device(2, None, None, cuda_available=True, device_count=2)


def test_apply_device_sets_every_luke_pipe(ner_checkpoint, typer_checkpoint):
    from spacy_luke.annotate.device import DevicePlan, apply_device
    from spacy_luke.layers import luke_shim

    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint)})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    done = apply_device(nlp, DevicePlan("cpu", "int8", batch_cost_factor=2))
    assert len(done) == 2
    for _, pipe in nlp.pipeline:
        assert pipe.cfg["precision"] == "int8" and pipe.cfg["max_batch_cost"] == 2 * 16384 and pipe.is_loaded
        assert luke_shim(pipe.model).precision == "int8" and luke_shim(pipe.model).device_name == "cpu"


# ---------------------------------------------------------------------------------- command line


@pytest.mark.heavy  # runs the command line
def test_cli_errors_are_one_line(ruler_pipeline, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{nope\n', encoding="utf8")
    result = run_cli(ruler_pipeline, tmp_path / "bad.jsonl", "-o", tmp_path / "out", "--on-error", "fail", "--quiet")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path}/bad.jsonl:2: invalid JSON")
    result = run_cli(ruler_pipeline, tmp_path / "bad.jsonl", "-o", tmp_path / "out2", "--gpu-id", "0", "--quiet")
    assert result.returncode == 2 and "torch sees no CUDA device" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(ruler_pipeline, tmp_path / "missing.txt", "-o", tmp_path / "out3")
    assert result.returncode == 2 and "missing.txt: no such input file" in result.stderr
    result = run_cli(ruler_pipeline, tmp_path / "bad.jsonl", "-o", tmp_path / "out4", "--quiet")
    assert result.returncode == 0 and "bad.jsonl:2: invalid JSON" in result.stderr and "Wrote 1 docs" in result.stderr
