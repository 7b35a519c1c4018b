"""``luke_entity_vectors``: contextual entity vectors from the LUKE encoder (no task head).

All spans of a word window (``doc.ents`` by default, or the ``candidates`` suggester's) go in
together as entities, without markers, exactly as transformers' ``LukeModel`` does when given
several ``entity_spans``: each entity is the [MASK] entity (or, with ``use_kb_ids = true`` and a
``span.kb_id_`` that is a title of the entity vocabulary, that Wikipedia entity: LUKE's
knowledge-enhanced mode) placed over the span's word pieces.

Pooling: none beyond LUKE's own. The entity's input embedding is its entity embedding plus
the mean of the position embeddings of the span's word pieces; the vector written is that
entity token's last hidden state (``entity_last_hidden_state``), which attends to every word
of the window and to the other entities. ``Span._.luke_vector`` holds it as a float32 numpy
array of ``hidden_size`` values.

With ``set_vector_hooks = true``, ``span.vector`` returns ``span._.luke_vector`` (zeros for a
span the pipe did not encode) and ``span.similarity(other)`` is the cosine of the two vectors.
The hooks live on the Doc object and are not serialized (DocBin, ``n_process``): the vectors are.
Windows and passes follow ``luke_ner`` (long docs: windows centred on each sentence).
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Config, Model

from ._shared.suggesters import Suggester
from ._shared.extensions import install_vector_extensions
from ..layers.kb_inputs import check_kb_inputs, doc_kb_ids, kb_entity_rows
from ._shared.settings import SHARED_SETTINGS, document_settings
from ._shared.items_pipe import ItemsPipe
from ..layers.call_plan import SpanItems, item_spans
from ._shared.loaders import CheckpointLoader
from ._shared.marked import doc_spans

DEFAULT_ENCODER_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntityEncoder.v1"
mixed_precision = false
"""
)["model"]


VECTORS_SETTINGS = {
    **SHARED_SETTINGS,
    "model": DEFAULT_ENCODER_MODEL,
    "candidates": None,
    "use_kb_ids": False,
    "set_vector_hooks": False,
    "max_entities_per_pass": 32,
    "lite": None,
}


@Language.factory("luke_entity_vectors", assigns=["span._.luke_vector"], default_config=VECTORS_SETTINGS)
@document_settings(VECTORS_SETTINGS, lite="kb_ids")
def make_luke_entity_vectors(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    candidates: Optional[Suggester],
    use_kb_ids: bool,
    set_vector_hooks: bool,
    max_entities_per_pass: int,
    max_batch_cost: int,
    lite: Optional[bool],
    precision: str = "float32",
    engine: str = "torch",
) -> "LukeEntityVectors":
    """Contextual LUKE entity vectors in Span._.luke_vector.

    pretrained (Optional[str]): hub id or local folder of a LUKE checkpoint (e.g. studio-ousia/luke-base).
    candidates (Optional[Suggester]): the spans to encode; default: doc.ents.
    use_kb_ids (bool): input a span whose kb_id_ is an entity-vocabulary title as that Wikipedia entity (else [MASK]).
    set_vector_hooks (bool): make span.vector / span.similarity use the LUKE vector.
    """
    return LukeEntityVectors(
        nlp.vocab, model, name, pretrained=pretrained, candidates=candidates, use_kb_ids=use_kb_ids,
        set_vector_hooks=set_vector_hooks, max_entities_per_pass=max_entities_per_pass, max_batch_cost=max_batch_cost,
        lite=check_kb_inputs(name, use_kb_ids, lite), precision=precision, engine=engine, lang=nlp.lang,
    )


class LukeEntityVectors(ItemsPipe):
    head = "LukeModel"

    def __init__(
        self,
        vocab,
        model: Model,
        name: str = "luke_entity_vectors",
        *,
        pretrained: Optional[str] = None,
        candidates: Optional[Suggester] = None,
        use_kb_ids: bool = False,
        set_vector_hooks: bool = False,
        lang: Optional[str] = None,
        **settings: Any,
    ):
        check_kb_inputs(name, use_kb_ids, settings.get("lite"))
        super().__init__(
            vocab, model, name, pretrained=pretrained, use_kb_ids=use_kb_ids, set_vector_hooks=set_vector_hooks, lang=lang, **settings
        )
        self.candidates = candidates
        install_vector_extensions()

    @property
    def labels(self):
        return tuple()

    # ------------------------------------------------------------------ predict / annotate

    def _items(self, docs: Sequence[Doc]) -> List[np.ndarray]:
        return doc_spans(self.name, self.candidates, docs)

    def _model_items(self, docs: Sequence[Doc], spans: List[np.ndarray]) -> List[SpanItems]:
        """All spans of a word window go in together (no markers): as [MASK] entities, or, with
        ``use_kb_ids``, a linked span as its own entity."""
        if not self.cfg["use_kb_ids"]:
            return spans
        vocab, lang = self._tokenizer.entity_vocab, self.cfg.get("lang")
        return [SpanItems(s, kb_entity_rows(doc_kb_ids(doc), s, vocab, lang)) if len(s) else s for doc, s in zip(docs, spans)]

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        for doc, (items, vectors, done) in zip(docs, predictions):
            spans = item_spans(items)
            for i in np.flatnonzero(done).tolist():
                Span(doc, int(spans[i, 0]), int(spans[i, 1]))._.luke_vector = np.ascontiguousarray(vectors[i], dtype=np.float32)
            if self.cfg["set_vector_hooks"] and len(doc):
                hidden = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else None
                doc.user_span_hooks["vector"] = _LukeVector(hidden)
                doc.user_span_hooks["similarity"] = _cosine_similarity

    # ------------------------------------------------------------------ no training

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        loader: Optional[CheckpointLoader] = None,
    ) -> None:
        """Load the encoder weights (from ``loader`` or ``pretrained``); the pipe has nothing to train."""
        self._load(self._checkpoint_to_initialize(loader))

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None, losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """Nothing to train (the vectors are the pretrained encoder's): losses unchanged."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        return losses

    @property
    def is_trainable(self) -> bool:
        return False


class _LukeVector:
    """``span.vector`` hook: the LUKE vector, or zeros for a span the pipe did not encode."""

    def __init__(self, size: Optional[int]):
        self.size = size

    def __call__(self, span: Span) -> np.ndarray:
        vector = span._.luke_vector
        if vector is not None:
            return np.asarray(vector, dtype=np.float32)
        return np.zeros(self.size or 0, dtype=np.float32)


def _cosine_similarity(span: Span, other) -> float:
    a = span.vector
    b = other.vector
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare a LUKE span vector of size {a.shape} with a vector of size {b.shape}.")
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm else 0.0
