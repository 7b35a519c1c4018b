"""What a server takes and how it batches: one dataclass, each setting documented once (the
command line's options are made from it; the README names each one)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterator, Optional, Tuple

#: The link of a linked entity on the page at ``/``: ``{}`` = its kb_id, URL-encoded.
WIKIPEDIA = "https://en.wikipedia.org/wiki/{}"


def _setting(default: Any, help: str, minimum: Optional[float] = None) -> Any:
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True)
class ServeSettings:
    """The settings of :func:`spacy_luke.serve.create_app` (and of ``python -m spacy_luke serve``)."""

    # Where the LUKE pipes run, as in annotate (spacy_luke.annotate.device).
    gpu_id: Optional[int] = _setting(None, "run the LUKE pipes on this CUDA device (default: CPU)", 0)
    precision: Optional[str] = _setting(None, "precision mode of every LUKE pipe (default: each pipe's own)")
    max_batch_cost: Optional[int] = _setting(None, "padded cost per forward pass of every LUKE pipe (default: the pipe's; x8 on a GPU)", 1)
    lang: str = _setting("en", "a LUKE checkpoint as PIPELINE: language of the blank tokenizer")
    # Batching across requests (spacy_luke.serve.batcher).
    max_wait_ms: float = _setting(10.0, "a batch closes this long after its first request arrived", 0)
    max_batch_texts: int = _setting(64, "a batch closes before it would hold more texts (a larger request runs alone)", 1)
    max_batch_chars: int = _setting(50_000, "a batch closes before it would hold more characters (a larger request runs alone)", 1)
    # Limits.
    max_queue_texts: int = _setting(1024, "texts waiting at most; a request beyond is answered 503 with Retry-After", 1)
    max_texts: int = _setting(128, "texts per request at most (else 413)", 1)
    max_chars: int = _setting(20_000, "characters per text at most (else 413)", 1)
    max_body_bytes: int = _setting(4 * 1024 * 1024, "bytes per request body at most (else 413)", 1)
    timeout_s: float = _setting(60.0, "a request without its answer after this long is answered 503 (and dropped from the queue)", 0.001)
    kb_url_template: str = _setting(WIKIPEDIA, "the page's link of a linked entity, {} = its kb_id, URL-encoded with spaces as _")

    def __post_init__(self) -> None:
        for name, _, _, minimum, _ in self.described():
            value = getattr(self, name)
            if minimum is not None and value is not None and value < minimum:
                raise ValueError(f"{name} must be at least {minimum}, got {value}")
        try:
            linked = self.kb_url_template.format("x") != self.kb_url_template.format("y")
        except (IndexError, KeyError, ValueError):
            linked = False
        if not linked:
            raise ValueError(f"kb_url_template {self.kb_url_template!r} is not a link with one {{}} where the kb_id goes")

    @classmethod
    def described(cls) -> Iterator[Tuple[str, str, Any, Optional[float], str]]:
        """(name, type: "int", "float" or "str", default, minimum, help) of every setting."""
        for f in fields(cls):
            kind = str(f.type).replace("Optional[", "").rstrip("]")
            yield f.name, kind, f.default, f.metadata["minimum"], f.metadata["help"]

    def batching(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in ("max_wait_ms", "max_batch_texts", "max_batch_chars", "max_queue_texts")}

    def limits(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in ("max_texts", "max_chars", "max_body_bytes", "max_queue_texts", "timeout_s")}
