"""What the pipes with a classification head share: labels from the data or the checkpoint (a new
head when they differ), a checkpoint of the right task, and the single- or multi-label rule.

Used by the marked-item pipes (luke_entity_typer, luke_relation_extractor) and luke_textcat.

- Labels: ``initialize`` takes them from ``labels`` (``spacy init labels``), else the training
  data (``_labels_in``), else the checkpoint's ``id2label``; a checkpoint whose labels differ
  gets a fresh head with the pipe's labels.
- A checkpoint fine-tuned with another task head is refused (a pretraining one is fine).
- ``multi_label`` (when the pipe has the setting): every label scored by its sigmoid, else one
  softmax over the labels; by default the checkpoint's ``problem_type`` decides.
"""

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.training import Example, validate_get_examples

from ...layers.call_plan import MarkedItems
from .loaders import CheckpointLoader
from .losses import binary_cross_entropy, cross_entropy, sigmoid, softmax
from .items_pipe import ItemsPipe

MULTI_LABEL = "multi_label_classification"
SINGLE_LABEL = "single_label_classification"
# Checkpoints without a task head (or with any head, when fine-tuning anew): loading them gives a fresh head.
PRETRAINING_HEADS = ("LukeModel", "LukeForMaskedLM", "LukePreTrainedModel")


def check_head(pipe_name: str, folder: Path, head: str) -> None:
    """Refuse a checkpoint fine-tuned with another task head (a pretraining checkpoint is fine)."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return
    architectures = json.loads(config_file.read_text(encoding="utf8")).get("architectures") or []
    other = [a for a in architectures if a not in PRETRAINING_HEADS and a != head]
    if other and head not in architectures:
        raise ValueError(
            f"[{pipe_name}] {folder} is a {other[0]} checkpoint, but this pipe needs {head} "
            f"(its config.json says architectures={architectures}). Use a checkpoint fine-tuned for this task, "
            "or a pretraining checkpoint (e.g. studio-ousia/luke-base) and train the pipe."
        )


class ClassifierPipe(ItemsPipe):
    """Base of the pipes with a classification head (see the module docstring)."""

    def __init__(self, vocab, model, name, **settings: Any):
        super().__init__(vocab, model, name, **settings)
        self._id2label: List[str] = []
        self._multi = bool(self.cfg.get("multi_label"))
        self._warned: set = set()

    # ------------------------------------------------------------------ loading and labels

    def _load(self, checkpoint) -> None:
        check_head(self.name, checkpoint.resolve(), self.head)
        super()._load(checkpoint)

    def _model_config(self, checkpoint_config):
        wanted = list(self.cfg["labels"])
        have = [checkpoint_config.id2label[i] for i in sorted(checkpoint_config.id2label)]
        config = None if not wanted or wanted == have else checkpoint_config.with_labels(wanted)
        multi = self.cfg.get("multi_label")
        if multi is None:
            return config
        base = config if config is not None else checkpoint_config
        problem = MULTI_LABEL if multi else SINGLE_LABEL
        if base.problem_type == problem:
            return config
        from ...model import LukeConfig

        return LukeConfig.from_dict({**base.to_dict(), "problem_type": problem})

    def _after_load(self, luke_model) -> None:
        id2label = luke_model.config.id2label
        self._id2label = [id2label[i] for i in range(len(id2label))]
        self.cfg["labels"] = list(self._id2label)
        multi = self.cfg.get("multi_label")
        self._multi = bool(multi) if multi is not None else luke_model.config.problem_type == MULTI_LABEL

    @property
    def multi_label(self) -> bool:
        self._ensure_loaded()
        return self._multi

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"[{self.name}] {message}", UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ scores

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per row of logits, each label's probability: sigmoid (multi-label) or softmax."""
        logits = np.asarray(logits, dtype=np.float64)
        return sigmoid(logits) if self._multi else softmax(logits)

    # ------------------------------------------------------------------ training

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        loader: Optional[CheckpointLoader] = None,
    ) -> None:
        """Load the weights (from ``loader`` or ``pretrained``) and set the labels.

        labels: the labels (from ``spacy init labels``); by default those of the training data,
        else the checkpoint's. A checkpoint whose labels differ gets a new head.
        """
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        if labels is None:
            labels = self._labels_in(get_examples())
        labels = self._with_fixed_labels(list(labels))
        if labels:
            self.cfg["labels"] = labels
        self._load(self._checkpoint_to_initialize(loader))

    def _labels_in(self, examples: Iterable[Example]) -> List[str]:
        raise NotImplementedError

    def _with_fixed_labels(self, labels: List[str]) -> List[str]:
        return labels

    def _items_and_targets(self, example: Example) -> Tuple[List[Any], np.ndarray]:
        """The items of ``example.predicted`` to train on and their targets."""
        raise NotImplementedError

    def _training_items(self, examples: Sequence[Example]) -> List[MarkedItems]:
        out = []
        for eg in examples:
            items, targets = self._items_and_targets(eg)
            out.append(MarkedItems(items, targets=targets))
        return out

    def _loss(self, scores, targets: np.ndarray, normalizer: int):
        if self._multi:
            return binary_cross_entropy(scores.values, targets, normalizer, scores.scored)
        return cross_entropy(scores.values, targets, normalizer, scores.scored)
