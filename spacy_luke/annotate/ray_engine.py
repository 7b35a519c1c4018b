"""The Ray engine (``--engine ray``): the local engine's job, spread over a pool of Ray actors.

Design:

* **Actors load the pipeline once, for the whole run.** ``concurrency`` :class:`LukeAnnotator`
  actors (``num_cpus`` / ``num_gpus`` each) are started at the beginning; each loads the pipeline
  from its *path* (``nlp`` is never pickled), applies the device plan on its own hardware (a GPU
  actor sees its GPU as ``cuda:0``) and then annotates batches until the input ends.
* **Bounded memory, any input size.** The driver streams the (resume-filtered) records in batches
  of ``batch_size`` and keeps at most ``IN_FLIGHT`` batches per actor submitted; it waits for the
  oldest one before submitting more. Memory holds a few batches, never the input.
* **Same records as the local engine.** Batches are the local engine's ``nlp.pipe`` batches
  (consecutive records, ``batch_size`` each), so batch-dependent numerics (padding) match too; an
  actor returns each doc's :func:`~.records.doc_record` dict (pickled: floats and key order exact)
  and, for DocBin output, ``Doc.to_bytes()`` rebuilt on the driver over one shared ``Vocab``. The
  driver writes the results in submission order, i.e. record order, into the same shards.

Why Ray Core actors and not Ray Data ``map_batches``: a Ray Data actor pool lives as long as one
dataset execution, and the input is an iterator on the driver (stdin, the resume filter). A
dataset per chunk reloads the pipeline in every actor per chunk (seconds to minutes for a large
model on a GPU, at every chunk); one dataset fed from the driver through a queue-reading
datasource does not stream (read tasks gather their output into blocks of up to 128 MiB before
anything reaches the actors, which also deadlocks a bounded feeder). Plain actors give one
pipeline load per actor, a hard memory bound and ordered output with a few lines of code, and
need only ``ray`` itself (no pyarrow / pandas).

The cluster: ``address=None`` starts a local one (all the machine's CPUs, at least enough for the
actors; a small object store) and stops it at the end; ``"auto"`` or ``"ray://head:10001"`` joins
one (each of its nodes needs spacy-luke installed). When Ray is already initialised in this
process, that cluster is used and left running.
"""
from __future__ import annotations

import logging
import math
import os
import sys
from collections import deque
from itertools import chain
from typing import Callable, Iterable, List, Optional, Tuple

from .device import DevicePlan
from .inputs import InputRecord
from .local import batched
from .pipeline import pipeline_kind
from .shards import RunStoppedError, ShardedOutput

#: Batches submitted per actor before the driver waits for the oldest result.
IN_FLIGHT = 2
#: Object store of a local cluster started here (results pass through it briefly).
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2

MISSING_RAY = "--engine ray needs Ray: pip install 'spacy-luke[ray]'"


def _assigned_cpus() -> int:
    """The whole CPUs Ray assigned to this actor (0 outside Ray or when unknown)."""
    ray = sys.modules.get("ray")  # (an actor has imported Ray; elsewhere, asking would start a cluster)
    if ray is None or not ray.is_initialized():
        return 0
    try:
        return int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))
    except Exception:  # pragma: no cover - outside an actor
        return 0


def load_in_actor(
    pipeline: str, *, lang: str = "en", gpu_id: Optional[int] = None, precision: Optional[str] = None, max_batch_cost: Optional[int] = None
):
    """(nlp, what was set) for a Ray actor (or any process): the pipeline loaded once, the device plan
    of annotate applied (a Ray GPU actor sees its GPU as ``cuda:0``), torch on the CPUs Ray assigned."""
    from .device import apply_device, plan_for_this_machine
    from .pipeline import load_pipeline

    plan = plan_for_this_machine(gpu_id, precision, max_batch_cost)
    threads = _assigned_cpus()
    if threads:  # torch uses the CPUs Ray gave this actor, whatever OMP_NUM_THREADS says
        import torch

        torch.set_num_threads(threads)
    nlp = load_pipeline(pipeline, lang=lang)
    return nlp, apply_device(nlp, plan) + plan.notes + [f"torch threads: {threads or 'default'}"]


class LukeAnnotator:
    """A Ray actor (``ray.remote(LukeAnnotator)``): one pipeline, loaded once, many batches."""

    def __init__(self, pipeline: str, lang: str, gpu: bool, precision: Optional[str], max_batch_cost: Optional[int], docbin: bool):
        self.docbin = docbin
        self.error: Optional[Exception] = None
        try:  # Ray makes a GPU actor's GPU the only visible one: cuda:0
            self.nlp, self.settings = load_in_actor(
                pipeline, lang=lang, gpu_id=0 if gpu else None, precision=precision, max_batch_cost=max_batch_cost
            )
        except Exception as err:  # raised by describe(): the driver gets the pipeline's own error
            self.error = err

    def describe(self) -> List[str]:
        """What the device plan set (waiting for it also waits for the pipeline to load)."""
        if self.error is not None:
            raise self.error
        return self.settings

    def annotate(self, batch: Tuple[InputRecord, ...]) -> List[tuple]:
        """(index, record dict, words, doc bytes or None) per record of ``batch``, in order."""
        from .records import doc_record

        out = []
        docs = self.nlp.pipe([record.text for record in batch], batch_size=len(batch))
        for doc, record in zip(docs, batch):
            data = doc.to_bytes(exclude=["tensor"]) if self.docbin else None
            out.append((record.index, doc_record(doc, record.source, record.line, record.fields), len(doc), data))
        return out


