"""Pure-PyTorch LUKE / mLUKE (no spaCy imports here)."""
from .checkpoint import CheckpointError
from .config import LukeConfig
from .entity_disambiguation import LukeForEntityDisambiguation
from .heads import (
    LukeForEntityClassification,
    LukeForEntityPairClassification,
    LukeForEntitySpanClassification,
    LukeForMaskedLM,
    LukeForMultipleChoice,
    LukeForQuestionAnswering,
    LukeForSequenceClassification,
    LukeForTokenClassification,
)
from .luke import LukeModel, LukePreTrainedModel
from .pretrained import keep_entity_rows

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
]
