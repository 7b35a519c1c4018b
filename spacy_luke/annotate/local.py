"""The local engine: one process (or spaCy's ``n_process``) streams records through ``nlp.pipe``
and writes each doc's record as soon as it is done.

With ``n_process > 1``, spaCy forks worker processes, each holding a copy of the model. They end
with their parent however it ends (``kill -9`` included): on Linux each worker asks the kernel for
SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a thread in each worker watches for
the parent to go away. This applies to workers started by fork (the default on Linux); spaCy
starts them with multiprocessing's default start method.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, Optional, Tuple

from .inputs import InputRecord
from .records import doc_record
from .shards import ShardedOutput

#: How often a worker without PR_SET_PDEATHSIG checks that its parent is alive (seconds).
PARENT_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def annotate_local(nlp, records: Iterable[InputRecord], output: ShardedOutput, *, batch_size: int = 32, n_process: int = 1, progress=None) -> int:
    """Annotate ``records`` (already filtered for resume) into ``output``; returns the docs written."""
    pairs = ((record.text, record) for record in records)
    written = 0
    with workers_end_with_parent(n_process > 1):
        for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size, n_process=n_process):
            output.write(record.index, doc_record(doc, record.source, record.line, record.fields), doc)
            written += 1
            if written % batch_size == 0:
                output.flush()
            if progress is not None:
                progress(len(doc))
    output.flush()
    return written


def unfinished(records: Iterable[InputRecord], output: ShardedOutput, skipped: Optional[Callable[[], None]] = None) -> Iterator[InputRecord]:
    """The records not yet in ``output`` (a re-run resumes where the last one stopped);
    ``skipped()`` is called for each record passed over."""
    for record in records:
        if not output.skip(record.index):
            yield record
        elif skipped is not None:
            skipped()


def batched(records: Iterable[InputRecord], size: int) -> Iterator[Tuple[InputRecord, ...]]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield tuple(chunk)
            chunk = []
    if chunk:
        yield tuple(chunk)


# ------------------------------------------------------------------------------------ worker lifetime

_parent_pid = None  # set while a run's workers may be forked


def _bind_to_parent() -> None:
    """In a forked worker: end when the parent ends."""
    global _parent_pid
    parent, _parent_pid = _parent_pid, None  # the worker's own children are not bound to it
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request: end now
                    os._exit(1)
                return
        except (OSError, AttributeError):  # pragma: no cover - no prctl: watch instead
            pass

    def watch() -> None:  # pragma: no cover - platforms without PR_SET_PDEATHSIG
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="spacy-luke-parent-watch", daemon=True).start()


_registered = False


@contextlib.contextmanager
def workers_end_with_parent(active: bool):
    """While the block runs, processes forked from this one end when it ends."""
    global _parent_pid, _registered
    if not active or not hasattr(os, "register_at_fork"):
        yield
        return
    if not _registered:
        os.register_at_fork(after_in_child=_bind_to_parent)
        _registered = True
    previous, _parent_pid = _parent_pid, os.getpid()
    try:
        yield
    finally:
        _parent_pid = previous
