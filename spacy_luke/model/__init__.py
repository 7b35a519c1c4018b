"""Pure-PyTorch LUKE / mLUKE (no spaCy imports here).

The names below are imported when first read (``from spacy_luke.model import LukeModel``), so that
``spacy_luke.model.views.precision`` (the precision registry) imports without torch.
"""
from typing import Any

#: Each public name and the module it comes from.
_WHERE = {
    "CheckpointError": ".checkpoint",
    "LukeConfig": ".config",
    "LukeForEntityDisambiguation": ".entity_disambiguation",
    "LukeForEntityClassification": ".heads",
    "LukeForEntityPairClassification": ".heads",
    "LukeForEntitySpanClassification": ".heads",
    "LukeForMaskedLM": ".heads",
    "LukeForMultipleChoice": ".heads",
    "LukeForQuestionAnswering": ".heads",
    "LukeForSequenceClassification": ".heads",
    "LukeForTokenClassification": ".heads",
    "LukeModel": ".luke",
    "LukePreTrainedModel": ".luke",
    "keep_entity_rows": ".pretrained",
    "PRECISIONS": ".views.precision",
    "precision_names": ".views.precision",
}

__all__ = [
    "CheckpointError",
    "LukeConfig",
    "LukeModel",
    "LukePreTrainedModel",
    "LukeForMaskedLM",
    "LukeForEntityDisambiguation",
    "LukeForEntityClassification",
    "LukeForEntityPairClassification",
    "LukeForEntitySpanClassification",
    "LukeForSequenceClassification",
    "LukeForTokenClassification",
    "LukeForQuestionAnswering",
    "LukeForMultipleChoice",
    "keep_entity_rows",
    "PRECISIONS",
    "precision_names",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
