"""annotate's output folder: one job at a time (a lock), what makes a job the same (the manifest),
resuming a grown input, broken manifests, what --overwrite removes, strict JSON, hard inputs,
expected faults and worker processes that end with their parent."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_luke.annotate import annotate
from spacy_luke.annotate.folder_lock import FolderInUseError
from spacy_luke.annotate.job import ManifestError
from spacy_luke.annotate.run import EmptyInputError
from spacy_luke.annotate.shards import OutputFolderError, RunStoppedError

REPO = Path(__file__).resolve().parents[2]


def make_ruler(folder: Path, patterns=(("LOC", "Tokyo"), ("PER", "Alice"))) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": label, "pattern": text} for label, text in patterns])
    nlp.to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> Path:
    return make_ruler(tmp_path_factory.mktemp("ruler") / "pipeline")


def write_lines(path: Path, n: int, start: int = 0, mode: str = "w") -> Path:
    with open(path, mode, encoding="utf8") as f:
        for i in range(start, start + n):
            f.write(f"Alice went to Tokyo on day {i} .\n")
    return path


def shard_records(folder: Path):
    return [json.loads(line) for path in sorted(folder.glob("part-*.jsonl")) for line in path.read_text("utf8").splitlines()]


def docbin_texts(folder: Path):
    vocab = spacy.blank("en").vocab
    return [d.text for p in sorted(folder.glob("part-*.spacy")) for d in DocBin().from_disk(p).get_docs(vocab)]


def run(pipeline, inputs, output, **settings):
    return annotate(str(pipeline), [str(i) for i in inputs], str(output), progress=False, report=lambda m: None, **settings)


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "spacy_luke", "annotate", *map(str, args)], capture_output=True, text=True, cwd=REPO, **kwargs)


# ---------------------------------------------------------------------------------- one job per folder


def test_two_jobs_at_once_one_is_refused_and_every_record_is_written_once(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 20000)
    out = tmp_path / "out"
    barrier = threading.Barrier(2)
    results, errors = [], []

    def job():
        barrier.wait()
        try:
            results.append(run(ruler_pipeline, [data], out, shard_size=3000))
        except FolderInUseError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1 and len(results) == 1, (errors, results)
    assert f"{out} is in use by another annotate job (process {os.getpid()} on " in errors[0]
    assert "give this job another --output folder" in errors[0]
    assert [r["line"] for r in shard_records(out)] == list(range(1, 20001))
    assert run(ruler_pipeline, [data], out, shard_size=3000).already_complete  # the lock was released


@pytest.mark.heavy  # two command-line runs at once
def test_two_command_line_jobs_at_once(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 40000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "spacy_luke", "annotate", str(ruler_pipeline), str(data), "-o", str(out), "--shard-size", "5000", "--quiet"]
    procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((proc.wait(timeout=300), proc.stderr.read()) for proc in procs)
    (ok, ok_err), (refused, refused_err) = outcomes
    assert (ok, refused) == (0, 2), outcomes
    assert refused_err.strip().splitlines() == [refused_err.strip().splitlines()[0]] and "is in use by another annotate job" in refused_err
    assert "Traceback" not in refused_err
    records = shard_records(out)
    assert [r["line"] for r in records] == list(range(1, 40001))
    assert not list(out.glob("*.partial"))


# ---------------------------------------------------------------------------------- the same job


@pytest.mark.parametrize("fmt", ["jsonl", "docbin"])
def test_a_grown_input_resumes_its_short_last_shard(ruler_pipeline, tmp_path, fmt):
    data = write_lines(tmp_path / "in.txt", 15)
    out = tmp_path / "out"
    assert run(ruler_pipeline, [data], out, shard_size=4, output_format=fmt).written == 15
    write_lines(data, 5, start=15, mode="a")
    summary = run(ruler_pipeline, [data], out, shard_size=4, output_format=fmt)
    assert (summary.written, summary.resumed) == (5, 15)
    expected = [f"Alice went to Tokyo on day {i} ." for i in range(20)]
    if fmt == "jsonl":
        assert [r["text"] for r in shard_records(out)] == expected
        assert [len(p.read_text("utf8").splitlines()) for p in sorted(out.glob("part-*.jsonl"))] == [4, 4, 4, 4, 4]
    else:
        assert docbin_texts(out) == expected
    assert not list(out.glob("*.partial"))
    manifest = json.loads((out / "manifest.json").read_text("utf8"))
    assert manifest["complete"] and manifest["records"] == 20 and manifest["job"]["inputs"][0]["size"] == data.stat().st_size


def test_an_input_changed_in_place_is_another_job(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 6)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out, shard_size=4)
    data.write_text(data.read_text("utf8").replace("day 3 ", "day 9 "), encoding="utf8")  # same size
    with pytest.raises(OutputFolderError, match=r"another job \(different input .*in.txt \(its content\)\).*--overwrite"):
        run(ruler_pipeline, [data], out, shard_size=4)
    write_lines(data, 3)  # shorter
    with pytest.raises(OutputFolderError, match="its content"):
        run(ruler_pipeline, [data], out, shard_size=4)
    assert run(ruler_pipeline, [data], out, shard_size=4, overwrite=True).written == 3
    assert [r["line"] for r in shard_records(out)] == [1, 2, 3]


def test_an_earlier_input_that_grew_is_another_job(ruler_pipeline, tmp_path):
    """Only the last input may grow: more lines in an earlier one would renumber the records after it."""
    first, second = write_lines(tmp_path / "a.txt", 3), write_lines(tmp_path / "b.txt", 3)
    run(ruler_pipeline, [first, second], tmp_path / "out")
    write_lines(first, 1, start=3, mode="a")
    with pytest.raises(OutputFolderError, match="a.txt"):
        run(ruler_pipeline, [first, second], tmp_path / "out")


def test_a_pipeline_retrained_in_place_is_another_job(tmp_path):
    pipeline = make_ruler(tmp_path / "pipeline")
    data = write_lines(tmp_path / "in.txt", 3)
    run(pipeline, [data], tmp_path / "out")
    make_ruler(pipeline, patterns=(("LOC", "Tokyo"), ("ORG", "Alice")))  # same meta.json, new patterns
    with pytest.raises(OutputFolderError, match=r"different pipeline"):
        run(pipeline, [data], tmp_path / "out")


@pytest.mark.parametrize("setting", [{"lang": "de"}, {"precision": "bfloat16"}, {"text_field": "body"}])
def test_settings_that_change_the_records_make_another_job(ruler_pipeline, tmp_path, setting):
    data = write_lines(tmp_path / "in.txt", 3)
    run(ruler_pipeline, [data], tmp_path / "out")
    with pytest.raises(OutputFolderError, match=f"different {next(iter(setting))}"):
        run(ruler_pipeline, [data], tmp_path / "out", **setting)


def test_a_finished_job_says_so_and_an_interrupted_one_resumes(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 10)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out, shard_size=4)
    said = []
    summary = annotate(str(ruler_pipeline), [str(data)], str(out), shard_size=4, progress=False, inform=said.append)
    assert summary.already_complete and (summary.written, summary.resumed) == (0, 10)
    assert said == [f"{out} holds this job's output, complete: 10 records; nothing to do"]
    (out / "part-00002.jsonl").unlink()  # as if the run had stopped before its last shard
    said.clear()
    summary = annotate(str(ruler_pipeline), [str(data)], str(out), shard_size=4, progress=False, inform=said.append)
    assert (summary.written, summary.resumed, summary.already_complete) == (2, 8, False)
    assert said == [f"resuming the job in {out}: the records already written there are skipped"]


# ---------------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize("content", [b"", b'{"manifest_version": 2, "job": {"pipel', b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_broken_manifest_is_named_and_overwrite_starts_over(ruler_pipeline, tmp_path, content):
    data = write_lines(tmp_path / "in.txt", 5)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out, shard_size=2)
    (out / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestError, match=rf"^{out}/manifest.json: .*add --overwrite to start over"):
        run(ruler_pipeline, [data], out, shard_size=2)
    assert run(ruler_pipeline, [data], out, shard_size=2, overwrite=True).written == 5
    assert [r["line"] for r in shard_records(out)] == [1, 2, 3, 4, 5]


def test_a_manifest_of_an_older_version_is_named(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 2)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out)
    (out / "manifest.json").write_text(json.dumps({"pipeline": "x", "inputs": ["in.txt"], "shard_size": 10000}), encoding="utf8")
    with pytest.raises(ManifestError, match="older spacy-luke"):
        run(ruler_pipeline, [data], out)


def test_the_manifest_is_written_atomically(ruler_pipeline, tmp_path, monkeypatch):
    data = write_lines(tmp_path / "in.txt", 3)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out)
    before = (out / "manifest.json").read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    write_lines(data, 2, start=3, mode="a")  # the resumed job's manifest is written anew
    with pytest.raises(OSError, match="No space left"):
        run(ruler_pipeline, [data], out)
    assert (out / "manifest.json").read_bytes() == before
    assert not [p.name for p in out.iterdir() if p.name.startswith(".manifest-")]


def test_a_failed_start_does_not_block_the_corrected_command(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 3)
    out = tmp_path / "out"
    (tmp_path / "typo").mkdir()
    with pytest.raises(ValueError, match="neither a saved spaCy pipeline"):
        run(tmp_path / "typo", [data], out)
    assert run(ruler_pipeline, [data], out).written == 3


def test_overwrite_removes_only_the_jobs_own_files(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 5)
    out = tmp_path / "out"
    run(ruler_pipeline, [data], out, shard_size=2)
    (out / "notes.txt").write_text("mine", encoding="utf8")
    (out / "part-of-my-thesis.tex").write_text("mine too", encoding="utf8")
    (out / "sub").mkdir()
    run(ruler_pipeline, [data], out, shard_size=3, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        ".annotate.lock", "manifest.json", "notes.txt", "part-00000.jsonl", "part-00001.jsonl", "part-of-my-thesis.tex", "sub",
    ]


# ---------------------------------------------------------------------------------- input and output


def test_a_bom_is_dropped_and_hard_lines_are_reported_and_skipped(ruler_pipeline, tmp_path):
    deep = "[" * 100000 + "]" * 100000
    lines = [
        '\ufeff{"text": "Alice one", "n": 1}',
        '{"text": "Alice two", "deep": ' + deep + "}",
        '{"text": "Alice three", "big": ' + "9" * 5000 + "}",
        '{"text": "Alice four", "huge": 1e999, "nan": NaN}',
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    (tmp_path / "in.txt").write_bytes(b"\xef\xbb\xbfAlice five\n")
    reported = []
    summary = annotate(str(ruler_pipeline), [str(tmp_path / "in.jsonl"), str(tmp_path / "in.txt")], str(tmp_path / "out"),
                       progress=False, report=reported.append)
    assert (summary.written, summary.skipped_bad) == (3, 2)
    assert [m.split(": ", 1)[0] for m in reported] == [f"{tmp_path}/in.jsonl:2", f"{tmp_path}/in.jsonl:3"]
    assert "nested too deeply" in reported[0] and "cannot be read" in reported[1]
    text = (tmp_path / "out" / "part-00000.jsonl").read_text("utf8")

    def strict(name):
        raise ValueError(f"not strict JSON: {name}")

    records = [json.loads(line, parse_constant=strict) for line in text.splitlines()]
    assert [r["text"] for r in records] == ["Alice one", "Alice four", "Alice five"]
    assert records[0]["n"] == 1 and records[1]["huge"] is None and records[1]["nan"] is None


@pytest.mark.parametrize("content", [b"", b"\n  \n\n", b"{oops\n[1]\n"])
def test_an_input_without_texts_is_an_error(ruler_pipeline, tmp_path, content):
    (tmp_path / "in.jsonl").write_bytes(content)
    with pytest.raises(EmptyInputError, match=f"no texts in {tmp_path}/in.jsonl: "):
        run(ruler_pipeline, [tmp_path / "in.jsonl"], tmp_path / "out")
    (tmp_path / "in.jsonl").write_text('{"text": "Alice"}\n', encoding="utf8")
    assert run(ruler_pipeline, [tmp_path / "in.jsonl"], tmp_path / "out").written == 1  # nothing blocks the next run


# ---------------------------------------------------------------------------------- expected faults


def test_a_full_disk_stops_with_a_resumable_message(ruler_pipeline, tmp_path, monkeypatch):
    import spacy_luke.annotate.shards as shards

    data = write_lines(tmp_path / "in.txt", 100)
    out = tmp_path / "out"
    real, calls = shards.json_line, [0]

    def fills_up(record):
        calls[0] += 1
        if calls[0] > 70:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(record)

    monkeypatch.setattr(shards, "json_line", fills_up)
    with pytest.raises(RunStoppedError, match=f"^{out}: no space left on device: .*run the same command again to resume"):
        run(ruler_pipeline, [data], out, shard_size=30, batch_size=8)
    monkeypatch.setattr(shards, "json_line", real)
    summary = run(ruler_pipeline, [data], out, shard_size=30, batch_size=8)
    assert summary.resumed > 0 and summary.written + summary.resumed == 100
    assert [r["line"] for r in shard_records(out)] == list(range(1, 101))


@pytest.mark.heavy  # runs the command line with two worker processes and kills it
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_worker_processes_end_with_their_parent(ruler_pipeline, tmp_path):
    data = write_lines(tmp_path / "in.txt", 400000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spacy_luke", "annotate", str(ruler_pipeline), str(data), "-o", str(tmp_path / "out"),
         "--n-process", "2", "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def children(pid):
        found = set()
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(c) for c in (task / "children").read_text().split())
        return found

    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and len(workers) < 2:
        workers = {c for c in children(proc.pid) if Path(f"/proc/{c}").exists()}
        time.sleep(0.1)
    assert len(workers) >= 2, "the workers did not start"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended (only its exit status is left)


@pytest.mark.heavy  # runs the command line
def test_the_command_line_says_what_it_finds_and_exits_as_documented(ruler_pipeline, tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf8")
    result = run_cli(ruler_pipeline, tmp_path / "empty.txt", "-o", tmp_path / "empty-out", "--quiet")
    assert result.returncode == 2 and result.stderr.strip() == f"error: no texts in {tmp_path}/empty.txt: the input is empty or only blank lines"

    data = write_lines(tmp_path / "in.txt", 60000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "spacy_luke", "annotate", str(ruler_pipeline), str(data), "-o", str(out),
                             "--shard-size", "5000", "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("part-*.jsonl")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert proc.stderr.read().strip().splitlines()[-1] == (
        f"error: interrupted: run the same command again to resume (the records written to {out} are kept)"
    )
    result = run_cli(ruler_pipeline, data, "-o", out, "--shard-size", "5000", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"Resuming the job in {out}: the records already written there are skipped"
    assert lines[-1].startswith("Wrote ") and "records were already there" in lines[-1]
    assert [r["line"] for r in shard_records(out)] == list(range(1, 60001))
    result = run_cli(ruler_pipeline, data, "-o", out, "--shard-size", "5000", "--quiet")
    assert result.returncode == 0 and result.stderr.strip() == f"{out} holds this job's output, complete: 60000 records; nothing to do"
