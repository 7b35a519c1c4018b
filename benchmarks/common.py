"""Helpers shared by the benchmark scripts (run by hand, not in CI).

The scripts run as ``python benchmarks/X.py`` from the repository root and import this module
after putting their own folder on ``sys.path``. One implementation each of:

- paths: the repository, its ``tests/`` (whose fixtures some scripts reuse: ``tests_on_path``) and
  the CoNLL-2003 folder (``train.txt``, ``valid.txt``, ``test.txt``), which the scripts that read it
  take as ``--conll-dir`` (``add_conll_argument``; default ``$SPACY_LUKE_CONLL_DIR``, the variable
  the tests read, else ``conll2003/`` in the current folder); without it they use generated text;
- checkpoints with random weights of a given shape, from transformers' LUKE classes and written by
  ``save_pretrained`` (``save_random_luke``; ``fixture_checkpoint`` for the test fixtures' tiny
  ones with the test tokenizer);
- text: CoNLL sentences read through ``spacy_luke.corpora.conll``, generated sentences, random entities;
- the environment: torch threads, glibc malloc settings;
- timing (``Timer``, ``timed``, ``best_of``, ``Stopwatch``), memory (``rss_bytes``,
  ``peak_rss_bytes``, ``PeakRSS``), the machine (``lscpu``, ``cpu_model``, ``machine``) and
  measuring several systems in turn on the same input (``alternate``).
"""
from __future__ import annotations

import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
CONLL_ENV = "SPACY_LUKE_CONLL_DIR"
#: The default CoNLL-2003 folder: $SPACY_LUKE_CONLL_DIR, else conll2003/ in the current folder.
CONLL_DIR = Path(os.environ.get(CONLL_ENV) or "conll2003")

# transformers.LukeConfig arguments of the public checkpoints' shapes (and a tiny one for smoke runs)
SHAPES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, entity_emb_size=256),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, entity_emb_size=256),
    # a small shape for a quick smoke run of a script
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, entity_emb_size=32),
}
SPECIAL_ENTITIES = ["[PAD]", "[UNK]", "[MASK]", "[MASK2]"]

# glibc settings that keep freed memory for reuse instead of returning it to the OS: on VMs
# where a page fault is expensive this changes the measured speed several times over.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296", "MALLOC_TOP_PAD_": "268435456"}


def add_conll_argument(parser) -> None:
    """``--conll-dir``: the CoNLL-2003 folder (train.txt, valid.txt, test.txt)."""
    parser.add_argument(
        "--conll-dir", type=Path, default=CONLL_DIR,
        help=f"folder of CoNLL-2003 train.txt / valid.txt / test.txt (default: ${CONLL_ENV}, else ./conll2003); "
        "without it the script uses generated text",
    )


