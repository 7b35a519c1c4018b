"""``luke_ner``: named entity recognition with LUKE's entity span classification.

Every candidate span (by default every span of up to ``max_mention_length`` tokens inside a
sentence) becomes a [MASK] entity over its word pieces; the head classifies each from its
first and last word states and its entity state. Decoding is the reference LUKE procedure:
drop spans whose argmax is the non-entity class (``NIL`` or ``O``), sort the rest by their max
logit, accept greedily without overlap (and without overlapping entities that are kept).
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.scorer import Scorer, get_ner_prf
from spacy.attrs import ENT_IOB, ENT_TYPE
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_get_examples
from spacy.util import registry
from thinc.api import Config, Model, get_current_ops

from ..layers.call_plan import ItemScores, SpanItems, item_spans
from ..layers.head_layer import set_training_precision
from ..layers.items_model import configure_items_model
from ..layers.training_precision import check_training_precision
from ..layers.span_pruner import pruning_attrs
from ._shared.losses import cross_entropy
from ._shared.settings import TRAINABLE_SETTINGS, document_settings
from ._shared.items_pipe import ItemsPipe
from ._shared.suggesters import Suggester, sentence_spans_of_docs, split_ragged
from ._shared.extensions import install_extensions
from ._shared.loaders import CheckpointLoader
from ._ner.span_pruning import SpanPruning, ensure_pruner, pruner_step, pruning_of
from ._ner.training_candidates import TrainingCandidates, candidates_of, select_items

NIL_LABELS = ("NIL", "O")
# The public CoNLL-2003 checkpoint (PER, ORG, LOC, MISC): ``nlp.add_pipe("luke_ner")`` works as is.
DEFAULT_NER_CHECKPOINT = "studio-ousia/luke-large-finetuned-conll-2003"

DEFAULT_NER_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-luke.EntitySpanClassifier.v1"
mixed_precision = false
"""
)["model"]


NER_SETTINGS = {
    **TRAINABLE_SETTINGS,
    "model": DEFAULT_NER_MODEL,
    "pretrained": DEFAULT_NER_CHECKPOINT,
    "candidates": None,
    "max_mention_length": 16,
    "max_entities_per_pass": 128,
    "overwrite": False,
    "respect_outside": False,
    "spans_key": None,
    "skip_longer_than_trained": True,
    "pruning": None,
    "training_candidates": None,
    "training_precision": "float32",
    "scorer": {"@scorers": "spacy-luke.ner_scorer.v1"},
}


