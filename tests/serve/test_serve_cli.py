"""``python -m spacy_luke serve``: a light ``--help``, a pipeline that fails to load, and SIGTERM
draining the accepted requests before the process exits."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from support.cli import HEAVY  # noqa: E402
from support.ner import PARITY_TEXTS  # noqa: E402
from support.serve import assert_same_records, free_port, post, records_of  # noqa: E402

pytestmark = pytest.mark.heavy  # every test here starts `python -m spacy_luke serve`

def serve_command(*args, python_flags=()) -> list:
    return [sys.executable, *python_flags, "-m", "spacy_luke", "serve", *map(str, args)]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_help_imports_nothing_heavy():
    result = subprocess.run(serve_command("--help", python_flags=("-X", "importtime")), capture_output=True, text=True)
    assert result.returncode == 0 and "--max-wait-ms" in result.stdout and "--max-queue-texts" in result.stdout, result.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "spacy_luke.cli.serve" in imported
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY + ("fastapi", "starlette", "uvicorn", "pydantic", "ray"))
    assert not heavy, heavy


def test_a_pipeline_that_does_not_load_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(serve_command(tmp_path / "missing", "--port", free_port(), "--log-level", "critical"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing" in errors[0] and "did not load" in errors[0], result.stderr
    bad = subprocess.run(serve_command(tmp_path, "--kb-url-template", "https://x.org/wiki/"), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: kb_url_template") and "Traceback" not in bad.stderr


def test_sigterm_answers_the_accepted_requests_then_exits(ner_nlp, ner_pipeline):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Requests arriving within 1.5 s share one batch: SIGTERM comes while they wait in it.
    server = subprocess.Popen(serve_command(ner_pipeline, "--port", port, "--max-wait-ms", 1500, "--log-level", "warning"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read() if server.poll() is not None else "no start"
            try:
                if get_json(f"{base}/health")["status"] == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        requests = [[text] for text in PARITY_TEXTS[:6]]
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = [pool.submit(post, base, "/v1/annotate", {"texts": texts}) for texts in requests]
            while get_json(f"{base}/health")["in_flight"] < len(requests):
                time.sleep(0.01)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(OSError):  # no new connections while draining
                post(base, "/v1/annotate", {"texts": ["too late"]}, timeout=2)
            results = [answer.result(60) for answer in answers]
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert [status for status, _, _ in results] == [200] * len(requests)
    for (_, _, body), texts in zip(results, requests):
        assert_same_records(body["records"], records_of(ner_nlp, texts))
