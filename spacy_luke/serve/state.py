"""What a server holds: the pipeline (loaded in the background), its device plan and its batcher.

``status`` goes ``loading`` -> ``ready`` (or ``failed``, with ``error``) -> ``draining``; only a
ready server takes requests. Imports no web framework (the app and the Ray deployment share it).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .batcher import Batcher, describe_error
from .settings import ServeSettings

logger = logging.getLogger("spacy_luke.serve")

#: What a server is built over: a pipeline, a path or name (annotate's loader), or a function making one.
PipelineSource = Union[str, Path, Any, Callable[[], Any]]
WARM_UP = "Warm up: the first call builds what later calls reuse."


class ServeState:
    def __init__(self, source: PipelineSource, settings: ServeSettings):
        self.source = source
        self.settings = settings
        self.status = "loading"
        self.error: Optional[str] = None
        self.nlp = None
        self.batcher: Optional[Batcher] = None
        self.device = "cpu"
        self.notes: List[str] = []
        self.loaded = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def __getstate__(self):
        """Pickled (a Ray Serve app is pickled to its replicas): what to load, never what was loaded."""
        if self._started:
            raise TypeError("a started server cannot be pickled: pickle the app before it starts")
        return {"source": self.source, "settings": self.settings}

    def __setstate__(self, state) -> None:
        self.__init__(state["source"], state["settings"])

    @property
    def name(self) -> str:
        if isinstance(self.source, (str, Path)):
            return str(self.source)
        return getattr(self.nlp, "meta", {}).get("name", "") if self.nlp is not None else ""

    def start(self) -> None:
        """Load the pipeline in a background thread (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="spacy-luke-load", daemon=True).start()

    def wait_loaded(self, timeout: Optional[float] = None) -> bool:
        """Wait for the load to end (ready or failed); False when it is still loading."""
        return self.loaded.wait(timeout)

    def _load(self) -> None:
        try:
            from ..annotate.device import apply_device, plan_for_this_machine

            nlp = self._pipeline()
            settings = self.settings
            plan = plan_for_this_machine(settings.gpu_id, settings.precision, settings.max_batch_cost)
            self.notes = plan.notes + apply_device(nlp, plan)
            for note in self.notes:
                logger.info("%s", note)
            self.device = plan.device
            self.nlp = nlp
            self.process([WARM_UP])
            self.batcher = Batcher(self.process, **settings.batching())
            self.status = "ready"
        except Exception as err:  # noqa: BLE001 - reported by /health and by the command line
            self.error = describe_error(err)
            logger.error("the pipeline did not load: %s", self.error)
            logger.debug("the pipeline did not load", exc_info=True)
            self.status = "failed"
        finally:
            self.loaded.set()

    def _pipeline(self):
        from spacy.language import Language

        if isinstance(self.source, Language):
            return self.source
        if isinstance(self.source, (str, Path)):
            from ..annotate.pipeline import load_pipeline

            return load_pipeline(str(self.source), lang=self.settings.lang)
        nlp = self.source()
        if not isinstance(nlp, Language):
            raise TypeError(f"the pipeline function returned a {type(nlp).__name__}, not a spaCy Language")
        return nlp

    def process(self, texts: List[str]) -> list:
        """The docs of ``texts``: one ``nlp.pipe`` call over the batch (run by the batcher's worker)."""
        return list(self.nlp.pipe(texts, batch_size=max(1, len(texts))))

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Take no new requests, answer the accepted ones; False when they were not done in ``timeout``."""
        if self.status == "ready":
            self.status = "draining"
        if self.batcher is None:
            return True
        self.batcher.close()
        return self.batcher.join(timeout)

    def describe(self) -> Dict[str, Any]:
        """``GET /v1/pipeline``: the pipes, their labels, precision and device, and the server's rules."""
        from ..annotate.device import luke_pipes

        luke = dict(luke_pipes(self.nlp))
        pipes = []
        for name, pipe in self.nlp.pipeline:
            info: Dict[str, Any] = {"name": name, "factory": self.nlp.get_pipe_meta(name).factory, "labels": _labels(pipe)}
            if name in luke:
                info.update(luke=True, precision=pipe.cfg.get("precision"), max_batch_cost=pipe.cfg.get("max_batch_cost"), device=self.device)
            pipes.append(info)
        precisions = sorted({info["precision"] for info in pipes if info.get("precision")})
        return {
            "pipeline": self.name, "lang": self.nlp.lang, "pipes": pipes, "device": self.device,
            "precision": precisions[0] if len(precisions) == 1 else precisions or None,
            "batching": self.settings.batching(), "limits": self.settings.limits(), "notes": self.notes,
            "stats": dict(self.batcher.stats) if self.batcher else {},
        }


def _labels(pipe) -> List[str]:
    try:
        return [str(label) for label in getattr(pipe, "labels", ()) or ()]
    except Exception:  # noqa: BLE001 - a pipe whose labels cannot be read has none to show
        return []
