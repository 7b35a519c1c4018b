"""Load test of ``python -m spacy_luke serve`` on loopback (127.0.0.1 only), beside ``nlp.pipe``.

The pipeline: sentencizer + luke_ner from a random-weight checkpoint of ``--shape`` (bench_ner's
builder, a BPE trained on the text), saved with ``nlp.to_disk``, or any saved pipeline given as
``--pipeline``. The texts: CoNLL-2003 test sentences, one per request.

1. The reference: ``nlp.pipe`` in this process gives each text's entities (the right answers).
2. The server in a subprocess (defaults but ``--max-wait-ms``). ``--rounds`` rounds, each: the
   words/s of ``nlp.pipe`` over the texts (``--batch-size`` 32, and spaCy's default), then for
   each concurrency in ``--concurrency`` (1 8 32 128) that many clients on keep-alive connections
   sending ``--requests`` requests in all (or until ``--time-limit`` seconds), one text each:
   requests/s, words/s, p50 / p95 / p99 latency, errors (lost answers), wrong answers (entities
   other than the reference's), the server's peak memory (VmHWM) and its batches.
3. The goals, side by side (``--pairs`` chunks of 32 texts, in turn: ``nlp.pipe`` with batch_size
   32, 32 clients, one client): on a shared machine the load drifts within seconds, so each
   ratio is taken against its own chunk's ``nlp.pipe``, and the median reported.
4. Overload: a second server with ``--max-queue-texts`` of ``--overload-queue`` and 128 clients:
   every request must get its answer or a 503 with Retry-After (nothing lost or wrong).
5. Soak: ``--soak-seconds`` at concurrency 32, the server's resident memory sampled every few
   seconds: flat when the last fifth's mean is within 5% (+20 MiB) of the second fifth's.

    TOKENIZERS_PARALLELISM=false python benchmarks/bench_serve.py --text CONLL/test.txt --shape small --json report.json

The load generator is a minimal asyncio HTTP/1.1 client (no library's overhead in the way); it
runs on the same machine, so its CPU time is part of what the server competes with.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.SHAPES.setdefault("small", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, entity_emb_size=64))
LOOPBACK = "127.0.0.1"


# ------------------------------------------------------------------ the pipeline and the reference


def build_pipeline(work: Path, shape: str, sentences) -> Path:
    from bench_ner import build_checkpoint

    pipeline = work / f"pipeline-{shape}"
    if not (pipeline / "config.cfg").is_file():
        import spacy

        checkpoint = build_checkpoint(work / f"ckpt-{shape}", shape, sentences, bpe_vocab=8000)
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("luke_ner", config={"pretrained": str(checkpoint)})
        nlp.initialize()
        nlp.to_disk(pipeline)
    return pipeline


def entities(record_or_doc) -> List[Tuple[int, int, str]]:
    if isinstance(record_or_doc, dict):
        return [(e["start"], e["end"], e["label"]) for e in record_or_doc["entities"]]
    return [(e.start_char, e.end_char, e.label_) for e in record_or_doc.ents]


class Reference:
    """``nlp.pipe`` in this process: the words and entities of each text (the reference answers),
    and words/s for a batch size."""

    def __init__(self, pipeline: Path, texts: List[str]):
        import spacy

        self.nlp = spacy.load(pipeline)
        self.texts = texts
        docs = list(self.nlp.pipe(texts))
        self.words = [len(doc) for doc in docs]
        self.entities = [entities(doc) for doc in docs]

    def subset(self, indices: Sequence[int]) -> "Reference":
        part = object.__new__(Reference)
        part.nlp = self.nlp
        part.texts, part.words, part.entities = ([values[i] for i in indices] for values in (self.texts, self.words, self.entities))
        return part

    def words_per_s(self, batch_size: Optional[int]) -> float:
        start = time.perf_counter()
        for _ in self.nlp.pipe(self.texts, batch_size=batch_size or self.nlp.batch_size):
            pass
        return sum(self.words) / (time.perf_counter() - start)


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, pipeline: Path, *flags: str):
        self.port = free_port()
        command = [sys.executable, "-m", "spacy_luke", "serve", str(pipeline), "--host", LOOPBACK, "--port", str(self.port),
                   "--log-level", "warning", *flags]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while self.get("/health", quiet=True).get("status") != "ready":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {self.process.stderr.read()[-3000:]}")
            time.sleep(0.2)

    def get(self, path: str, quiet: bool = False) -> dict:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}{path}", timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if quiet:
                return {}
            raise

    def memory(self) -> Dict[str, int]:
        """VmRSS and VmHWM (peak) of the server process, bytes."""
        values = {}
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(value.split()[0]) * 1024
        return values

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


# ------------------------------------------------------------------ the load


async def _request(reader, writer, body: bytes) -> Tuple[int, Dict[str, str], bytes]:
    writer.write(b"POST /v1/annotate HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    data = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, data


async def _load(port: int, texts: List[str], concurrency: int, requests: int, time_limit: float):
    """``requests`` requests (text i % len(texts)) from ``concurrency`` clients: per request
    (index, status, latency seconds, entities or None, Retry-After)."""
    next_index, results = [0], []
    stop_at = time.monotonic() + time_limit

    async def client():
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            while next_index[0] < requests and time.monotonic() < stop_at:
                index = next_index[0]
                next_index[0] += 1
                body = json.dumps({"texts": [texts[index % len(texts)]]}).encode()
                start = time.perf_counter()
                try:
                    status, headers, data = await _request(reader, writer, body)
                except (OSError, asyncio.IncompleteReadError) as err:
                    results.append((index, f"connection: {type(err).__name__}", time.perf_counter() - start, None, None))
                    writer.close()
                    reader, writer = await asyncio.open_connection(LOOPBACK, port)
                    continue
                latency = time.perf_counter() - start
                got = entities(json.loads(data)["records"][0]) if status == 200 else None
                results.append((index, status, latency, got, headers.get("retry-after")))
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results, time.perf_counter() - start


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def run_level(server: Server, ref: Reference, concurrency: int, requests: int, time_limit: float) -> Dict:
    """``requests`` requests of one text each (``ref``'s texts in turn) from ``concurrency`` clients."""
    texts = ref.texts
    before = server.get("/health")
    results, seconds = asyncio.run(_load(server.port, texts, concurrency, requests, time_limit))
    after = server.get("/health")
    served = [r for r in results if r[1] == 200]
    wrong = sum(1 for index, _, _, got, _ in served if [tuple(e) for e in got] != [tuple(e) for e in ref.entities[index % len(texts)]])
    rejected = [r for r in results if r[1] == 503]
    words = sum(ref.words[index % len(texts)] for index, *_ in served)
    latencies = [r[2] for r in served]
    batches = after["batches"] - before["batches"]
    return {
        "concurrency": concurrency, "sent": len(results), "answered": len(served), "rejected_503": len(rejected),
        "rejected_without_retry_after": sum(1 for r in rejected if not r[4]),
        "errors": len(results) - len(served) - len(rejected), "wrong": wrong, "seconds": seconds,
        "requests_per_s": len(served) / seconds, "words_per_s": words / seconds,
        "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95), "p99_ms": 1000 * percentile(latencies, 99),
        "batches": batches, "texts_per_batch": (after["texts"] - before["texts"]) / batches if batches else 0.0,
        "server_peak_rss_mib": server.memory()["VmHWM"] / 2**20,
    }


def soak(server: Server, ref: Reference, seconds: float, concurrency: int = 32, every: float = 5.0) -> Dict:
    samples, answered, totals = [], [], {"answered": 0, "wrong": 0, "errors": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        level = run_level(server, ref, concurrency, requests=10**9, time_limit=min(every, end - time.monotonic()))
        for key in totals:
            totals[key] += level[key]
        samples.append(server.memory()["VmRSS"] / 2**20)
        answered.append(totals["answered"])
    fifth = max(1, len(samples) // 5)
    early, late = samples[fifth: 2 * fifth] or samples[:1], samples[-fifth:]
    early_mean, late_mean = sum(early) / len(early), sum(late) / len(late)
    return {"seconds": seconds, "rss_mib": samples, "answered_at_sample": answered, "early_mean_mib": early_mean, "late_mean_mib": late_mean,
            "flat": late_mean <= early_mean * 1.05 + 20, **totals}


def paired(server: Server, ref: Reference, repeats: int, size: int = 32) -> Dict:
    """The goals, measured side by side: for each of ``repeats`` chunks of ``size`` texts, in
    turn, ``nlp.pipe`` (batch_size ``size``), ``size`` clients with one text each, and one client
    sending them one at a time; each ratio is against its own chunk's ``nlp.pipe``, seconds apart."""
    rows = []
    for k in range(repeats):
        chunk = ref.subset([(k * size + i) % len(ref.texts) for i in range(size)])
        row = {"nlp_pipe": chunk.words_per_s(size)}
        for concurrency in (size, 1):
            level = run_level(server, chunk, concurrency, size, time_limit=600)
            row[f"c{concurrency}"] = level["words_per_s"]
            row["lost_or_wrong"] = row.get("lost_or_wrong", 0) + level["errors"] + level["wrong"] + (size - level["sent"])
        rows.append(row)
        print(f"pair {k}: {json.dumps(row)}", file=sys.stderr)
    ratios = {name: sorted(row[a] / row[b] for row in rows) for name, a, b in
              ((f"c{size}_over_nlp_pipe", f"c{size}", "nlp_pipe"), (f"c{size}_over_c1", f"c{size}", "c1"))}
    return {"rows": rows, "median": {name: values[len(values) // 2] for name, values in ratios.items()},
            "range": {name: [values[0], values[-1]] for name, values in ratios.items()},
            "lost_or_wrong": sum(row["lost_or_wrong"] for row in rows)}


def median_by(items: List[Dict], key: str) -> Dict:
    return sorted(items, key=lambda item: item[key])[len(items) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=sorted(common.SHAPES))
    parser.add_argument("--pipeline", default=None, help="a saved pipeline instead of a random --shape one")
    parser.add_argument("--text", default=None, help="a CoNLL-2003 style file (e.g. CoNLL-2003 test.txt) whose sentences are the requests (default: generated sentences)")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level and round")
    parser.add_argument("--time-limit", type=float, default=40.0, help="seconds per level and round at most")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of nlp.pipe then every level")
    parser.add_argument("--pairs", type=int, default=12, help="chunks of 32 texts for the goals: nlp.pipe, 32 clients, 1 client, in turn")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--batch-size", type=int, default=32, help="nlp.pipe's batch size (and spaCy's default beside it)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--overload-queue", type=int, default=16, help="max_queue_texts of the overload server (0: no overload run)")
    parser.add_argument("--soak-seconds", type=float, default=120.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-serve-"))
    sentences, source = common.load_sentences(args.sentences, args.text)
    texts = [" ".join(s) for s in sentences]
    pipeline = Path(args.pipeline) if args.pipeline else build_pipeline(work, args.shape, sentences)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    ref = Reference(pipeline, texts)
    report = {"machine": common.machine(), "load_before": uptime, "pipeline": str(pipeline), "shape": None if args.pipeline else args.shape,
              "text": source, "words": sum(ref.words), "rounds": []}
    batch_sizes = [args.batch_size, None]
    server = Server(pipeline, "--max-wait-ms", str(args.max_wait_ms))
    try:
        for number in range(args.rounds):
            pipe = {str(size or ref.nlp.batch_size): ref.words_per_s(size) for size in batch_sizes}
            levels = [run_level(server, ref, c, args.requests, args.time_limit) for c in args.concurrency]
            report["rounds"].append({"nlp_pipe_words_per_s": pipe, "levels": levels})
            print(f"round {number}: nlp.pipe {json.dumps(pipe)}; " + "; ".join(
                f"c{level['concurrency']} {level['words_per_s']:.1f} words/s" for level in levels), file=sys.stderr)
        if args.pairs:
            report["paired"] = paired(server, ref, args.pairs)
        if args.soak_seconds > 0:
            report["soak"] = soak(server, ref, args.soak_seconds)
            print(f"soak: {json.dumps(report['soak'])}", file=sys.stderr)
    finally:
        report["server_exit"] = server.stop()
    if args.overload_queue:
        server = Server(pipeline, "--max-wait-ms", str(args.max_wait_ms), "--max-queue-texts", str(args.overload_queue))
        try:
            report["overload"] = run_level(server, ref, 128, args.requests, args.time_limit)
            report["overload"]["max_queue_texts"] = args.overload_queue
            print(f"overload: {json.dumps(report['overload'])}", file=sys.stderr)
        finally:
            server.stop()
    report["load_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    summarize(report, args.concurrency)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf8")
    print_table(report)
    return report


def summarize(report: Dict, concurrency: Sequence[int]) -> None:
    """Medians over the rounds; the goals as per-round ratios (each against its own round's nlp.pipe)."""
    rounds = report["rounds"]
    sizes = list(rounds[0]["nlp_pipe_words_per_s"])
    report["nlp_pipe"] = {size: sorted(r["nlp_pipe_words_per_s"][size] for r in rounds)[len(rounds) // 2] for size in sizes}
    report["levels"] = [median_by([r["levels"][i] for r in rounds], "words_per_s") for i in range(len(concurrency))]
    everything = [level for r in rounds for level in r["levels"]] + ([report["overload"]] if "overload" in report else [])
    report["lost_or_wrong"] = sum(level["errors"] + level["wrong"] for level in everything) + report.get("paired", {}).get("lost_or_wrong", 0)


def print_table(report: Dict) -> None:
    print(f"\n{report['machine']['cpu']}, {report['machine']['cores']} cores; {report['text']}, {report['words']} words")
    print(f"load before: {report['load_before']}\nload after: {report['load_after']}\n")
    rounds = len(report["rounds"])
    for batch_size, words_per_s in report["nlp_pipe"].items():
        print(f"nlp.pipe batch_size={batch_size}: {words_per_s:.1f} words/s (median of {rounds} rounds)")
    print(f"\nthe server, median round of {rounds} by words/s:")
    print("\n| concurrency | requests/s | words/s | p50 ms | p95 ms | p99 ms | texts/batch | errors | wrong | 503 | server peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for level in report["levels"] + ([dict(report["overload"], concurrency=f"128 (queue {report['overload']['max_queue_texts']})")] if "overload" in report else []):
        print(f"| {level['concurrency']} | {level['requests_per_s']:.1f} | {level['words_per_s']:.1f} | {level['p50_ms']:.0f} | {level['p95_ms']:.0f} | "
              f"{level['p99_ms']:.0f} | {level['texts_per_batch']:.1f} | {level['errors']} | {level['wrong']} | {level['rejected_503']} | "
              f"{level['server_peak_rss_mib']:.0f} |")
    if "soak" in report:
        s = report["soak"]
        print(f"\nsoak {s['seconds']:.0f} s: RSS {s['early_mean_mib']:.0f} -> {s['late_mean_mib']:.0f} MiB ({'flat' if s['flat'] else 'GROWING'}), "
              f"{s['answered']} answered, {s['errors']} errors, {s['wrong']} wrong")
    if "paired" in report:
        p = report["paired"]
        print(f"\ngoals, {len(p['rows'])} chunks of 32 texts, each ratio against its own chunk (median, range): "
              + "; ".join(f"{name} {p['median'][name]:.2f} ({p['range'][name][0]:.2f}-{p['range'][name][1]:.2f})" for name in p["median"]))
    print(f"lost or wrong answers, everything: {report['lost_or_wrong']}")


if __name__ == "__main__":
    main()
