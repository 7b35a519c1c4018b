"""spacy-transformers integration: our LUKE encoder as the model of the stock ``transformer`` pipe.

``spacy-luke.LukeTransformerModel.v1`` (:mod:`.architectures`) makes ``doc._.trf_data`` a
spacy-transformers ``TransformerData``, so spaCy's own pipes (tagger, ner, spancat, textcat...)
listen to LUKE through ``spacy-transformers.TransformerListener.v1``. Needs the optional extra
``spacy-luke[transformers]``; importing this package does not (nor does it import torch).

Entity states (with ``entities = "mask"`` or ``"kb_ids"``): ``doc._.trf_data.model_output``
holds ``entity_last_hidden_state`` ``(windows, entities, hidden)`` and ``entity_token_spans``
``(windows, entities, 2)``, the doc token ``[start, end)`` of each slot (``-1``: padding);
:func:`entity_states` reads them per span.
"""
from typing import Dict, Tuple

import numpy as np

from .architectures import LUKE_TOK2VEC_TRANSFORMER, LUKE_TRANSFORMER, luke_tok2vec_transformer, luke_transformer_model


def entity_states(doc) -> Dict[Tuple[int, int], np.ndarray]:
    """``{(start, end): vector}``: the LUKE entity state of each entity span of ``doc`` that went in
    as an entity input (token offsets; averaged over the windows that held it). Empty when the
    transformer ran without entities."""
    data = doc._.get("trf_data") if doc.has_extension("trf_data") else None
    if data is None or "entity_token_spans" not in data.model_output:
        return {}
    spans = _host(data.model_output["entity_token_spans"]).reshape(-1, 2)
    states = _host(data.model_output["entity_last_hidden_state"]).reshape(len(spans), -1)
    sums: Dict[Tuple[int, int], np.ndarray] = {}
    counts: Dict[Tuple[int, int], int] = {}
    for (start, end), state in zip(spans.tolist(), states):
        if start < 0:
            continue
        key = (start, end)
        sums[key] = sums[key] + state if key in sums else state.astype(np.float32, copy=True)
        counts[key] = counts.get(key, 0) + 1
    return {key: value / counts[key] for key, value in sums.items()}


def _host(array) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array)  # cupy -> numpy


__all__ = ["LUKE_TOK2VEC_TRANSFORMER", "LUKE_TRANSFORMER", "entity_states", "luke_tok2vec_transformer", "luke_transformer_model"]
