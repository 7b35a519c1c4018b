"""spacy_luke.ray.LukeAnnotator: a batch (pyarrow, pandas, numpy columns) in, the same columns plus
annotate's record columns out; on Ray Data (a local 2-CPU cluster) the same records as annotate's
local executor."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
import torch

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from spacy_luke.annotate import annotate  # noqa: E402
from spacy_luke.annotate.parquet import record_schema, table_records  # noqa: E402
from spacy_luke.ray import LukeAnnotator  # noqa: E402
from support.ner import PARITY_TEXTS  # noqa: E402
from support.annotate_runs import local_ray  # noqa: E402
from support.saved_pipelines import save_luke_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def luke_pipeline(ner_checkpoint, typer_checkpoint, relation_checkpoint, tmp_path_factory) -> str:
    return save_luke_pipeline(tmp_path_factory.mktemp("luke") / "pipeline", ner_checkpoint, typer_checkpoint, relation_checkpoint)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list:
    """40 texts in 5 Parquet files of 8 rows, with an id and a carried column."""
    folder = tmp_path_factory.mktemp("corpus")
    texts = PARITY_TEXTS[:40]
    for n in range(5):
        rows = range(8 * n, 8 * n + 8)
        pq.write_table(pa.table({"id": list(rows), "body": [texts[i] for i in rows], "lang": ["en"] * 8}), folder / f"in-{n}.parquet")
    return [str(folder / f"in-{n}.parquet") for n in range(5)]


def one_thread(function):
    """Ray gives a 1-CPU actor one torch thread; float32 sums depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function()
    finally:
        torch.set_num_threads(threads)


def local_records(pipeline: str, corpus: list, out: Path, batch_size: int) -> dict:
    one_thread(lambda: annotate(pipeline, corpus, str(out), text_field="body", batch_size=batch_size, progress=False))
    records = [json.loads(line) for path in sorted(out.glob("part-*.jsonl")) for line in path.read_text("utf8").splitlines()]
    return {r["id"]: {k: r[k] for k in ("entities", "relations", "cats")} for r in records}


def test_a_batch_in_every_format_gets_the_local_executors_records(luke_pipeline, corpus, tmp_path):
    expected = local_records(luke_pipeline, corpus, tmp_path / "local", batch_size=8)
    assert sum(len(r["entities"]) for r in expected.values()) > 0 and any(r["relations"] for r in expected.values())
    annotator = one_thread(lambda: LukeAnnotator(luke_pipeline, text_column="body", batch_size=8))
    batch = pq.read_table(corpus[1])
    got = one_thread(lambda: annotator(batch))
    assert got.column_names == ["id", "body", "lang", "entities", "relations", "cats"]
    assert got.select(["id", "body", "lang"]).equals(batch)
    for name in ("entities", "relations", "cats"):
        assert got.schema.field(name).type == record_schema().field(name).type
    rows = table_records(got)
    assert [{k: r[k] for k in ("entities", "relations", "cats")} for r in rows] == [expected[i] for i in range(8, 16)]

    pd = pytest.importorskip("pandas")
    for form in (batch.to_pandas(), {name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.column_names}):
        again = one_thread(lambda: annotator(form))
        assert again.select(["entities", "relations", "cats"]).equals(got.select(["entities", "relations", "cats"]))
        assert again.select(["id", "body", "lang"]).to_pylist() == batch.to_pylist()


def test_null_texts_are_kept_and_a_missing_column_is_named(tmp_path):
    ruler = spacy.blank("en")
    ruler.add_pipe("entity_ruler").add_patterns([{"label": "ORG", "pattern": "Acme"}])
    ruler.to_disk(tmp_path / "ruler")
    annotator = LukeAnnotator(str(tmp_path / "ruler"))
    batch = pa.table({"text": ["Acme rose .", None, "no names"], "entities": [1, 2, 3]})
    got = annotator(batch)
    assert got.column_names == ["text", "entities", "relations", "cats"]  # ours replace the input's entities
    assert [[e["label"] for e in row] if row is not None else None for row in got.column("entities").to_pylist()] == [["ORG"], None, []]
    assert got.column("cats").to_pylist()[1] is None and got.column("relations").to_pylist()[2] == []
    with pytest.raises(ValueError, match=r"no 'text' column \(columns: body\): give LukeAnnotator text_column="):
        annotator(pa.table({"body": ["x"]}))


@pytest.mark.heavy  # starts a local Ray cluster and two actors
def test_ray_data_map_batches_same_records_as_the_local_executor(luke_pipeline, corpus, tmp_path):
    ray = pytest.importorskip("ray")
    expected = local_records(luke_pipeline, corpus, tmp_path / "local", batch_size=8)
    # Two 1-CPU actors hold two CPUs for the whole run; Ray Data's file listing, read and write
    # tasks need one more, or they wait for the actors forever: 3 logical CPUs on the 2 cores.
    with local_ray(3):
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.read_parquet(corpus, override_num_blocks=5).map_batches(
            LukeAnnotator, fn_constructor_kwargs={"pipeline": luke_pipeline, "text_column": "body", "batch_size": 8},
            batch_format="pyarrow", batch_size=8, concurrency=2, num_cpus=1,
        )
        ds.write_parquet(str(tmp_path / "ray"))
    table = pa.concat_tables([pq.read_table(path) for path in sorted((tmp_path / "ray").glob("*.parquet"))])
    rows = table_records(table)
    assert sorted(r["id"] for r in rows) == list(range(40)) and all(r["lang"] == "en" for r in rows)
    assert {r["id"]: {k: r[k] for k in ("entities", "relations", "cats")} for r in rows} == expected
