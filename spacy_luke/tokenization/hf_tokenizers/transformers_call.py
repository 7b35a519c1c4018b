"""transformers' tokenizer call: batching, special tokens, truncation, padding, tensors.

:class:`TransformersCallMixin` gives :class:`~.entity_tokenizer.EntityAwareTokenizer`
its ``__call__``, with the keys, values and settings of transformers' LUKE tokenizers: each text
becomes a :class:`~.task_examples.TaskExample` (:func:`~.task_examples.make_example`), then gets
its special tokens, truncation and entity position ids (:meth:`~TransformersCallMixin._prepare`),
then padding (:func:`~.encoding.pad_example`) and tensor conversion (:func:`~.encoding.to_tensors`).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Union

from .encoding import (
    DO_NOT_PAD,
    DO_NOT_TRUNCATE,
    LONGEST,
    MAX_LENGTH,
    LukeEncoding,
    pad_example,
    resolve_strategies,
    to_tensors,
    truncate_pair,
)
from .task_examples import ENTITY_SPAN_CLASSIFICATION, Span, SpanInput, TaskExample, make_example

logger = logging.getLogger(__name__)


class TransformersCallMixin:
    """The transformers-compatible ``__call__`` of the entity-aware tokenizers.

    Reads the tokenizer's settings (``task``, ``max_entity_length``, ``max_mention_length``,
    ``model_max_length``, ``padding_side``, ``truncation_side``, ``add_prefix_space``,
    ``pair_separators``, ``pair_token_type_id``), its special word ids (``cls_token_id``,
    ``sep_token_id``, ``pad_token_id``) and entity ids (``entity_pad_token_id``, ...), and its
    word-piece encoding (``encode_text``, ``encode_with_spans``).
    """

    def _prepare(
        self,
        example: TaskExample,
        *,
        add_special_tokens: bool,
        truncation: str,
        max_length: Optional[int],
        max_entity_length: int,
        return_token_type_ids: bool,
        return_special_tokens_mask: bool,
    ) -> Dict[str, Any]:
        """Special tokens, truncation and entity position ids for one example (no padding)."""
        first, second = example.first_ids, example.second_ids
        pair = second is not None
        n_special = (2 + self.pair_separators if pair else 2) if add_special_tokens else 0
        total = len(first) + (len(second) if pair else 0) + n_special
        if truncation != DO_NOT_TRUNCATE and max_length and total > max_length:
            first, second = truncate_pair(first, second, total - max_length, truncation, self.truncation_side)
        elif truncation == DO_NOT_TRUNCATE and total > self.model_max_length:
            raise ValueError(
                f"The input is {total} word pieces long (special tokens included), more than "
                f"model_max_length={self.model_max_length}. Pass truncation=True (and max_length=...) to cut it, "
                "or split the text into shorter windows."
            )
        out: Dict[str, Any] = {}
        if add_special_tokens:
            cls, sep, k = [self.cls_token_id], [self.sep_token_id], self.pair_separators
            sequence = cls + first + sep + ((sep * (k - 1)) + second + sep if pair else [])
            offset, pair_offset = 1, len(first) + 1 + k
            special_mask = [1] + [0] * len(first) + ([1] * k + [0] * len(second) + [1] if pair else [1])
        else:
            sequence = first + (second if pair else [])
            offset, pair_offset = 0, len(first)
            special_mask = [0] * len(sequence)
        out["input_ids"] = sequence
        if return_token_type_ids:
            second_type = self.pair_token_type_id if pair else 0
            n_first = min(pair_offset, len(sequence))
            out["token_type_ids"] = [0] * n_first + [second_type] * (len(sequence) - n_first)
        if return_special_tokens_mask:
            out["special_tokens_mask"] = special_mask
        if example.first_entity_ids is None:
            return out

        # entities whose span was cut away by the truncation are dropped
        entity_ids = [e for e, span in zip(example.first_entity_ids, example.first_spans) if span[1] <= len(first)]
        spans = [span for span in example.first_spans if span[1] <= len(first)]
        pair_entity_ids: Optional[List[int]] = None
        pair_spans: Optional[List[Span]] = None
        if example.second_entity_ids is not None:
            pair_entity_ids = [
                e for e, span in zip(example.second_entity_ids, example.second_spans) if span[1] <= len(second)
            ]
            pair_spans = [span for span in example.second_spans if span[1] <= len(second)]
        total_entities = len(entity_ids) + (len(pair_entity_ids) if pair_entity_ids is not None else 0)
        n_dropped = len(example.first_entity_ids) + len(example.second_entity_ids or ()) - total_entities
        if n_dropped:
            logger.warning("%d entities were dropped: the truncation of the words cut their spans off.", n_dropped)
        if total_entities > max_entity_length:
            if truncation == DO_NOT_TRUNCATE:
                raise ValueError(
                    f"{total_entities} entities were given but max_entity_length={max_entity_length}. "
                    "Pass truncation=True to keep only the first ones (as transformers does), raise "
                    "max_entity_length, or split the spans over several calls."
                )
            entity_ids, pair_entity_ids = truncate_pair(
                entity_ids, pair_entity_ids, total_entities - max_entity_length, truncation, self.truncation_side
            )
            spans = spans[: len(entity_ids)]
            if pair_spans is not None:
                pair_spans = pair_spans[: len(pair_entity_ids)]
        out["entity_ids"] = list(entity_ids) + (list(pair_entity_ids) if pair_entity_ids else [])
        positions: List[List[int]] = []
        starts: List[int] = []
        ends: List[int] = []
        mml = self.max_mention_length
        for token_spans, shift in ((spans, offset), (pair_spans, pair_offset)):
            for start, end in token_spans or ():
                start, end = start + shift, end + shift
                positions.append(list(range(start, min(end, start + mml))) + [-1] * (mml - end + start))
                starts.append(start)
                ends.append(end - 1)
        out["entity_position_ids"] = positions
        if self.task == ENTITY_SPAN_CLASSIFICATION:
            out["entity_start_positions"] = starts
            out["entity_end_positions"] = ends
        if return_token_type_ids:
            out["entity_token_type_ids"] = [0] * len(out["entity_ids"])
        return out

    def _pad(self, inputs: Dict[str, Any], **settings: Any) -> Dict[str, Any]:
        return pad_example(
            inputs,
            pad_token_id=self.pad_token_id,
            entity_pad_id=self.entity_pad_token_id,
            max_mention_length=self.max_mention_length,
            with_span_positions=self.task == ENTITY_SPAN_CLASSIFICATION,
            **settings,
        )

    # ------------------------------------------------------------------ the call

    def __call__(
        self,
        text: Union[str, Sequence[str]],
        text_pair: Optional[Union[str, Sequence[str]]] = None,
        entity_spans: Optional[Union[SpanInput, Sequence[SpanInput]]] = None,
        entity_spans_pair: Optional[Union[SpanInput, Sequence[SpanInput]]] = None,
        entities: Optional[Union[Sequence[str], Sequence[Sequence[str]]]] = None,
        entities_pair: Optional[Union[Sequence[str], Sequence[Sequence[str]]]] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        max_entity_length: Optional[int] = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        add_prefix_space: Optional[bool] = None,
    ) -> LukeEncoding:
        """Encode one text (or a batch of texts) with its entities, like transformers' tokenizer.

        ``text`` is a string or a list of strings (a batch); in a batch, ``entity_spans``,
        ``entities`` (and their ``_pair`` forms) are lists with one item per text. Spans are
        ``(start, end)`` character offsets, end exclusive (lists are accepted too). With
        ``task=None``, ``entities`` gives the Wikipedia titles of the spans (unknown titles map
        to [UNK]; mLUKE titles carry their language, ``"en:Japan"``), or [MASK] when left out.
        With a ``task``, ``entities`` is ignored and the entities are [MASK] / [MASK2].

        Returns a :class:`LukeEncoding` with ``input_ids``, ``attention_mask``, ``entity_ids``,
        ``entity_attention_mask``, ``entity_position_ids`` (``entity_start_positions`` /
        ``entity_end_positions`` for span classification; ``token_type_ids`` /
        ``entity_token_type_ids`` when ``return_token_type_ids=True``), as lists, or as
        tensors with ``return_tensors="pt"`` / ``"np"``.

        ``stride`` only matters for overflowing tokens, which are not supported.
        """
        if is_split_into_words:
            raise NotImplementedError(
                "is_split_into_words is not supported (transformers' LUKE tokenizers do not support it "
                "either); join the words into a text, or use DocEncoder for pre-tokenized input."
            )
        if return_offsets_mapping:
            raise NotImplementedError(
                "return_offsets_mapping is not supported here (as in transformers' LUKE tokenizers); "
                "use tokenizer.word_pieces.encode_with_offsets(text) for piece offsets."
            )
        if return_overflowing_tokens:
            raise NotImplementedError(
                "return_overflowing_tokens is not supported; cut long texts into windows yourself "
                "(DocEncoder does this for spaCy Docs)."
            )
        if add_prefix_space is None:
            add_prefix_space = self.add_prefix_space
        is_batch = isinstance(text, (list, tuple))
        if not (isinstance(text, str) or (is_batch and all(isinstance(t, str) for t in text))):
            raise ValueError(
                f"text must be a string (one example) or a list of strings (a batch), got {type(text).__name__}."
            )
        if text_pair is not None:
            pair_ok = isinstance(text_pair, str) if not is_batch else (
                isinstance(text_pair, (list, tuple)) and all(isinstance(t, str) for t in text_pair)
            )
            if not pair_ok:
                raise ValueError(
                    "text_pair must be a string when text is a string, or a list of strings (one per text) "
                    "when text is a list."
                )
        if return_token_type_ids and not add_special_tokens:
            raise ValueError(
                "return_token_type_ids=True with add_special_tokens=False is undefined (as in transformers); "
                "set add_special_tokens=True or leave return_token_type_ids out."
            )
        padding_strategy, truncation_strategy, max_length = resolve_strategies(
            padding, truncation, max_length, pad_to_multiple_of, self.model_max_length
        )
        entity_limit = max_entity_length or self.max_entity_length
        prepare = dict(
            add_special_tokens=add_special_tokens,
            truncation=truncation_strategy,
            max_length=max_length,
            max_entity_length=entity_limit,
            return_token_type_ids=bool(return_token_type_ids),
            return_special_tokens_mask=return_special_tokens_mask,
        )
        side = padding_side or self.padding_side
        want_mask = True if return_attention_mask is None else bool(return_attention_mask)

        if not is_batch:
            example = make_example(
                self, text, text_pair, entity_spans, entity_spans_pair, entities, entities_pair, add_prefix_space
            )
            encoded = self._prepare(example, **prepare)
            if padding_strategy != DO_NOT_PAD or want_mask:
                if not encoded["input_ids"]:
                    if want_mask:
                        encoded["attention_mask"] = []
                else:
                    encoded = self._pad(
                        encoded, strategy=padding_strategy, max_length=max_length, max_entity_length=entity_limit,
                        pad_to_multiple_of=pad_to_multiple_of, padding_side=side, return_attention_mask=want_mask,
                    )
            if return_length:
                encoded["length"] = len(encoded["input_ids"])
            return to_tensors(encoded, return_tensors, prepend_batch_axis=True)

        n = len(text)
        if n == 0:
            raise ValueError("text is an empty list; give at least one text.")
        columns = {
            "text_pair": text_pair, "entity_spans": entity_spans, "entity_spans_pair": entity_spans_pair,
            "entities": entities, "entities_pair": entities_pair,
        }
        for name, value in columns.items():
            if value is not None and (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n):
                raise ValueError(
                    f"text is a batch of {n} texts, so {name} must be a list with one item per text "
                    f"(got {value!r:.80})."
                )
        rows = []
        for i in range(n):
            def item(name: str) -> Any:
                value = columns[name]
                return None if value is None else value[i]

            spans_i = item("entity_spans")
            if spans_i is None and entity_spans is not None and self.task is None:
                spans_i = []
            example = make_example(
                self, text[i], item("text_pair"), spans_i, item("entity_spans_pair"), item("entities"),
                item("entities_pair"), add_prefix_space,
            )
            encoded = self._prepare(example, **prepare)
            if return_length:
                encoded["length"] = len(encoded["input_ids"])
            rows.append(encoded)
        keys = list(rows[0])
        if any(list(row) != keys for row in rows):
            raise ValueError(
                "Some texts of the batch have entity spans and others do not; give entity_spans for every "
                "text (an empty list where a text has none)."
            )
        if padding_strategy == LONGEST:
            max_length = max(len(row["input_ids"]) for row in rows)
            batch_entity_length = max(len(row["entity_ids"]) for row in rows) if "entity_ids" in keys else 0
            padding_strategy = MAX_LENGTH
        else:
            batch_entity_length = self.max_entity_length
        rows = [
            self._pad(
                row, strategy=padding_strategy, max_length=max_length, max_entity_length=batch_entity_length,
                pad_to_multiple_of=pad_to_multiple_of, padding_side=side, return_attention_mask=want_mask,
            )
            for row in rows
        ]
        batch = {key: [row[key] for row in rows] for key in rows[0]}
        return to_tensors(batch, return_tensors, prepend_batch_axis=False)
