"""The serve tests' helpers: what the server should answer (``nlp.pipe``'s records), a comparison
within float noise, an in-process client, uvicorn in a thread, one POST, a free port."""
from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List

from spacy_luke.annotate.records import doc_record

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def records_of(nlp, texts: List[str], fields=None) -> List[Dict[str, Any]]:
    """What the server answers for one request of ``texts``: ``nlp.pipe``'s docs as records."""
    fields = fields or [{} for _ in texts]
    return [json.loads(json.dumps(doc_record(doc, "request", i + 1, f))) for i, (doc, f) in enumerate(zip(nlp.pipe(texts), fields))]


def assert_same_records(got: Any, expected: Any, path: str = "records") -> None:
    """Equal, scores within 1e-5: padding in a batch of other texts changes float32 sums in the
    last digits (about 1e-6), never a label, an offset or a kb_id."""
    if isinstance(expected, float) and isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-5), f"{path}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), f"{path}: keys {list(got)} != {list(expected)}"
        for key in expected:
            assert_same_records(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{path}: {got} != {expected}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same_records(g, e, f"{path}[{i}]")
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


@contextlib.contextmanager
def ready_client(app) -> Iterator["TestClient"]:
    """A FastAPI TestClient on ``app`` once its pipeline has loaded."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert app.state.luke.wait_loaded(60), "the pipeline did not load in 60 s"
        yield client


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on uvicorn in a thread, on a free loopback port: yields the base URL, ready."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and app.state.luke.loaded.is_set()):
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def post(base: str, path: str, body: Any, timeout: float = 30) -> tuple:
    """(status, headers, JSON) of one POST over a fresh connection."""
    host, port = base.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
