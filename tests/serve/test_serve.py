"""The HTTP server (``spacy_luke.serve``): the batching rule, answers equal to ``nlp.pipe``'s,
limits, overload, a failed batch, a client that went away, loading and draining.

The app runs in-process (FastAPI's TestClient, requests from threads); the tests that need a
real socket start uvicorn in a thread (``heavy``). The helpers shared with the other
``test_serve_*`` modules are in ``tests/support/serve.py``, their pipelines in ``conftest.py``.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List

import pytest
import spacy
from spacy.language import Language

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from spacy_luke.serve import ServeSettings, create_app  # noqa: E402
from spacy_luke.serve.batcher import BatchFailed, Batcher, Overloaded, ShuttingDown  # noqa: E402
from support.ner import PARITY_TEXTS  # noqa: E402
from support.serve import assert_same_records, post, ready_client, records_of, serving  # noqa: E402

# ------------------------------------------------------------------ helpers (shared)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


class Gate:
    """The state of the ``serve_test_gate`` component: the texts it saw; it raises on "boom"
    and waits for ``open`` on "wait"."""

    def __init__(self):
        self.open = threading.Event()
        self.entered = threading.Event()
        self.seen: List[str] = []


GATE = Gate()


@Language.component("serve_test_gate")
def serve_test_gate(doc):
    GATE.seen.append(doc.text)
    if "boom" in doc.text:
        raise ValueError(f"boom in {doc.text!r}")
    if "wait" in doc.text:
        GATE.entered.set()
        GATE.open.wait(20)
    return doc


@pytest.fixture
def gate() -> Iterator[Gate]:
    global GATE
    GATE = Gate()
    yield GATE
    GATE.open.set()


def gated_pipeline():
    """An entity ruler (Acme Corp, Paris) and the gate: fast, and as slow or broken as a test needs."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG", "pattern": "Acme Corp"}, {"label": "GPE", "pattern": "Paris"}])
    nlp.add_pipe("serve_test_gate")
    return nlp


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


# ------------------------------------------------------------------ the batching rule


def test_the_batching_rule_orders_bounds_and_splits_back():
    """A batch takes the queued requests in order while they fit (texts and characters), never
    splits one, and each request gets its own outputs."""
    batches, release = [], threading.Event()

    def process(texts):
        batches.append(list(texts))
        if texts == ["block"]:
            release.wait(10)
        return [text.upper() for text in texts]

    batcher = Batcher(process, max_wait_ms=30, max_batch_texts=4, max_batch_chars=100, max_queue_texts=100)
    first = batcher.submit(["block"])
    wait_for(lambda: batches)  # the worker is busy with it: the next requests queue up
    requests = [["a", "b"], ["c"], ["d", "e"], ["x" * 150], ["f"], ["g", "h", "i", "j", "k"]]
    jobs = [batcher.submit(texts) for texts in requests]
    assert batcher.queued_texts == 12 and batcher.in_flight == 7
    release.set()
    assert first.future.result(10) == ["BLOCK"]
    assert [job.future.result(10) for job in jobs] == [[t.upper() for t in texts] for texts in requests]
    # [d, e] + the next would pass 4 texts; x*150 passes 100 characters alone; g..k passes 4 texts alone.
    assert batches == [["block"], ["a", "b", "c"], ["d", "e"], ["x" * 150], ["f"], ["g", "h", "i", "j", "k"]]
    assert batcher.stats["batches"] == 6 and batcher.queued_texts == 0 and batcher.in_flight == 0


def test_a_lone_request_waits_at_most_max_wait_and_close_requests_share_a_batch():
    batches = []
    batcher = Batcher(lambda texts: batches.append(list(texts)) or list(texts), max_wait_ms=150)
    start = time.monotonic()
    assert batcher.submit(["alone"]).future.result(5) == ["alone"]
    assert 0.1 < time.monotonic() - start < 2.0
    a, b = batcher.submit(["a"]), batcher.submit(["b"])
    assert a.future.result(5) == ["a"] and b.future.result(5) == ["b"]
    assert batches == [["alone"], ["a", "b"]]


