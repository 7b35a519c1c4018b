"""Running annotate in a test: quietly (no progress bar, warnings dropped), and a local Ray cluster."""
from __future__ import annotations

import contextlib

from spacy_luke.annotate import annotate


def run(pipeline, inputs, output, **settings):
    """``annotate`` of ``inputs`` into ``output`` without a progress bar or printed warnings."""
    return annotate(str(pipeline), [str(name) for name in inputs], str(output), progress=False, report=lambda message: None, **settings)


@contextlib.contextmanager
def local_ray(num_cpus: int):
    """A local Ray cluster of ``num_cpus`` logical CPUs (a small object store), shut down after."""
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