def tests_on_path() -> None:
    """Make ``tests/`` importable: its helpers import as ``support.<module>`` (``tests/support/``)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


# ---------------------------------------------------------------------------------- checkpoints


def write_json(folder: Path, name: str, data) -> None:
    (Path(folder) / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")


def entity_vocab(size: int) -> Dict[str, int]:
    """An entity vocabulary of ``size`` rows: the four specials, then ``Entity i``."""
    return {**{name: i for i, name in enumerate(SPECIAL_ENTITIES)}, **{f"Entity {i}": i for i in range(4, size)}}


def tie_queries(model) -> None:
    """Make the entity-aware query matrices equal to the word-to-word one (as in the public checkpoints)."""
    import torch

    base = getattr(model, "luke", model)
    with torch.no_grad():
        for layer in base.encoder.layer:
            att = layer.attention.self
            for proj in (att.w2e_query, att.e2w_query, att.e2e_query):
                proj.weight.copy_(att.query.weight)
                proj.bias.copy_(att.query.bias)


def save_random_luke(folder: Path, head: str, *, seed: int = 0, prepare: Optional[Callable] = None, **config):
    """transformers' ``head`` (``"LukeModel"``, ``"LukeForEntitySpanClassification"``, ...) with random
    weights (``torch.manual_seed(seed)``) for ``transformers.LukeConfig(**config)``; ``prepare(model)``
    may change it; then ``save_pretrained(folder)``. Returns the model (in eval mode)."""
    import torch
    import transformers

    settings = transformers.LukeConfig(**config)
    torch.manual_seed(seed)
    model = getattr(transformers, head)(settings).eval()
    if prepare is not None:
        prepare(model)
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return model


FIXTURE_HEADS = {"ner": "LukeForEntitySpanClassification", "typer": "LukeForEntityClassification",
                 "relations": "LukeForEntityPairClassification", "encoder": "LukeModel"}


def fixture_checkpoint(root: Path, kind: str, name: Optional[str] = None, seed: int = 0, **shape) -> Path:
    """The test fixtures' checkpoint (``tests/support/pipes.py``: the test tokenizer, random weights,
    hidden size 32 unless ``shape`` says otherwise) for ``kind`` in FIXTURE_HEADS, in ``root / name``
    (reused when there)."""
    tests_on_path()
    import support.pipes as fx

    labels = {"ner": fx.NER_LABELS, "typer": fx.TYPE_LABELS, "relations": fx.RELATION_LABELS,
              "encoder": {0: "LABEL_0", 1: "LABEL_1"}}[kind]
    return fx.build_checkpoint(Path(root), name or kind, FIXTURE_HEADS[kind], labels, seed=seed, **shape)


# ----------------------------------------------------------------------------------------- text


def conll_sentences(path: Path) -> List[List[str]]:
    """The tokens of every sentence of a CoNLL file, read by ``spacy_luke.corpora.conll.read_conll``."""
    from spacy_luke.corpora.conll import read_conll

    return [[token for token, _ in sentence] for document in read_conll(path) for sentence in document]


def generated_sentences(n: int, seed: int = 0) -> List[List[str]]:
    rng = random.Random(seed)
    names = ["Tokyo", "Japan", "Paris", "Obama", "Reuters", "Germany", "EU", "Clinton", "Manchester", "United"]
    words = ["the", "of", "said", "on", "in", "a", "to", "was", "and", "game", "minister", "talks", "won", "beat", "."]
    return [[rng.choice(names if rng.random() < 0.2 else words) for _ in range(rng.randint(3, 30))] for _ in range(n)]


def load_sentences(n: int, source: Optional[str] = None, conll_dir: Optional[Path] = None) -> Tuple[List[List[str]], str]:
    """The first ``n`` sentences of ``source`` (default: ``conll_dir``'s test.txt, the CoNLL-2003 test
    set) when the file is there, else generated ones; and a line saying which."""
    path = Path(source) if source else Path(conll_dir or CONLL_DIR) / "test.txt"
    if path.is_file():
        return conll_sentences(path)[:n], f"CoNLL-2003 {path.name}, first {n} sentences"
    return generated_sentences(n), f"generated text ({n} sentences; {path} not found)"


def random_ents(doc, rng, *, first: Optional[Tuple[int, int]] = None, gap: Tuple[int, int] = (0, 3),
                limit: Optional[int] = None, label: str = "E") -> list:
    """Spans of 1-3 tokens, ``gap`` (numpy ``integers`` bounds) tokens apart, starting at 0 (or at a
    draw from ``first``), at most ``limit`` of them."""
    from spacy.tokens import Span

    spans, i = [], int(rng.integers(*first)) if first else 0
    while i < len(doc) and (limit is None or len(spans) < limit):
        width = int(rng.integers(1, 4))
        if i + width <= len(doc):
            spans.append(Span(doc, i, i + width, label=label))
        i += width + int(rng.integers(*gap))
    return spans


# ---------------------------------------------------------------------------------- environment


def set_threads(n: int) -> None:
    """torch's intra-op threads (0: leave torch's default, all cores)."""
    if n:
        import torch

        torch.set_num_threads(n)


def use_malloc(mode: str) -> None:
    """``tuned``: re-run this process with TUNED_MALLOC in its environment (once)."""
    if mode == "tuned" and os.environ.get("MALLOC_TRIM_THRESHOLD_") is None:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TUNED_MALLOC})


def malloc_description(mode: str) -> str:
    return "tuned " + " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()) if mode == "tuned" else "glibc default"


# --------------------------------------------------------------------------------------- timing


class Timer:
    """Seconds per key, summed over every ``with timer(key):`` (and every call of ``wrap(key, fn)``)."""

    def __init__(self):
        self.totals: Dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - start

    def wrap(self, key: str, fn):
        def wrapped(*args, **kwargs):
            with self(key):
                return fn(*args, **kwargs)

        return wrapped


def timed_generator(timer: "Timer", key: str, fn: Callable, on_item: Optional[Callable] = None) -> Callable:
    """``fn`` (a generator function) whose every ``next`` is timed under ``key``."""

    def wrapped(*args, **kwargs):
        it = iter(fn(*args, **kwargs))
        while True:
            with timer(key):
                try:
                    item = next(it)
                except StopIteration:
                    return
            if on_item is not None:
                on_item(item)
            yield item

    return wrapped


# --------------------------------------------------------------------------------------- the pipes' batches


def pipe_batches(pipe, docs) -> Tuple[list, int, Iterable]:
    """``(owners, inputs, batches)`` of one call of a LUKE ``pipe`` on ``docs``: per model input its
    ``(doc index, item indices)``, the number of inputs, and the ``(input indices, padded arrays)``
    of each batch, as the pipe runs them (the model's input layer and batch runner; or, for code
    from before the model owned the path, the pipe's ``_plan`` / ``_padded_batches``)."""
    if hasattr(pipe, "_plan"):
        plan = pipe._plan(docs, pipe._items(docs))
        return plan.owners, len(plan.inputs), pipe._padded_batches(plan.inputs)
    from spacy_luke.layers.batch_runner import padded_batches

    plan = pipe.model.get_ref("inputs").predict(pipe.model_input(docs))
    return plan.owners, len(plan.inputs), padded_batches(pipe.model.get_ref("runner"), plan)


def time_input_building(pipe, timer: "Timer", on_batch: Optional[Callable] = None) -> None:
    """Count the pipe's input building (items, input layer, padding) under ``timer["input"]``."""
    pipe._items = timer.wrap("input", pipe._items)
    if hasattr(pipe, "_plan"):  # code from before the model owned the path
        pipe._plan = timer.wrap("input", pipe._plan)
        if hasattr(pipe, "_padded_batches"):
            pipe._padded_batches = timed_generator(timer, "input", pipe._padded_batches, on_batch)
        return
    import spacy_luke.layers.batch_runner as runner

    inputs = pipe.model.get_ref("inputs")
    inputs._func = timer.wrap("input", inputs._func)
    if not getattr(runner.padded_batches, "_timed", False):
        runner.padded_batches = timed_generator(timer, "input", runner.padded_batches, on_batch)
        runner.padded_batches._timed = True


def timed(fn: Callable, *args, **kwargs) -> Tuple[float, Any]:
    """``fn(*args, **kwargs)``'s wall seconds and result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def best_of(repeats: int, fn: Callable, *args, **kwargs) -> Tuple[float, Any]:
    """The fewest wall seconds of ``repeats`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        seconds, result = timed(fn, *args, **kwargs)
        best = min(best, seconds)
    return best, result


class Stopwatch:
    """Wall and process CPU seconds since it was made."""

    def __init__(self):
        self.start, self.start_cpu = time.perf_counter(), time.process_time()

    def read(self) -> Tuple[float, float]:
        return time.perf_counter() - self.start, time.process_time() - self.start_cpu


# --------------------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def with_rss_added(make: Callable[[], Any]) -> Tuple[Any, int]:
    """``make()``'s result and the resident bytes it added (after a ``gc.collect()``)."""
    before = rss_bytes()
    made = make()
    gc.collect()
    return made, rss_bytes() - before


def peak_rss_bytes() -> int:
    """VmHWM: this process's peak resident memory (per address space, so not inherited from a parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Samples the process RSS in a thread; ``peak`` is the highest value since ``reset``."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            value = rss_bytes()
            if value > self.peak:
                self.peak = value
            time.sleep(self.interval)

    def reset(self) -> int:
        self.peak = rss_bytes()
        return self.peak

    def stop(self):
        self._stop = True


# -------------------------------------------------------------------------------------- machine


def lscpu() -> Dict[str, str]:
    """``lscpu``'s fields (empty when it cannot run)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    return lscpu().get("Model name") or "unknown"


def machine() -> Dict[str, str]:
    """The CPU, its cores and ISA features that matter to the precisions, torch's threads and versions."""
    import torch

    fields = lscpu()
    flags = fields.get("Flags", "").split()
    return {
        "cpu": fields.get("Model name") or "unknown",
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "native_bf16": str(any(f in flags for f in ("avx512_bf16", "amx_bf16"))),
        "avx512": str("avx512f" in flags),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------------------ measuring


def alternate(runners: Dict[str, Callable[[Any], list]], items: Sequence, chunk: int, *,
              prepare: Callable[[Sequence], Any] = list, monitor: Optional[PeakRSS] = None,
              on_chunk: Optional[Callable[[int, Dict[str, float]], None]] = None):
    """Runs every runner on the same ``items``, ``chunk`` at a time and in turn, so that a drift of
    the machine's speed touches all of them alike. Each runner gets ``prepare(chunk_items)`` (made
    before its clock starts) and returns a list of outputs. Returns the outputs (name -> all of
    them, in order), the wall seconds and the peak RSS above each chunk's start (bytes; with
    ``monitor``). ``on_chunk(done, walls)`` is called after each chunk."""
    results = {name: [] for name in runners}
    walls = {name: 0.0 for name in runners}
    peaks = {name: 0 for name in runners}
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        for name, run in runners.items():
            inputs = prepare(part)
            gc.collect()
            base = monitor.reset() if monitor else 0
            seconds, out = timed(run, inputs)
            results[name].extend(out)
            walls[name] += seconds
            if monitor:
                peaks[name] = max(peaks[name], monitor.peak - base)
        if on_chunk:
            on_chunk(start + len(part), walls)
    return results, walls, peaks
