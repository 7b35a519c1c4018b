"""The same app on Ray Serve: replicas (each its own pipeline, batcher and worker) behind Ray's
HTTP proxy, on one machine or a cluster.

``serve.run(ray_deployment("/shared/my_pipeline", num_replicas=4, num_gpus=1))`` answers as
:func:`~spacy_luke.serve.create_app` does: the app is made here, pickled to every replica (what
to load, never a loaded pipeline) and started there. Each replica loads the pipeline from its
path (it must exist on every node) and is ready only once it has loaded (the app's start waits
for the load, ``load_first``; a pipeline that fails to load fails the replica with its own
error). Ray's own queue is bounded too (``max_queued_requests``: beyond it the proxy answers
503), and each replica takes up to ``max_ongoing_requests`` at once, so that its batcher sees
them together.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from .settings import ServeSettings

MISSING_RAY_SERVE = "Ray Serve deployments need Ray Serve: pip install 'spacy-luke[ray]'"


class LukeReplica:
    """What a replica runs before its app starts: torch on the CPUs Ray gave it."""

    def __init__(self):
        from ..annotate.ray_engine import _assigned_cpus

        threads = _assigned_cpus()
        if threads:
            import torch

            torch.set_num_threads(threads)


def ray_deployment(
    pipeline: str,
    settings: Optional[ServeSettings] = None,
    *,
    num_replicas: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_ongoing_requests: Optional[int] = None,
    max_queued_requests: Optional[int] = None,
    name: str = "spacy-luke",
    **overrides: Any,
):
    """A Ray Serve application (``serve.run(...)`` it) of ``num_replicas`` replicas of the app,
    ``num_cpus`` / ``num_gpus`` each (with GPUs the LUKE pipes run on the replica's first,
    ``cuda:0``). ``max_ongoing_requests`` per replica defaults to ``max_queue_texts`` (a request
    has at least one text, so the replica's own queue answers overload); ``max_queued_requests``
    (Ray's queue in front of the replicas) to that times the replicas. ``settings`` and
    ``overrides`` are :func:`~spacy_luke.serve.create_app`'s."""
    try:
        from ray import serve
    except ImportError:
        raise ImportError(MISSING_RAY_SERVE) from None
    from .app import create_app

    settings = replace(settings or ServeSettings(), **overrides)
    if num_gpus > 0:
        settings = replace(settings, gpu_id=0)  # Ray makes the replica's GPUs the visible ones, from 0
    elif settings.gpu_id is not None:
        raise ValueError(f"gpu_id {settings.gpu_id} with num_gpus 0: the replicas would have no GPU; give num_gpus > 0")
    ongoing = max_ongoing_requests or settings.max_queue_texts
    deployment = serve.deployment(
        serve.ingress(create_app(str(pipeline), settings, load_first=True))(LukeReplica), name=name,
        num_replicas=num_replicas, ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        max_ongoing_requests=ongoing, max_queued_requests=max_queued_requests or ongoing * num_replicas,
    )
    return deployment.bind()
