"""Batching across requests: one worker thread per model, a bounded queue, answers split back.

The rule. Requests wait in one queue, in arrival order. The worker takes the oldest one and
opens a batch with it; the batch then takes the next requests in order while they fit, and
closes when

* the next request would take it over ``max_batch_texts`` texts or ``max_batch_chars``
  characters (a request is never split: one larger than either bound runs alone), or
* ``max_wait_ms`` have passed since its first request arrived, or
* the server is draining (everything that will come is already queued).

A request that arrived while the worker was busy has usually waited ``max_wait_ms`` already, so
under load batches close at once, full of what queued meanwhile; when idle, a lone request waits
at most ``max_wait_ms``. The worker runs ``process(texts)`` (``nlp.pipe`` over the batch; the
LUKE pipes cut it into forward passes of at most their ``max_batch_cost``) and each request gets
its own slice of the outputs, in order.

Faults. The queue holds at most ``max_queue_texts`` texts: :meth:`Batcher.submit` beyond that
raises :class:`Overloaded` (with a Retry-After estimate from the measured speed), never a wait. A
request cancelled while queued (its client went away, or it timed out) is dropped from the
queue and never run. A batch that raises fails its own requests with :class:`BatchFailed`
(the cause in one line) and the worker goes on with the next. :meth:`close` refuses new
requests (:class:`ShuttingDown`) and the worker ends once the accepted ones are answered.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

logger = logging.getLogger("spacy_luke.serve")

#: Retry-After bounds (seconds).
RETRY_AFTER_RANGE = (1, 60)


class Overloaded(Exception):
    """The queue is full: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is draining: it answers the requests it accepted and takes no new ones."""


class BatchFailed(Exception):
    """The batch holding this request failed; the message names the cause."""


class Job:
    """One request in the queue: its texts and the future of its outputs."""

    __slots__ = ("texts", "chars", "arrived", "future", "queued")

    def __init__(self, texts: Sequence[str]):
        self.texts = list(texts)
        self.chars = sum(len(text) for text in self.texts)
        self.arrived = time.monotonic()
        self.future: Future = Future()
        self.queued = False  # counted in the queue's texts


def describe_error(err: BaseException) -> str:
    """The cause of a failure in one line, no traceback."""
    message = " ".join(str(err).split())
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


class Batcher:
    """The queue and the worker thread of one model (see the module docstring)."""

    def __init__(
        self,
        process: Callable[[List[str]], Sequence[Any]],
        *,
        max_wait_ms: float = 10.0,
        max_batch_texts: int = 64,
        max_batch_chars: int = 50_000,
        max_queue_texts: int = 1024,
        name: str = "spacy-luke-batcher",
    ):
        self.process = process
        self.max_wait = max_wait_ms / 1000.0
        self.max_batch_texts = max_batch_texts
        self.max_batch_chars = max_batch_chars
        self.max_queue_texts = max_queue_texts
        self._queue: Deque[Job] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._closing = False
        self._in_flight = 0  # accepted requests not yet answered (or dropped)
        self._seconds_per_text = 0.0  # moving average of the batches' wall time per text
        self.stats: Dict[str, int] = {"batches": 0, "texts": 0, "requests": 0, "failed_batches": 0, "dropped": 0, "rejected": 0}
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the request side

    @property
    def queued_texts(self) -> int:
        """Texts waiting in the queue (not yet in a batch)."""
        return self._queued_texts

    @property
    def in_flight(self) -> int:
        """Requests accepted and not yet answered: queued, in the batch being gathered or run."""
        return self._in_flight

    def submit(self, texts: Sequence[str]) -> Job:
        """Queue a request; its ``future`` gets the outputs (one per text) or the batch's error."""
        job = Job(texts)
        with self._cond:
            if self._closing:
                raise ShuttingDown("the server is shutting down: it answers the requests it accepted and takes no new ones")
            if self._queued_texts + len(job.texts) > self.max_queue_texts:
                self.stats["rejected"] += 1
                raise Overloaded(
                    f"the queue is full ({self._queued_texts} texts waiting, this request has {len(job.texts)}; "
                    f"the limit, max_queue_texts, is {self.max_queue_texts}): retry later",
                    self._retry_after(),
                )
            self._queue.append(job)
            self._queued_texts += len(job.texts)
            job.queued = True
            self._in_flight += 1
            self._cond.notify()
        job.future.add_done_callback(lambda future: self._done(job))
        return job

    def _done(self, job: Job) -> None:
        with self._cond:
            self._in_flight -= 1
            if job.future.cancelled():  # only a queued job can be: the worker skips it
                self._unqueue(job)
                self.stats["dropped"] += 1

    def _unqueue(self, job: Job) -> None:
        if job.queued:
            job.queued = False
            self._queued_texts -= len(job.texts)

    def _retry_after(self) -> int:
        low, high = RETRY_AFTER_RANGE
        return int(min(high, max(low, math.ceil(self._queued_texts * self._seconds_per_text))))

    def close(self) -> None:
        """Take no new requests; the worker ends once the queued ones are answered."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the worker to end (after :meth:`close`); False when it is still running."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the worker

    def _start(self, job: Job) -> bool:
        """Move ``job`` (just taken off the queue) into the batch (False: it was cancelled while queued)."""
        self._unqueue(job)
        return job.future.set_running_or_notify_cancel()

    def _next_batch(self) -> Optional[List[Job]]:
        with self._cond:
            first = None
            while first is None:
                while not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                job = self._queue.popleft()
                first = job if self._start(job) else None
            batch, texts, chars = [first], len(first.texts), first.chars
            deadline = first.arrived + self.max_wait
            while texts < self.max_batch_texts and chars < self.max_batch_chars:
                if self._queue:
                    job = self._queue[0]
                    if not job.future.cancelled() and (
                        texts + len(job.texts) > self.max_batch_texts or chars + job.chars > self.max_batch_chars
                    ):
                        break
                    self._queue.popleft()
                    if self._start(job):
                        batch.append(job)
                        texts, chars = texts + len(job.texts), chars + job.chars
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._cond.wait(remaining)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: List[Job]) -> None:
        texts = [text for job in batch for text in job.texts]
        start = time.perf_counter()
        try:
            outputs = list(self.process(texts))
            if len(outputs) != len(texts):
                raise RuntimeError(f"the pipeline gave {len(outputs)} outputs for {len(texts)} texts")
        except BaseException as err:  # noqa: BLE001 - one batch's failure is its requests' answer
            self.stats["failed_batches"] += 1
            failure = BatchFailed(f"the batch holding this request failed: {describe_error(err)}")
            logger.error("a batch of %d requests (%d texts) failed: %s", len(batch), len(texts), describe_error(err))
            logger.debug("the batch failed", exc_info=True)
            for job in batch:
                job.future.set_exception(failure)
            if not isinstance(err, Exception):
                raise
            return
        per_text = (time.perf_counter() - start) / len(texts)
        self._seconds_per_text = per_text if not self._seconds_per_text else 0.8 * self._seconds_per_text + 0.2 * per_text
        self.stats["batches"] += 1
        self.stats["texts"] += len(texts)
        self.stats["requests"] += len(batch)
        offset = 0
        for job in batch:
            job.future.set_result(outputs[offset: offset + len(job.texts)])
            offset += len(job.texts)
