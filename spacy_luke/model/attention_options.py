"""How the encoder runs attention: one immutable options object, read at forward time.

Each :class:`~spacy_luke.model.encoder.Encoder` holds an :class:`AttentionOptions` (its
``options``, fixed when the model is configured: ``model.set_attention_options(...)``,
``model.set_attention_implementation(...)``, ``model.luke.encoder.unpad = True``). A call can
change them for itself only with :func:`attention_options`, a context variable (each thread and
each asyncio task has its own), so a pipe's predictions may run from many threads at once::

    with attention_options(unpad=True):
        model(**inputs)

The encoder resolves the options once per forward pass (:func:`resolve`) and hands them down
to every layer; no module reads or flips a switch on another.
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Dict, Iterator

#: Scaled dot-product attention: one fused ``F.scaled_dot_product_attention`` call, or the
#: scores written out (softmax(q k^T * scale + mask) v, as the paper writes it).
IMPLS = ("sdpa", "eager")


@dataclasses.dataclass(frozen=True)
class AttentionOptions:
    """The attention switches of an encoder; every path is tested against the plain one.

    impl: ``"sdpa"`` (default) or ``"eager"`` (see :mod:`.sdpa`). Returning attention
        probabilities (``output_attentions``) always runs eager.
    unpad: run the layers on the real tokens of a padded batch only (see :mod:`.unpadded`):
        the same states at real positions, zeros in the padded slots.
    fused_qkv: with shared queries, in inference without autograd, one ``(3 * hidden) x hidden``
        product from a fused copy of the Q/K/V weights instead of three (see :mod:`.qkv`). It costs
        one more copy of those weights and gave no gain on a 2-core AVX2 CPU; it is meant for GPUs.
    shared_queries: run plain attention when the four entity-aware query projections are equal
        (true of every pretrained checkpoint; exact). Off: always the entity-aware computation.
    """

    impl: str = "sdpa"
    unpad: bool = False
    fused_qkv: bool = False
    shared_queries: bool = True

    def __post_init__(self) -> None:
        if self.impl not in IMPLS:
            raise ValueError(f"Unknown attention implementation {self.impl!r}; choose one of {IMPLS}.")

    def replace(self, **changes: Any) -> "AttentionOptions":
        """These options with ``changes`` (checked: unknown names and values raise)."""
        return dataclasses.replace(self, **changes) if changes else self


# The changes of the enclosing attention_options() calls (never mutated: each call sets a new dict).
_OVERRIDES: ContextVar[Dict[str, Any]] = ContextVar("spacy_luke_attention_options", default={})


@contextmanager
def attention_options(**changes: Any) -> Iterator[None]:
    """Run the model calls inside with these options changed, in this thread (or task) only.

    Nested uses combine (the inner one wins on a name it sets). The encoder's own options are
    left as they are.
    """
    AttentionOptions().replace(**changes)  # unknown names or values: fail here, not in forward
    token = _OVERRIDES.set({**_OVERRIDES.get(), **changes})
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


def resolve(options: AttentionOptions) -> AttentionOptions:
    """``options`` with the changes of the enclosing :func:`attention_options` calls, if any."""
    overrides = _OVERRIDES.get()
    return options.replace(**overrides) if overrides else options
