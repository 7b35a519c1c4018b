"""``spacy_luke.serve.ray_deployment`` on a local Ray (2 CPUs): two replicas behind Ray Serve's
proxy answer as the local app does."""
from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

pytest.importorskip("fastapi")
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'spacy-luke[ray]')")

from spacy_luke.serve import create_app, ray_deployment  # noqa: E402
from support.ner import PARITY_TEXTS  # noqa: E402
from support.serve import assert_same_records, free_port, post, ready_client  # noqa: E402


def test_a_gpu_id_without_gpus_is_refused():
    with pytest.raises(ValueError, match="num_gpus"):
        ray_deployment("any", gpu_id=0)


@pytest.mark.heavy  # starts a Ray cluster, Ray Serve and two replicas
def test_two_replicas_answer_as_the_local_app(ner_pipeline):
    requests = [PARITY_TEXTS[i: i + 2] for i in range(0, 16, 2)]
    # A 1-CPU replica runs torch on one thread; float32 sums depend on the thread count in their
    # last bits, so the local reference runs on one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ready_client(create_app(ner_pipeline, max_wait_ms=0)) as client:
            expected = [client.post("/v1/annotate", json={"texts": texts}).json() for texts in requests]
    finally:
        torch.set_num_threads(threads)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024**2, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(ray_deployment(ner_pipeline, num_replicas=2, num_cpus=1, max_wait_ms=20), name="luke", route_prefix="/")
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda texts: post(base, "/v1/annotate", {"texts": texts}, timeout=60), requests))
        with urllib.request.urlopen(f"{base}/v1/pipeline", timeout=30) as response:
            info = json.loads(response.read())
        with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
            health = response.status
        over = post(base, "/v1/annotate", {"texts": ["x"] * 129})
    finally:
        serve.shutdown()
        ray.shutdown()
    assert [status for status, _, _ in answers] == [200] * len(requests)
    for (_, _, body), reference in zip(answers, expected):
        assert_same_records(body, reference)
    assert health == 200 and [p["name"] for p in info["pipes"]] == ["sentencizer", "luke_ner"]
    assert over[0] == 413 and over[2]["error"]["limit"] == "max_texts"