def annotate_ray(
    pipeline: str,
    records: Iterable[InputRecord],
    output: ShardedOutput,
    *,
    plan: DevicePlan,
    lang: str = "en",
    batch_size: int = 32,
    address: Optional[str] = None,
    concurrency: int = 1,
    num_cpus: Optional[float] = None,
    num_gpus: Optional[float] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> int:
    """Annotate ``records`` (already filtered for resume, in index order) into ``output`` on Ray
    actors; returns the docs written. See the module docstring."""
    try:
        import ray
    except ImportError:
        raise ValueError(MISSING_RAY) from None
    if concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {concurrency}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    cpus = 1.0 if num_cpus is None else float(num_cpus)
    gpus = (1.0 if plan.is_gpu else 0.0) if num_gpus is None else float(num_gpus)
    if cpus < 0 or gpus < 0:
        raise ValueError(f"--num-cpus / --num-gpus must not be negative, got {cpus} / {gpus}")
    if plan.is_gpu and gpus == 0:
        raise ValueError("--gpu-id with --num-gpus 0: the actors would have no GPU; give --num-gpus > 0 or drop --gpu-id")
    if not plan.is_gpu and gpus > 0:
        raise ValueError(f"--num-gpus {num_gpus} without --gpu-id: add --gpu-id 0 to run the LUKE pipes on the actors' GPUs")
    pipeline_kind(str(pipeline))  # a path that is no pipeline fails here, before any cluster
    stream = iter(records)
    first = next(stream, None)
    if first is None:  # nothing left to do (e.g. a finished run resumed): no cluster needed
        return 0
    started = _connect(ray, address, concurrency * cpus, concurrency * gpus)
    actors = []
    try:
        remote = ray.remote(LukeAnnotator).options(num_cpus=cpus, num_gpus=gpus)
        docbin = output.fmt == "docbin"
        args = (str(pipeline), lang, plan.is_gpu, plan.precision, plan.max_batch_cost, docbin)
        actors = [remote.remote(*args) for _ in range(concurrency)]
        _get(ray, [actor.describe.remote() for actor in actors])  # a pipeline that fails to load fails here
        return _run(ray, actors, batched(chain([first], stream), batch_size), output, docbin, progress)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _run(ray, actors, batches, output: ShardedOutput, docbin: bool, progress) -> int:
    """Submit ``batches`` to the least busy actor, write results in submission (= record) order."""
    vocab = None
    if docbin:
        from spacy.tokens import Doc
        from spacy.vocab import Vocab

        vocab = Vocab()
    busy = {actor: 0 for actor in actors}
    pending: deque = deque()  # (result ref, actor), oldest first
    written = 0

    def write_oldest() -> int:
        ref, actor = pending.popleft()
        results = _get(ray, ref)
        busy[actor] -= 1
        for index, record, words, data in results:
            output.write(index, record, Doc(vocab).from_bytes(data) if docbin else None)
            if progress is not None:
                progress(words)
        output.flush()
        return len(results)

    for batch in batches:
        if len(pending) >= IN_FLIGHT * len(actors):
            written += write_oldest()
        actor = min(actors, key=busy.__getitem__)
        busy[actor] += 1
        pending.append((actor.annotate.remote(batch), actor))
    while pending:
        written += write_oldest()
    return written


def _get(ray, refs):
    """``ray.get``; an exception raised in an actor is re-raised as itself (Ray's wrapper, with
    the actor's traceback, as its ``__cause__``); a lost actor or node is an expected fault that a
    re-run resumes from."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception):
            raise cause from err
        raise
    except (ray.exceptions.RayActorError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunStoppedError(
            f"a Ray actor or node was lost ({type(err).__name__}: {first}): run the same command again to resume "
            "(the records written so far are kept)"
        ) from err


def _connect(ray, address: Optional[str], cpus_needed: float, gpus_needed: float) -> bool:
    """Connect to (or start) the cluster; True when this call did (and so must shut it down)."""
    if ray.is_initialized():
        _check_resources(ray, cpus_needed, gpus_needed)
        return False
    if address is not None:  # a cluster may autoscale: its current size is not checked
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return True
    ray.init(
        num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed)),
        include_dashboard=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        _check_resources(ray, cpus_needed, gpus_needed)
    except ValueError:
        ray.shutdown()
        raise
    return True


def _check_resources(ray, cpus_needed: float, gpus_needed: float) -> None:
    """Fail now rather than wait forever for actors a fixed-size cluster cannot place."""
    have = ray.cluster_resources()
    for name, needed in (("CPU", cpus_needed), ("GPU", gpus_needed)):
        if needed > have.get(name, 0) + 1e-9:
            raise ValueError(
                f"the Ray actors need {needed:g} {name}s in all (--concurrency x --num-{name.lower()}s), "
                f"the cluster has {have.get(name, 0):g}: lower --concurrency or the per-actor {name}s"
            )
