"""annotate with Parquet: input read a batch of rows at a time, output shards with the documented
schema (read back with pyarrow and pandas), the same records as JSONL, resume as JSONL resumes."""
from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from spacy_luke.annotate import annotate  # noqa: E402
from spacy_luke.annotate.parquet import table_records  # noqa: E402
from support.annotate_runs import run  # noqa: E402

TEXTS = ["Tokyo is the capital of Japan and Houston is in Texas .", "Steve Jobs founded Apple in California .", "Alice met Bob ."]
INTERRUPT = {"after": None, "seen": 0}


@Language.component("test_parquet_interrupt")
def interrupt(doc):
    """Raises KeyboardInterrupt at the INTERRUPT["after"]-th doc (when set): a Ctrl-C mid-run."""
    INTERRUPT["seen"] += 1
    if INTERRUPT["after"] is not None and INTERRUPT["seen"] > INTERRUPT["after"]:
        raise KeyboardInterrupt
    return doc


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("ruler") / "pipeline"
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "Tokyo"}, {"label": "PER", "pattern": "Alice"}])
    nlp.add_pipe("test_parquet_interrupt")
    nlp.to_disk(folder)
    return str(folder)


def jsonl_records(folder: Path) -> list:
    return [json.loads(line) for path in sorted(folder.glob("part-*.jsonl")) for line in path.read_text(encoding="utf8").splitlines()]


def parquet_table(folder: Path):
    return pa.concat_tables([pq.read_table(path) for path in sorted(folder.glob("part-*.parquet"))])


