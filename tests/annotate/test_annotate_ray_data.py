"""``annotate --executor ray-data``: many files on Ray Data (a local cluster), one output per input
with the local executor's records, a re-run skipping the complete outputs and redoing the rest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from spacy_luke.annotate import annotate  # noqa: E402
from spacy_luke.annotate.parquet import table_records  # noqa: E402
from support.annotate_runs import local_ray, run  # noqa: E402

pytestmark = pytest.mark.heavy  # starts a Ray cluster and its actors


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("ruler") / "pipeline"
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "ORG", "pattern": "Acme"}, {"label": "GPE", "pattern": "Paris"}])
    nlp.to_disk(folder)
    return str(folder)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list:
    """Six files: text and JSONL (one bad line), two with the same basename in different folders."""
    root = tmp_path_factory.mktemp("many")
    paths = []
    for k in range(6):
        folder = root / ("a" if k < 3 else "b")
        folder.mkdir(exist_ok=True)
        if k % 2:
            lines = [json.dumps({"n": i, "text": f"Acme opened in Paris, file {k} line {i}."}) for i in range(7 + k)]
            lines.insert(2, "{bad json")
            path = folder / f"part{k % 3}.jsonl"
            path.write_text("\n".join(lines) + "\n", encoding="utf8")
        else:
            path = folder / f"part{k % 3}.txt"
            path.write_text("".join(f"Acme in Paris, file {k} line {i}.\n" for i in range(5 + k)), encoding="utf8")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def cluster():
    with local_ray(3):  # two 1-CPU actors and one CPU for Ray Data's own tasks, on the 2 cores
        yield


def local_records_by_source(pipeline, inputs, out: Path) -> dict:
    run(pipeline, inputs, out)
    records = [json.loads(line) for path in sorted(out.glob("part-*.jsonl")) for line in path.read_text("utf8").splitlines()]
    by_source = {}
    for record in records:
        by_source.setdefault(record["source"], []).append(record)
    return by_source


def outputs(folder: Path, suffix: str) -> dict:
    out = {}
    for path in sorted(folder.glob(f"*{suffix}")):
        if suffix == ".jsonl":
            out[path.name] = [json.loads(line) for line in path.read_text("utf8").splitlines()]
        else:
            import pyarrow.parquet as pq

            out[path.name] = table_records(pq.read_table(path))
    return out


def test_one_output_per_input_with_the_local_records(cluster, ruler_pipeline, inputs, tmp_path):
    expected = local_records_by_source(ruler_pipeline, inputs, tmp_path / "local")
    reports = []
    summary = annotate(ruler_pipeline, inputs, str(tmp_path / "rd"), executor="ray-data", ray_concurrency=2, progress=False, report=reports.append)
    assert (summary.written, summary.skipped_bad) == (sum(len(v) for v in expected.values()), 3)
    assert sorted(reports) == sorted(f"{inputs[k]}:3: invalid JSON (Expecting property name enclosed in double quotes at column 2); skipped" for k in (1, 3, 5))
    got = outputs(tmp_path / "rd", ".jsonl")
    names = [f"{k:05d}-{Path(name).name}.jsonl" for k, name in enumerate(inputs)]
    assert sorted(got) == names
    assert [got[name] for name in names] == [expected[source] for source in inputs]

    # a folder stands for the input files below it (sorted by path): here the same six
    run(ruler_pipeline, [str(Path(inputs[0]).parents[1])], tmp_path / "rd-pq", executor="ray-data", ray_concurrency=2, output_format="parquet")
    got = outputs(tmp_path / "rd-pq", ".parquet")
    assert [got[name[: -len(".jsonl")] + ".parquet"] for name in names] == [expected[source] for source in inputs]


def test_a_rerun_skips_complete_outputs_and_redoes_the_rest(cluster, ruler_pipeline, inputs, tmp_path):
    out = tmp_path / "rd"
    run(ruler_pipeline, inputs, out, executor="ray-data", ray_concurrency=2)
    whole = outputs(out, ".jsonl")
    names = sorted(whole)
    # as a killed run leaves it: two outputs missing, one of them cut short as a partial
    (out / names[1]).unlink()
    partial = (out / names[4]).read_text("utf8").splitlines(keepends=True)
    (out / names[4]).unlink()
    (out / (names[4] + ".partial")).write_text("".join(partial[:2]) + partial[2][:10], encoding="utf8")
    before = {name: (out / name).stat().st_mtime_ns for name in names if (out / name).exists()}
    summary = run(ruler_pipeline, inputs, out, executor="ray-data", ray_concurrency=2)
    assert summary.written == len(whole[names[1]]) + len(whole[names[4]])
    assert outputs(out, ".jsonl") == whole and not list(out.glob("*.partial"))
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in before.items())  # the complete ones untouched
    again = run(ruler_pipeline, inputs, out, executor="ray-data", ray_concurrency=2)
    assert again.written == 0 and again.already_complete
    with pytest.raises(ValueError, match="another job"):
        run(ruler_pipeline, inputs[:3], out, executor="ray-data")