def test_the_queue_is_bounded_cancelled_requests_are_dropped_and_close_drains():
    release, seen = threading.Event(), []

    def process(texts):
        seen.extend(texts)
        release.wait(10)
        return texts

    batcher = Batcher(process, max_wait_ms=0, max_queue_texts=5)
    running = batcher.submit(["run"])
    wait_for(lambda: seen)
    queued = [batcher.submit(["q1", "q2"]), batcher.submit(["gone"]), batcher.submit(["q3", "q4"])]
    with pytest.raises(Overloaded) as overloaded:
        batcher.submit(["one too many"])
    assert overloaded.value.retry_after >= 1 and "max_queue_texts" in str(overloaded.value)
    assert queued[1].future.cancel()  # its client went away: dropped from the queue
    assert batcher.queued_texts == 4 and batcher.stats["dropped"] == 1
    batcher.close()
    with pytest.raises(ShuttingDown):
        batcher.submit(["late"])
    release.set()
    assert running.future.result(10) == ["run"]
    assert [queued[0].future.result(10), queued[2].future.result(10)] == [["q1", "q2"], ["q3", "q4"]]
    assert batcher.join(10) and "gone" not in seen and batcher.queued_texts == 0


def test_a_failed_batch_fails_only_its_requests():
    def process(texts):
        if "boom" in texts:
            raise ValueError("bad input\nsecond line")
        return texts

    batcher = Batcher(process, max_wait_ms=100)
    together = [batcher.submit(["ok"]), batcher.submit(["boom"])]
    for job in together:
        with pytest.raises(BatchFailed, match="ValueError: bad input second line"):
            job.future.result(5)
    assert batcher.submit(["later"]).future.result(5) == ["later"]
    assert batcher.stats["failed_batches"] == 1


# ------------------------------------------------------------------ the app


