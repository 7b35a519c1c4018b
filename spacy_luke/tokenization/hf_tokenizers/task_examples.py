"""One example laid out for its task: checked spans, entity ids, markers, spans as piece ranges.

The first step of the transformers-compatible call (:mod:`.transformers_call`): text and
character spans become word-piece ids and piece-range spans, before special tokens,
truncation and padding. With ``task=None`` the entities are the given titles (or [MASK]);
with a task they are [MASK] / [MASK2], and the classification tasks put ``<ent>`` /
``<ent2>`` markers around the spans, as transformers' LUKE tokenizers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Protocol, Sequence, Tuple, Union

from .entity_vocab import EntityVocab
from .markers import insert_entity_markers, marked_entity_spans

ENTITY_CLASSIFICATION = "entity_classification"
ENTITY_PAIR_CLASSIFICATION = "entity_pair_classification"
ENTITY_SPAN_CLASSIFICATION = "entity_span_classification"
TASKS = (None, ENTITY_CLASSIFICATION, ENTITY_PAIR_CLASSIFICATION, ENTITY_SPAN_CLASSIFICATION)

Span = Tuple[int, int]
SpanInput = Sequence[Union[Tuple[int, int], Sequence[int]]]


class ExampleTokenizer(Protocol):
    """What :func:`make_example` reads of its tokenizer.

    That is an :class:`~spacy_luke.tokenization.hf_tokenizers.entity_tokenizer.EntityAwareTokenizer`,
    whose module imports this one: naming the protocol instead of the class keeps the import one way.
    """

    task: Optional[str]
    entity_vocab: EntityVocab
    entity_mask_token_id: int
    entity_mask2_token_id: int
    entity_token_1_id: int
    entity_token_2_id: int

    def encode_text(self, text: str, add_prefix_space: Optional[bool] = None) -> List[int]:
        ...

    def encode_with_spans(self, text: str, spans: List[Span], add_prefix_space: bool) -> Tuple[List[int], List[Span]]:
        ...


@dataclass
class TaskExample:
    """One example before special tokens, truncation and padding (token-level spans)."""

    first_ids: List[int]
    second_ids: Optional[List[int]] = None
    first_entity_ids: Optional[List[int]] = None
    second_entity_ids: Optional[List[int]] = None
    first_spans: Optional[List[Span]] = None
    second_spans: Optional[List[Span]] = None


def check_spans(spans: Any, text: str, name: str) -> List[Span]:
    """Spans as a list of ``(start, end)`` int tuples inside ``text``; ValueError otherwise."""
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence) and not hasattr(spans, "__iter__"):
        raise ValueError(f"{name} must be a list of (start, end) character offsets, got {spans!r}.")
    checked: List[Span] = []
    for i, span in enumerate(spans):
        try:
            start, end = span
            start_i, end_i = int(start), int(end)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}[{i}] = {span!r} is not a (start, end) pair of character offsets. "
                f"Pass {name} as a list of (start, end) tuples, e.g. [(0, 5)]."
            ) from None
        if start_i != start or end_i != end or isinstance(start, bool) or isinstance(end, bool):
            raise ValueError(f"{name}[{i}] = {span!r}: offsets must be integers.")
        if start_i > end_i:
            raise ValueError(
                f"{name}[{i}] = {span!r} is inverted (start {start_i} > end {end_i}); "
                "spans are (start, end) with end exclusive."
            )
        if start_i < 0 or end_i > len(text):
            raise ValueError(
                f"{name}[{i}] = {span!r} is outside the text, which has {len(text)} characters "
                f"({text[:40]!r}{'...' if len(text) > 40 else ''}). Offsets are character offsets into "
                "that text, end exclusive."
            )
        checked.append((start_i, end_i))
    return checked


def entity_ids_for(
    tokenizer: ExampleTokenizer, entities: Any, spans: List[Span], name: str, spans_name: str
) -> List[int]:
    """The entity ids of the titles ``entities`` (one per span), or [MASK] for every span when None."""
    if entities is None:
        return [tokenizer.entity_mask_token_id] * len(spans)
    if isinstance(entities, str) or not isinstance(entities, Sequence):
        raise ValueError(f"{name} must be a list of entity titles (strings), got {entities!r}.")
    bad = [e for e in entities if not isinstance(e, str)]
    if bad:
        raise ValueError(f"{name} must be a list of entity titles (strings); {bad[0]!r} is not a string.")
    if len(entities) != len(spans):
        raise ValueError(
            f"{name} has {len(entities)} titles but {spans_name} has {len(spans)} spans; give one "
            f"title per span (or leave {name} out to use [MASK] for every span)."
        )
    return [tokenizer.entity_vocab.lookup(title) for title in entities]


def make_example(
    tokenizer: ExampleTokenizer,
    text: str,
    text_pair: Optional[str],
    entity_spans: Any,
    entity_spans_pair: Any,
    entities: Any,
    entities_pair: Any,
    add_prefix_space: bool,
) -> TaskExample:
    """The word pieces and entities of one text (pair) for ``tokenizer.task``."""
    task = tokenizer.task
    if entity_spans_pair is not None and text_pair is None:
        raise ValueError("entity_spans_pair was given without text_pair; pass the second text as text_pair.")
    if task is None:
        example = TaskExample(first_ids=[])
        if entity_spans is None:
            if entities is not None:
                raise ValueError("entities were given without entity_spans; give each title's character span.")
            example.first_ids = tokenizer.encode_text(text, add_prefix_space)
        else:
            spans = check_spans(entity_spans, text, "entity_spans")
            example.first_entity_ids = entity_ids_for(tokenizer, entities, spans, "entities", "entity_spans")
            example.first_ids, example.first_spans = tokenizer.encode_with_spans(text, spans, add_prefix_space)
        if text_pair is not None:
            if entity_spans_pair is None:
                example.second_ids = tokenizer.encode_text(text_pair, add_prefix_space)
            else:
                spans = check_spans(entity_spans_pair, text_pair, "entity_spans_pair")
                example.second_entity_ids = entity_ids_for(
                    tokenizer, entities_pair, spans, "entities_pair", "entity_spans_pair"
                )
                example.second_ids, example.second_spans = tokenizer.encode_with_spans(
                    text_pair, spans, add_prefix_space
                )
        return example

    if text_pair is not None:
        raise ValueError(
            f"text_pair is not supported with task={task!r} (transformers would silently drop it); "
            "join the texts, or use task=None."
        )
    expected = {ENTITY_CLASSIFICATION: "exactly 1 span", ENTITY_PAIR_CLASSIFICATION: "exactly 2 spans (head, tail)",
                ENTITY_SPAN_CLASSIFICATION: "at least 1 span"}[task]
    if entity_spans is None:
        raise ValueError(f"task={task!r} needs entity_spans with {expected}, e.g. entity_spans=[(0, 5)].")
    spans = check_spans(entity_spans, text, "entity_spans")
    count_ok = {ENTITY_CLASSIFICATION: len(spans) == 1, ENTITY_PAIR_CLASSIFICATION: len(spans) == 2,
                ENTITY_SPAN_CLASSIFICATION: len(spans) > 0}[task]
    if not count_ok:
        raise ValueError(f"task={task!r} needs entity_spans with {expected}; got {len(spans)}: {spans}.")
    ids, token_spans = tokenizer.encode_with_spans(text, spans, add_prefix_space)
    if task == ENTITY_SPAN_CLASSIFICATION:
        return TaskExample(
            ids, first_entity_ids=[tokenizer.entity_mask_token_id] * len(spans), first_spans=token_spans
        )
    spans_out = marked_entity_spans(token_spans)
    if task == ENTITY_CLASSIFICATION:
        ids = insert_entity_markers(ids, token_spans, [tokenizer.entity_token_1_id])
        return TaskExample(ids, first_entity_ids=[tokenizer.entity_mask_token_id], first_spans=spans_out)
    ids = insert_entity_markers(ids, token_spans, [tokenizer.entity_token_1_id, tokenizer.entity_token_2_id])
    return TaskExample(
        ids,
        first_entity_ids=[tokenizer.entity_mask_token_id, tokenizer.entity_mask2_token_id],
        first_spans=spans_out,
    )