def test_every_pipes_fields_same_records_as_jsonl_and_the_documented_schema(
    ner_checkpoint, typer_checkpoint, relation_checkpoint, linker_checkpoint, tmp_path
):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "threshold": 0.0})
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(linker_checkpoint), "entity_candidates": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 2}})
    nlp.to_disk(tmp_path / "pipeline")
    rows = [{"doc_id": i, "tags": ["a", str(i)], "meta": {"n": i, "ok": i % 2 == 0}, "text": t} for i, t in enumerate(TEXTS * 3)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    run(tmp_path / "pipeline", [tmp_path / "in.jsonl"], tmp_path / "jsonl", shard_size=4)
    run(tmp_path / "pipeline", [tmp_path / "in.jsonl"], tmp_path / "parquet", shard_size=4, output_format="parquet")
    assert sorted(p.name for p in (tmp_path / "parquet").glob("part-*")) == [f"part-{i:05d}.parquet" for i in range(3)]
    expected = jsonl_records(tmp_path / "jsonl")
    table = parquet_table(tmp_path / "parquet")
    assert table_records(table) == expected
    assert sum(len(r["entities"]) for r in expected) > 0 and any(r["relations"] for r in expected)
    assert all(len(e["kb_scores"]) == 2 and e["types"] for r in expected for e in r["entities"])

    schema = table.schema
    assert schema.names == ["doc_id", "tags", "meta", "source", "line", "text", "entities", "relations", "cats"]
    assert schema.field("doc_id").type == pa.int64() and schema.field("line").type == pa.int64()
    entity = schema.field("entities").type.value_type
    assert [entity.field(i).name for i in range(entity.num_fields)] == ["start", "end", "label", "text", "score", "kb_id", "kb_scores", "types"]
    assert entity.field("kb_scores").type == pa.list_(pa.struct([("kb_id", pa.string()), ("score", pa.float64())]))
    assert entity.field("types").type == pa.map_(pa.string(), pa.float64()) == schema.field("cats").type
    relation = schema.field("relations").type.value_type
    assert relation.field("head").type == pa.list_(pa.int64()) and relation.field("score").type == pa.float64()

    first = expected[0]["entities"][0]
    got = table.column("entities")[0].as_py()[0]
    assert got["kb_scores"] == [{"kb_id": k, "score": p} for k, p in first["kb_scores"]]
    assert dict(got["types"]) == first["types"]
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(sorted((tmp_path / "parquet").glob("part-*.parquet"))[0])
    assert list(frame["doc_id"]) == [0, 1, 2, 3] and frame["text"][1] == TEXTS[1]
    assert frame["entities"][0][0]["label"] == first["label"] and frame["entities"][0][0]["score"] == first["score"]


def write_parquet_input(path: Path, n: int, row_group_size: int) -> list:
    """n rows of several column types, text null in row 5 (1-based): the texts of the good rows."""
    texts = [None if i == 4 else f"Alice went to Tokyo on day {i} ." for i in range(n)]
    table = pa.table(
        {
            "id": pa.array(range(n), type=pa.int32()),
            "when": pa.array([datetime.datetime(2024, 1, 1) + datetime.timedelta(hours=i) for i in range(n)], type=pa.timestamp("us")),
            "body": pa.array(texts, type=pa.string()),
            "tags": pa.array([["x"] * (i % 3) for i in range(n)], type=pa.list_(pa.string())),
            "blob": pa.array([bytes([i % 256, 7]) for i in range(n)], type=pa.binary()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return [t for t in texts if t is not None]


def test_parquet_input_rows_bad_rows_and_carried_types(ruler_pipeline, tmp_path):
    texts = write_parquet_input(tmp_path / "in.parquet", 23, row_group_size=5)
    reports = []
    annotate(ruler_pipeline, [str(tmp_path / "in.parquet")], str(tmp_path / "jsonl"), text_field="body", progress=False, report=reports.append)
    assert reports == [f"{tmp_path / 'in.parquet'}:5: the 'body' column is null; each row needs a string there; skipped"]
    records = jsonl_records(tmp_path / "jsonl")
    assert [r["text"] for r in records] == texts and [r["line"] for r in records] == [1, 2, 3, 4] + list(range(6, 24))
    assert records[0]["when"] == "2024-01-01T00:00:00" and records[1]["blob"] == base64.b64encode(bytes([1, 7])).decode()
    assert [e["label"] for e in records[0]["entities"]] == ["PER", "LOC"] and "body" not in records[0]

    run(ruler_pipeline, [tmp_path / "in.parquet"], tmp_path / "parquet", text_field="body", output_format="parquet", shard_size=10)
    table = parquet_table(tmp_path / "parquet")
    assert table_records(table) == [{**r, "when": table.column("when")[i].as_py(), "blob": table.column("blob")[i].as_py()} for i, r in enumerate(records)]
    source = pq.read_table(tmp_path / "in.parquet")
    for name in ("id", "when", "tags", "blob"):  # the input's types, and its values
        assert table.schema.field(name).type == source.schema.field(name).type
        assert table.column(name).to_pylist() == [v for i, v in enumerate(source.column(name).to_pylist()) if i != 4]


def test_a_parquet_input_is_read_a_batch_of_rows_at_a_time(tmp_path):
    """The first record arrives with a few MB of Arrow memory allocated, not the 40 MB file."""
    from spacy_luke.annotate.inputs import read_records

    text = "word " * 400
    pq.write_table(pa.table({"text": [f"{i} {text}" for i in range(20000)]}), tmp_path / "big.parquet", row_group_size=1000, compression="none")
    assert (tmp_path / "big.parquet").stat().st_size > 35e6
    before = pa.total_allocated_bytes()
    records = read_records([str(tmp_path / "big.parquet")])
    assert next(records).text.startswith("0 word")
    assert pa.total_allocated_bytes() - before < 8e6
    assert sum(1 for _ in records) == 19999


def test_parquet_output_resumes_after_an_interrupt_and_a_grown_input(ruler_pipeline, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"n": i, "text": f"Alice went to Tokyo on day {i} ."}) + "\n" for i in range(47)), encoding="utf8")
    run(ruler_pipeline, [data], tmp_path / "full", shard_size=10, output_format="parquet", batch_size=4)
    expected = table_records(parquet_table(tmp_path / "full"))
    assert [r["n"] for r in expected] == list(range(47))

    out = tmp_path / "out"
    INTERRUPT.update(after=23, seen=0)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(ruler_pipeline, [data], out, shard_size=10, output_format="parquet", batch_size=4)
    finally:
        INTERRUPT["after"] = None
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet.partial"]
    partial = (out / "part-00002.parquet.partial").read_text(encoding="utf8").splitlines()
    assert [json.loads(line) for line in partial] == expected[20:23]  # JSON lines while partial
    summary = run(ruler_pipeline, [data], out, shard_size=10, output_format="parquet", batch_size=4)
    assert (summary.written, summary.resumed) == (24, 23)
    assert table_records(parquet_table(out)) == expected and not list(out.glob("*.partial"))

    # the input grows: the short last shard (7 records, Parquet) is reopened and completed
    with open(data, "a", encoding="utf8") as handle:
        handle.writelines(json.dumps({"n": i, "text": f"Alice went to Tokyo on day {i} ."}) + "\n" for i in range(47, 55))
    summary = run(ruler_pipeline, [data], out, shard_size=10, output_format="parquet", batch_size=4)
    assert (summary.written, summary.resumed) == (8, 47)
    assert [r["n"] for r in table_records(parquet_table(out))] == list(range(55))
    assert pq.read_metadata(out / "part-00004.parquet").num_rows == 10 and pq.read_metadata(out / "part-00005.parquet").num_rows == 5


def test_parquet_input_errors_before_any_work(ruler_pipeline, tmp_path, capsys):
    from spacy_luke.cli import main

    pq.write_table(pa.table({"body": ["Alice ."]}), tmp_path / "in.parquet")
    with pytest.raises(ValueError, match=r"in.parquet: no 'text' column \(columns: body\): give --text-field"):
        run(ruler_pipeline, [tmp_path / "in.parquet"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "in.txt").write_text("Alice .\n", encoding="utf8")
    code = main(["annotate", ruler_pipeline, str(tmp_path / "in.txt"), "--input-format", "parquet", "-o", str(tmp_path / "out2")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "in.txt: not a readable Parquet file" in err and "--input-format text or jsonl" in err and len(err.splitlines()) == 1