def test_concurrent_requests_are_batched_and_each_answer_equals_nlp_pipe(ner_nlp):
    requests = [PARITY_TEXTS[i: i + 1 + (i // 2) % 2] for i in range(0, 30, 2)]
    expected = [records_of(ner_nlp, texts) for texts in requests]
    app = create_app(ner_nlp, max_wait_ms=200, max_batch_texts=64)
    with ready_client(app) as client:
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda texts: client.post("/v1/annotate", json={"texts": texts}), requests))
        health = client.get("/health").json()
    assert [answer.status_code for answer in answers] == [200] * len(requests)
    for answer, records in zip(answers, expected):
        assert_same_records(answer.json()["records"], records)
    assert sum(len(r["entities"]) for records in expected for r in records) > 20
    # 15 requests arriving together ran in a few batches, not one each (the warm-up is not counted)
    assert health["requests"] == len(requests) and health["batches"] <= 4, health


def test_records_carry_their_fields_and_the_pipeline_is_described(ner_nlp):
    app = create_app(ner_nlp)
    records = [{"id": 7, "text": PARITY_TEXTS[0], "meta": {"tags": ["a", None]}, "line": "theirs"}, {"text": PARITY_TEXTS[1]}]
    with ready_client(app) as client:
        answer = client.post("/v1/annotate", json={"records": records})
        info = client.get("/v1/pipeline").json()
        empty = client.post("/v1/annotate", json={"texts": []})
        openapi = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert answer.status_code == 200
    fields = [{"id": 7, "meta": {"tags": ["a", None]}, "line": "theirs"}, {}]
    assert_same_records(answer.json()["records"], records_of(ner_nlp, PARITY_TEXTS[:2], fields))
    assert answer.json()["records"][0]["line"] == 1  # ours win on a clash, as in annotate
    assert empty.json() == {"records": []}
    assert [(p["name"], p["labels"]) for p in info["pipes"]] == [("sentencizer", []), ("luke_ner", ["PER", "ORG", "LOC"])]
    assert info["pipes"][1]["precision"] == "float32" and info["device"] == "cpu" and info["precision"] == "float32"
    assert info["batching"]["max_wait_ms"] == 10.0 and info["limits"]["max_texts"] == 128
    assert {"/v1/annotate", "/v1/render", "/v1/pipeline", "/health"} <= set(openapi["paths"]) and docs.status_code == 200


def test_limits_and_bad_bodies_answer_as_documented(gate):
    gate.open.set()
    app = create_app(gated_pipeline(), max_texts=3, max_chars=50, max_body_bytes=2000)
    with ready_client(app) as client:
        answers = {
            "texts": client.post("/v1/annotate", json={"texts": ["a"] * 4}),
            "chars": client.post("/v1/annotate", json={"texts": ["ok", "x" * 51]}),
            "body": client.post("/v1/annotate", json={"texts": ["y" * 3000]}),
            "chunked": client.post("/v1/annotate", content=iter([b'{"texts": ["', b"z" * 2500, b'"]}'])),
            "both": client.post("/v1/annotate", json={"texts": ["a"], "records": [{"text": "b"}]}),
            "neither": client.post("/v1/annotate", json={}),
            "no text": client.post("/v1/annotate", json={"records": [{"text": "a"}, {"body": "b"}]}),
            "not a string": client.post("/v1/annotate", json={"texts": ["a", 3]}),
            "not json": client.post("/v1/annotate", content=b"{texts", headers={"Content-Type": "application/json"}),
            "unknown field": client.post("/v1/annotate", json={"texts": ["a"], "text": "b"}),
        }
        fine = client.post("/v1/annotate", json={"texts": ["Acme Corp in Paris", "x" * 50]})
    expected = {"texts": (413, "max_texts"), "chars": (413, "max_chars"), "body": (413, "max_body_bytes"), "chunked": (413, "max_body_bytes")}
    for name, answer in answers.items():
        assert_no_traceback(answer.text)
        error = answer.json()["error"]
        status, limit = expected.get(name, (422, None))
        assert (answer.status_code, error.get("limit")) == (status, limit), (name, answer.text)
        assert error["type"] == ("limit" if limit else "invalid_request") and error["message"]
        if limit:
            assert limit in error["message"] and error["max"] in (3, 50, 2000)
    assert answers["texts"].json()["error"]["got"] == 4
    assert "records[1]" in answers["no text"].json()["error"]["message"]
    assert fine.status_code == 200 and [e["label"] for e in fine.json()["records"][0]["entities"]] == ["ORG", "GPE"]


def test_overload_answers_503_with_retry_after_and_never_waits(gate):
    app = create_app(gated_pipeline(), max_queue_texts=3, max_wait_ms=0)
    with ready_client(app) as client, ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/v1/annotate", json={"texts": ["wait here"]})
        assert gate.entered.wait(10)  # the worker is busy: what comes next queues up
        queued = pool.submit(client.post, "/v1/annotate", json={"texts": ["one", "two", "three"]})
        wait_for(lambda: app.state.luke.batcher.queued_texts == 3)
        start = time.monotonic()
        over = client.post("/v1/annotate", json={"texts": ["Acme Corp"]})
        assert time.monotonic() - start < 2
        gate.open.set()
        answers = [first.result(10), queued.result(10)]
        after = client.post("/v1/annotate", json={"texts": ["Acme Corp"]})
    assert over.status_code == 503 and int(over.headers["Retry-After"]) >= 1
    assert over.json()["error"]["type"] == "overloaded" and over.json()["error"]["limit"] == "max_queue_texts"
    assert_no_traceback(over.text)
    assert [a.status_code for a in answers] == [200, 200] and after.status_code == 200
    assert [r["text"] for r in answers[1].json()["records"]] == ["one", "two", "three"]


def test_a_failed_batch_answers_500_naming_the_cause_and_the_server_keeps_serving(gate):
    gate.open.set()
    app = create_app(gated_pipeline(), max_wait_ms=300)
    with ready_client(app) as client, ThreadPoolExecutor(2) as pool:
        together = [pool.submit(client.post, "/v1/annotate", json={"texts": [text]}) for text in ("Acme Corp", "boom Paris")]
        failed = [answer.result(10) for answer in together]
        later = client.post("/v1/annotate", json={"texts": ["Acme Corp in Paris"]})
        health = client.get("/health")
    for answer in failed:
        assert answer.status_code == 500 and answer.json()["error"]["type"] == "batch_failed"
        assert "ValueError: boom in 'boom Paris'" in answer.json()["error"]["message"]
        assert_no_traceback(answer.text)
    assert later.status_code == 200 and len(later.json()["records"][0]["entities"]) == 2
    assert health.status_code == 200 and health.json()["failed_batches"] == 1


def test_health_is_ready_only_once_loaded_and_a_failed_load_is_named(gate, tmp_path):
    loading = threading.Event()
    app = create_app(lambda: loading.wait(10) and gated_pipeline())
    with TestClient(app) as client:
        before = [client.get("/health"), client.post("/v1/annotate", json={"texts": ["a"]}), client.get("/v1/pipeline")]
        loading.set()
        app.state.luke.wait_loaded(10)
        after = client.get("/health")
    assert [a.status_code for a in before] == [503] * 3 and before[0].json()["status"] == "loading"
    assert before[0].headers["Retry-After"] and before[1].json()["error"]["type"] == "loading"
    assert after.status_code == 200 and after.json()["status"] == "ready"

    app = create_app(str(tmp_path / "no-such-pipeline"))
    with TestClient(app) as client:
        app.state.luke.wait_loaded(30)
        health, answer = client.get("/health"), client.post("/v1/annotate", json={"texts": ["a"]})
    assert health.status_code == 503 and health.json()["status"] == "failed" and "no-such-pipeline" in health.json()["error"]
    assert answer.status_code == 503 and "did not load" in answer.json()["error"]["message"]
    assert_no_traceback(health.text + answer.text)

    # load_first (Ray Serve's replicas): the start waits for the load, and fails with it
    with TestClient(create_app(gated_pipeline, load_first=True)) as client:
        assert client.get("/health").status_code == 200
    with pytest.raises(RuntimeError, match="no-such-pipeline: the pipeline did not load"):
        with TestClient(create_app(str(tmp_path / "no-such-pipeline"), load_first=True)):
            pass


def test_a_request_past_timeout_answers_503_and_leaves_the_queue(gate):
    app = create_app(gated_pipeline(), max_wait_ms=0, timeout_s=0.3)
    with ready_client(app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/v1/annotate", json={"texts": ["wait"]})
        assert gate.entered.wait(10)
        late = client.post("/v1/annotate", json={"texts": ["never run"]})
        gate.open.set()
        first.result(10)
        stats = client.get("/health").json()
    assert late.status_code == 503 and late.json()["error"]["type"] == "timeout" and late.json()["error"]["limit"] == "timeout_s"
    assert "never run" not in gate.seen and stats["dropped"] >= 1 and stats["queued_texts"] == 0


def test_the_readme_names_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf8")
    section = readme[readme.index("## Serving over HTTP"):]
    missing = [name for name, *_ in ServeSettings.described() if f"--{name.replace('_', '-')}" not in section]
    assert not missing, missing


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_texts must be at least 1"):
        ServeSettings(max_texts=0)
    with pytest.raises(ValueError, match="kb_url_template"):
        create_app(gated_pipeline(), kb_url_template="https://example.org/wiki/")


@pytest.mark.heavy  # uvicorn on a real socket
def test_a_request_whose_client_went_away_is_dropped_from_the_queue(gate):
    app = create_app(gated_pipeline(), max_wait_ms=0)
    with serving(app) as base, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, base, "/v1/annotate", {"texts": ["wait for me"]})
        assert gate.entered.wait(10)
        port = int(base.rsplit(":", 1)[1])
        body = json.dumps({"texts": ["gone before its turn"]}).encode()
        with socket.create_connection(("127.0.0.1", port)) as gone:
            gone.sendall(b"POST /v1/annotate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for(lambda: app.state.luke.batcher.queued_texts == 1)
        wait_for(lambda: app.state.luke.batcher.stats["dropped"] == 1)
        gate.open.set()
        status, _, answer = first.result(10)
        assert status == 200 and post(base, "/v1/annotate", {"texts": ["Acme Corp"]})[0] == 200
    assert "gone before its turn" not in gate.seen and app.state.luke.batcher.queued_texts == 0