@Language.factory(
    "luke_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "span._.luke_score"],
    default_config=NER_SETTINGS,
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
@document_settings(NER_SETTINGS)
def make_luke_ner(
    nlp: Language,
    name: str,
    model: Model,
    pretrained: Optional[str],
    candidates: Optional[Suggester],
    max_mention_length: int,
    max_entities_per_pass: int,
    max_batch_cost: int,
    overwrite: bool,
    spans_key: Optional[str],
    lite: bool,
    freeze_encoder: bool,
    scorer: Optional[Callable],
    precision: str = "float32",
    engine: str = "torch",
    respect_outside: bool = False,
    skip_longer_than_trained: bool = True,
    pruning: Optional[SpanPruning] = None,
    training_candidates: Optional[TrainingCandidates] = None,
    training_precision: str = "float32",
) -> "LukeNER":
    """LUKE named entity recognition.

    pretrained (Optional[str]): hub id or local folder of a LUKE checkpoint; labels come from its id2label. Default: studio-ousia/luke-large-finetuned-conll-2003 (downloaded once, then read from the hub cache); null: weights only from [initialize].
    candidates (Optional[Suggester]): spans to classify; default: all spans of up to max_mention_length tokens within a sentence.
    max_mention_length (int): longest default candidate, in tokens.
    overwrite (bool): replace existing doc.ents (or the spans in doc.spans[spans_key]) instead of keeping them; blocked tokens are never overwritten.
    respect_outside (bool): never put an entity on a token marked outside (O); default false, as spaCy's ner (doc.ents = ... and the entity ruler mark every other token O). Blocked tokens (doc.set_ents(blocked=...)) never get one either way.
    spans_key (Optional[str]): write to doc.spans[spans_key] (with attrs["scores"]) instead of doc.ents; spans already in that group are kept (scores NaN) unless overwrite.
    skip_longer_than_trained (bool): after training (initialize with examples), predict only on default candidates up to the longest entity of the training data (recorded in the pipe's cfg as longest_entity): longer spans were NIL in every training example, so scoring them is wasted work.
    pruning (Optional[SpanPruning]): a learned first stage (spacy-luke.span_pruning.v1) that keeps only the likely candidates of each doc for the full LUKE pass; it trains with the pipe (or afterwards: python -m spacy_luke train-pruner). Default null: every candidate gets the full pass.
    training_candidates (Optional[TrainingCandidates]): the candidates the head trains on in each update (spacy-luke.TrainingCandidates.v1: every gold span, the span pruner's kept ones, a seeded sampled share of the rest). Default null: every candidate, as prediction without pruning sees them. Prediction is the same either way.
    """
    return LukeNER(
        nlp.vocab, model, name, pretrained=pretrained, candidates=candidates, max_mention_length=max_mention_length,
        max_entities_per_pass=max_entities_per_pass, max_batch_cost=max_batch_cost, overwrite=overwrite,
        spans_key=spans_key, lite=lite, freeze_encoder=freeze_encoder, scorer=scorer, precision=precision,
        engine=engine, respect_outside=respect_outside, skip_longer_than_trained=skip_longer_than_trained,
        pruning=pruning, training_candidates=training_candidates, training_precision=training_precision,
    )


class LukeNER(ItemsPipe):
    head = "LukeForEntitySpanClassification"

    def __init__(
        self,
        vocab,
        model: Model,
        name: str = "luke_ner",
        *,
        pretrained: Optional[str] = None,
        candidates: Optional[Suggester] = None,
        max_mention_length: int = 16,
        overwrite: bool = False,
        respect_outside: bool = False,
        spans_key: Optional[str] = None,
        skip_longer_than_trained: bool = True,
        pruning: Optional[SpanPruning] = None,
        training_candidates: Optional[TrainingCandidates] = None,
        training_precision: str = "float32",
        **settings: Any,
    ):
        if max_mention_length < 1:
            raise ValueError(f"[{name}] max_mention_length must be at least 1, got {max_mention_length}.")
        super().__init__(
            vocab,
            model,
            name,
            pretrained=pretrained,
            max_mention_length=max_mention_length,
            overwrite=overwrite,
            respect_outside=respect_outside,
            spans_key=spans_key,
            skip_longer_than_trained=skip_longer_than_trained,
            longest_entity=None,
            training_precision=check_training_precision(name, training_precision),
            **settings,
        )
        self.candidates = candidates
        self.pruning = pruning
        self.training_candidates = candidates_of(training_candidates)
        self._pruner_updates = 0  # updates the span pruner learned in this process (training_candidates' warmup)
        self._selection_steps = 0  # updates that selected candidates (the seed's second part)
        self._pruner_learned = False
        self._id2label: List[str] = []
        self._nil = -1
        install_extensions()

    @property
    def pruning(self) -> Optional[SpanPruning]:
        """The span pruner's settings (``spacy-luke.span_pruning.v1``), or None: no pruning."""
        return self._pruning

    @pruning.setter
    def pruning(self, value) -> None:
        self._pruning = pruning_of(value)
        self._configure_model()

    @property
    def training_precision(self) -> str:
        """How training calls run (``spacy_luke.layers.training_precision``): float32, bfloat16, float16."""
        return self.cfg.get("training_precision", "float32")

    @training_precision.setter
    def training_precision(self, value: str) -> None:
        self.cfg["training_precision"] = check_training_precision(self.name, value)
        self._configure_model()

    def _configure_model(self) -> None:
        super()._configure_model()
        configure_items_model(self.model, pruning=pruning_attrs(getattr(self, "_pruning", None)))
        set_training_precision(self.model, self.cfg.get("training_precision", "float32"))

    # ------------------------------------------------------------------ labels

    def _model_config(self, checkpoint_config):
        wanted = list(self.cfg["labels"])
        have = [label for label in checkpoint_config.id2label.values() if label not in NIL_LABELS]
        if not wanted or sorted(wanted) == sorted(have):
            return None
        return checkpoint_config.with_labels(["NIL"] + wanted)

    def _labels_of(self, config) -> List[str]:
        return [config.id2label[i] for i in sorted(config.id2label) if config.id2label[i] not in NIL_LABELS]

    def _after_load(self, luke_model) -> None:
        id2label = luke_model.config.id2label
        labels = [id2label[i] for i in range(len(id2label))]
        nil = [i for i, label in enumerate(labels) if label in NIL_LABELS]
        if len(nil) != 1:
            raise ValueError(
                f"[{self.name}] the checkpoint's labels {labels} need exactly one non-entity class named "
                f"{' or '.join(NIL_LABELS)} for span classification NER. Train the pipe with your labels "
                "(nlp.initialize with labels) to get a new head."
            )
        self._id2label = labels
        self._nil = nil[0]
        self.cfg["labels"] = [label for i, label in enumerate(labels) if i != self._nil]

    # ------------------------------------------------------------------ candidates and inputs

    def _items(self, docs: Sequence[Doc]) -> List[np.ndarray]:
        """The candidate spans of each doc: the suggester's, else every span within a sentence."""
        if self.candidates is None:
            return sentence_spans_of_docs(docs, self._candidate_length())
        per_doc = split_ragged(self.candidates(docs, ops=get_current_ops()))
        for doc, spans in zip(docs, per_doc):
            if len(spans) and (spans.min() < 0 or spans[:, 1].max() > len(doc) or (spans[:, 0] >= spans[:, 1]).any()):
                raise ValueError(f"[{self.name}] the candidates suggester returned spans outside the doc or empty: {spans.tolist()[:5]}")
        return per_doc

    def _candidate_length(self) -> int:
        """The longest default candidate: max_mention_length, or the longest training entity."""
        longest = self.cfg.get("longest_entity")
        if self.cfg.get("skip_longer_than_trained", True) and longest:
            return min(self.cfg["max_mention_length"], int(longest))
        return self.cfg["max_mention_length"]

    def _training_items(self, examples: Sequence[Example]) -> List[SpanItems]:
        """Training sees every default candidate up to max_mention_length (the longer ones as
        NIL), each with its gold label index (computed once, for the loss and the span pruner)."""
        docs = [eg.predicted for eg in examples]
        if self.candidates is None:
            spans = sentence_spans_of_docs(docs, self.cfg["max_mention_length"])
        else:
            spans = self._items(docs)
        return [SpanItems(s, targets=self._gold(eg, s)) for eg, s in zip(examples, spans)]

    def _select_training_items(self, examples: Sequence[Example], items: List[SpanItems], losses: Dict[str, float]) -> List[SpanItems]:
        """With ``pruning``: the span pruner learns from every candidate (``losses[name + "_pruner"]``),
        in one pass; with ``training_candidates``: the head's pass gets the selected candidates only
        (gold, the pruner's kept ones from that same pass, a seeded sample of the rest)."""
        self._pruner_learned = False
        pruner_logits = None
        if self.pruning is not None:
            ensure_pruner(self, self.pruning)
            _, pruner_logits = pruner_step(self, examples, items, losses)
            self._pruner_learned = True
            self._pruner_updates += 1
        rule = self.training_candidates
        if rule is None:
            return items
        warm = rule.use_pruner and pruner_logits is not None and self._pruner_updates > rule.pruner_warmup
        step, self._selection_steps = self._selection_steps, self._selection_steps + 1
        return select_items(
            items, [len(eg.predicted) for eg in examples], self._nil, rule, step,
            pruner_logits if warm else None, self.pruning.keep_per_word if self.pruning is not None else 1.0,
        )

    def _learned_before_head(self) -> bool:
        return self._pruner_learned

    # ------------------------------------------------------------------ annotate

    def decode(
        self, doc: Doc, scores: ItemScores, kept: Sequence[Span] = (), closed: Optional[np.ndarray] = None
    ) -> List[Tuple[int, int, int, float]]:
        """``(start, end, label index, probability)`` of the accepted spans, in doc order.

        No accepted span overlaps ``kept`` or a token where ``closed`` (a bool per token) is true.
        """
        if len(scores.spans) == 0:
            return []
        logits = scores.logits
        best = logits.argmax(axis=1)
        keep = np.flatnonzero(scores.scored & (best != self._nil))
        if len(keep) == 0:
            return []
        max_logit = logits[keep, best[keep]]
        order = keep[np.argsort(-max_logit, kind="stable")]
        shifted = np.exp(logits[order] - logits[order].max(axis=1, keepdims=True))
        probs = shifted[np.arange(len(order)), best[order]] / shifted.sum(axis=1)
        occupied = np.zeros(len(doc), dtype=bool) if closed is None else np.array(closed, dtype=bool)
        for span in kept:
            occupied[span.start : span.end] = True
        accepted = []
        for i, prob in zip(order.tolist(), probs.tolist()):
            start, end = int(scores.spans[i, 0]), int(scores.spans[i, 1])
            if not occupied[start:end].any():
                occupied[start:end] = True
                accepted.append((start, end, int(best[i]), float(prob)))
        return sorted(accepted)

    def set_annotations(self, docs: Iterable[Doc], scores: List[ItemScores]) -> None:
        """Write the accepted spans; nothing the user set is lost.

        - Blocked tokens (``doc.set_ents(..., blocked=...)``) never get an entity and stay blocked.
        - Tokens marked outside (O) get an entity only when ``respect_outside`` is false (the
          default, as spaCy's own ner does: ``doc.ents = ...`` and the entity ruler mark every
          other token O); a token that gets none keeps its O.
        - Existing entities (or, with ``spans_key``, the spans already in that group) are kept
          and never overlapped, unless ``overwrite``; with ``spans_key`` the group is extended,
          its other attrs kept, ``attrs["scores"]`` NaN for the spans the pipe did not write.
        """
        spans_key = self.cfg["spans_key"]
        overwrite = self.cfg["overwrite"]
        for doc, doc_scores in zip(docs, scores):
            iob_type = doc.to_array([ENT_IOB, ENT_TYPE]).reshape(-1, 2) if len(doc) else np.zeros((0, 2), dtype=np.uint64)
            blocked = (iob_type[:, 0] == 3) & (iob_type[:, 1] == 0)
            closed = blocked | (iob_type[:, 0] == 2) if self.cfg.get("respect_outside") else blocked
            if spans_key:
                group = doc.spans[spans_key] if spans_key in doc.spans else None
                kept = [] if overwrite or group is None else list(group)
            else:
                kept = [] if overwrite else list(doc.ents)
            new_spans = []
            for start, end, label, prob in self.decode(doc, doc_scores, kept, closed):
                span = Span(doc, start, end, label=self._id2label[label])
                span._.luke_score = prob
                new_spans.append(span)
            if spans_key:
                doc.spans[spans_key] = _extended_group(doc, spans_key, None if overwrite else group, new_spans)
            else:
                doc.set_ents(sorted(kept + new_spans, key=lambda s: s.start), blocked=_runs(doc, blocked), default="outside")

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

        labels: the entity labels (from ``spacy init labels``); by default those of the training
        data, else the checkpoint's. A checkpoint whose labels differ gets a new head.
        """
        validate_get_examples(get_examples, "LukeNER.initialize")
        found, longest = set(), 0
        spans_key = self.cfg["spans_key"]
        for example in get_examples():
            reference = example.reference
            gold = reference.spans[spans_key] if spans_key and spans_key in reference.spans else reference.ents
            found.update(ent.label_ for ent in gold)
            longest = max([longest] + [len(ent) for ent in example.get_aligned_spans_y2x(gold, allow_overlap=True)])
        # The longest training entity (in the pipeline's tokens): longer candidates are skipped at prediction.
        self.cfg["longest_entity"] = longest or None
        if labels is None:
            labels = sorted(found)
        labels = [label for label in labels if label not in NIL_LABELS]
        if labels:
            self.cfg["labels"] = list(labels)
        self._load(self._checkpoint_to_initialize(loader))
        if self.pruning is not None:
            ensure_pruner(self, self.pruning)

    def _gold(self, example: Example, spans: np.ndarray) -> np.ndarray:
        """The gold label index of each candidate (NIL when it is not a gold entity); -1 when unknown."""
        targets = np.full(len(spans), self._nil, dtype=np.int64)
        reference = example.reference
        spans_key = self.cfg["spans_key"]
        if spans_key and spans_key in reference.spans:
            gold_spans = reference.spans[spans_key]
        elif reference.has_annotation("ENT_IOB"):
            gold_spans = reference.ents
        else:
            targets[:] = -1
            return targets
        label2id = {label: i for i, label in enumerate(self._id2label)}
        gold = {}
        for span in example.get_aligned_spans_y2x(gold_spans, allow_overlap=True):
            if span.label_ not in label2id:
                raise ValueError(
                    f"[{self.name}] the training data has the label {span.label_!r}, which the pipe does not "
                    f"have ({self.labels}). Add it before nlp.initialize() or pass all labels to initialize."
                )
            gold[(span.start, span.end)] = label2id[span.label_]
        if gold:
            for i, (start, end) in enumerate(spans.tolist()):
                targets[i] = gold.get((start, end), self._nil)
        return targets

    def _targets(self, example: Example, items) -> np.ndarray:
        targets = getattr(items, "targets", None)
        return targets if targets is not None else self._gold(example, item_spans(items))

    def _n_counted(self, targets: np.ndarray, scored: np.ndarray) -> int:
        return int(((targets >= 0) & scored).sum())  # candidates with known gold

    def _loss(self, scores: ItemScores, targets: np.ndarray, normalizer: int):
        return cross_entropy(scores.values, targets, normalizer, scores.scored, getattr(scores.items, "weights", None))


@registry.scorers("spacy-luke.ner_scorer.v1")
def make_ner_scorer() -> Callable:
    """Entity P/R/F overall and per type (``ents_p/r/f``, ``ents_per_type``); from doc.spans[spans_key] when set."""

    def score(examples: Iterable[Example], *, spans_key: Optional[str] = None, **kwargs) -> Dict[str, Any]:
        if not spans_key:
            return get_ner_prf(examples)
        scores = Scorer.score_spans(
            examples,
            f"spans_{spans_key}",
            getter=lambda doc, attr: doc.spans[spans_key] if spans_key in doc.spans else [],
            has_annotation=lambda doc: spans_key in doc.spans,
            allow_overlap=False,
        )
        prefix = f"spans_{spans_key}_"
        for key in ("p", "r", "f", "per_type"):
            scores[f"ents_{key}"] = scores.get(prefix + key)
        return scores

    return score


def _runs(doc: Doc, mask: np.ndarray) -> List[Span]:
    """The token runs where ``mask`` is true, as Spans."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [doc[int(start) : int(end)] for start, end in zip(edges[::2], edges[1::2])]


def _extended_group(doc: Doc, key: str, group: Optional[SpanGroup], new_spans: List[Span]) -> SpanGroup:
    """``group``'s spans (and attrs) plus ``new_spans``, in doc order, with ``attrs["scores"]``."""
    old_spans = list(group) if group else []
    old_attrs = dict(group.attrs) if group else {}
    old_scores = np.asarray(old_attrs.get("scores", []), dtype="f").reshape(-1)
    if len(old_scores) != len(old_spans):
        old_scores = np.full(len(old_spans), np.nan, dtype="f")
    spans = old_spans + new_spans
    scores = np.concatenate([old_scores, np.asarray([s._.luke_score for s in new_spans], dtype="f")])
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end))
    return SpanGroup(doc, name=key, spans=[spans[i] for i in order], attrs={**old_attrs, "scores": scores[order]})
