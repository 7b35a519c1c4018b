"""LUKE and mLUKE tokenizers: word pieces plus entity inputs, with transformers' call API.

``LukeTokenizer`` (byte-level BPE) and ``MLukeTokenizer`` (sentencepiece) return the same keys
and values as transformers' tokenizers of the same names given the same settings, so that
code and tests can move between the two. Differences, all on purpose (clear errors instead of
silent surprises):

- more entities than ``max_entity_length`` without truncation, and word sequences longer
  than ``model_max_length`` without truncation, raise a ValueError (transformers warns or
  returns over-long inputs);
- entity spans may be given as lists as well as tuples; spans outside the text or inverted
  raise a ValueError naming the span;
- ``text_pair`` with a ``task`` raises (transformers drops the pair silently);
- ``return_tensors="np"`` on ragged rows raises instead of returning object arrays;
- ``model_max_length`` defaults to 512 when ``tokenizer_config.json`` does not set it;
- an entity marker task needs ``<ent>`` (and ``<ent2>``) declared by the tokenizer files.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .markers import marked_entity_spans
from .added_tokens import AddedToken, AddedTokenSplitter, strip_flags, token_content
from .bpe import ByteLevelBPE
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
from .entity_vocab import (
    ENTITY_VOCAB_FILES,
    MASK,
    MASK2,
    PAD,
    UNK,
    EntityVocab,
    load_entity_vocab,
)
from .files import read_json, require_file, resolve_tokenizer_folder
from .sentencepiece_bpe import SentencePieceBPE
from .word_pieces import WordPieceModel

ENTITY_CLASSIFICATION = "entity_classification"
ENTITY_PAIR_CLASSIFICATION = "entity_pair_classification"
ENTITY_SPAN_CLASSIFICATION = "entity_span_classification"
TASKS = (None, ENTITY_CLASSIFICATION, ENTITY_PAIR_CLASSIFICATION, ENTITY_SPAN_CLASSIFICATION)

logger = logging.getLogger(__name__)

Span = Tuple[int, int]
SpanInput = Sequence[Union[Tuple[int, int], Sequence[int]]]

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_DEFAULT_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}
_SETTINGS = (
    "task",
    "max_entity_length",
    "max_mention_length",
    "entity_token_1",
    "entity_token_2",
    "entity_unk_token",
    "entity_pad_token",
    "entity_mask_token",
    "entity_mask2_token",
    "model_max_length",
    "padding_side",
    "truncation_side",
    "additional_special_tokens",
    "lite",
) + _SPECIAL_TOKEN_KEYS


@dataclass
class _Example:
    """One example before special tokens, truncation and padding (token-level spans)."""

    first_ids: List[int]
    second_ids: Optional[List[int]] = None
    first_entity_ids: Optional[List[int]] = None
    second_entity_ids: Optional[List[int]] = None
    first_spans: Optional[List[Span]] = None
    second_spans: Optional[List[Span]] = None


class EntityAwareTokenizer:
    """Shared machinery of :class:`LukeTokenizer`, :class:`MLukeTokenizer` and :class:`TokenizerJsonLukeTokenizer`.

    Args:
        word_pieces: the word-piece model (byte-level BPE or sentencepiece).
        entity_vocab: the entity vocabulary; special entities are looked up by name.
        task: None, "entity_classification", "entity_pair_classification" or
            "entity_span_classification" (as transformers' ``task``).
        max_entity_length: maximum number of entities (forced to 1 / 2 for the
            classification tasks, as in transformers).
        max_mention_length: length of each row of ``entity_position_ids``.
        entity_token_1, entity_token_2: the marker tokens of the classification tasks.
        entity_unk_token, entity_pad_token, entity_mask_token, entity_mask2_token: the names
            of the special entities in ``entity_vocab``.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: special
            word tokens (strings, or ``{"content": ..., "lstrip": ...}`` dicts).
        additional_special_tokens: more unsplittable tokens declared by the checkpoint.
        added_token_ids: explicit ids of added tokens (``added_tokens.json``).
        model_max_length: longest word sequence (with special tokens) the model takes.
        padding_side, truncation_side: "right" (default) or "left".
        lite: prune the entity vocabulary to the special entities (ids then match a model
            loaded with ``lite=True``); titles map to [UNK].
        add_prefix_space: encode the first word as if a space preceded it (byte-level BPE only).
    """

    def __init__(
        self,
        word_pieces: WordPieceModel,
        entity_vocab: EntityVocab,
        *,
        task: Optional[str] = None,
        max_entity_length: int = 32,
        max_mention_length: int = 30,
        entity_token_1: Union[str, dict] = "<ent>",
        entity_token_2: Union[str, dict] = "<ent2>",
        entity_unk_token: str = UNK,
        entity_pad_token: str = PAD,
        entity_mask_token: str = MASK,
        entity_mask2_token: str = MASK2,
        bos_token: Union[str, dict] = "<s>",
        eos_token: Union[str, dict] = "</s>",
        unk_token: Union[str, dict] = "<unk>",
        sep_token: Union[str, dict] = "</s>",
        pad_token: Union[str, dict] = "<pad>",
        cls_token: Union[str, dict] = "<s>",
        mask_token: Union[str, dict] = "<mask>",
        additional_special_tokens: Sequence[Union[str, dict]] = (),
        added_token_ids: Optional[Mapping[str, int]] = None,
        model_max_length: int = 512,
        padding_side: str = "right",
        truncation_side: str = "right",
        lite: bool = False,
        add_prefix_space: bool = False,
    ):
        if task not in TASKS:
            raise ValueError(
                f"Unknown task {task!r}. Use one of {list(TASKS)} (None gives plain entity inputs "
                "from `entities` or [MASK])."
            )
        for name, value in (("max_entity_length", max_entity_length), ("max_mention_length", max_mention_length),
                            ("model_max_length", model_max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name, value in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if value not in ("right", "left"):
                raise ValueError(f"{name}={value!r}: use 'right' or 'left'.")
        self.word_pieces = word_pieces
        self.task = task
        self.max_mention_length = max_mention_length
        if task == ENTITY_CLASSIFICATION:
            self.max_entity_length = 1
        elif task == ENTITY_PAIR_CLASSIFICATION:
            self.max_entity_length = 2
        else:
            self.max_entity_length = max_entity_length
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.add_prefix_space = add_prefix_space
        self.lite = lite

        if lite:
            entity_vocab, _ = entity_vocab.lite(
                [entity_pad_token, entity_unk_token, entity_mask_token, entity_mask2_token]
            )
        self.entity_vocab = entity_vocab
        self.entity_unk_token_id = entity_vocab.special_id(entity_unk_token)
        self.entity_pad_token_id = entity_vocab.special_id(entity_pad_token)
        self.entity_mask_token_id = entity_vocab.special_id(entity_mask_token)
        self.entity_mask2_token_id = entity_vocab.special_id(entity_mask2_token)

        special_values = {
            "bos_token": bos_token, "eos_token": eos_token, "unk_token": unk_token, "sep_token": sep_token,
            "pad_token": pad_token, "cls_token": cls_token, "mask_token": mask_token,
        }
        self._build_added_tokens(
            special_values, list(additional_special_tokens), entity_token_1, entity_token_2, dict(added_token_ids or {})
        )
        if task in (ENTITY_CLASSIFICATION, ENTITY_PAIR_CLASSIFICATION):
            needed = [self.entity_token_1] if task == ENTITY_CLASSIFICATION else [self.entity_token_1, self.entity_token_2]
            missing = [token for token in needed if token not in self._declared_tokens]
            if missing:
                raise ValueError(
                    f"task={task!r} marks entities with {needed}, but {missing} is not in the tokenizer's "
                    "vocabulary (vocab / added_tokens.json / special_tokens_map.json), so the model has no "
                    "embedding for it. Use the tokenizer files of a LUKE checkpoint that has the markers, "
                    "add them to added_tokens.json with the ids the model was trained with, or pass "
                    "entity_token_1=/entity_token_2= naming tokens the vocabulary has."
                )

    # ------------------------------------------------------------------ special tokens

    def _build_added_tokens(
        self,
        special_values: Dict[str, Union[str, dict]],
        additional: List[Union[str, dict]],
        entity_token_1: Union[str, dict],
        entity_token_2: Union[str, dict],
        added_token_ids: Dict[str, int],
    ) -> None:
        """Give every special / added token an id the way transformers does, and index them."""
        specs: List[Tuple[str, bool, bool]] = []
        for key in _SPECIAL_TOKEN_KEYS:
            value = special_values[key]
            # the mask token behaves like a word: it takes the space before it
            lstrip, rstrip = strip_flags(value, lstrip=key == "mask_token", rstrip=False)
            specs.append((token_content(value), lstrip, rstrip))
        for value in list(additional) + [entity_token_1, entity_token_2]:
            lstrip, rstrip = strip_flags(value, False, False)
            specs.append((token_content(value), lstrip, rstrip))
        for content in added_token_ids:
            specs.append((content, False, False))

        ids: Dict[str, AddedToken] = {}
        next_id = max([self.word_pieces.vocab_size] + [i + 1 for i in added_token_ids.values()])
        for content, lstrip, rstrip in specs:
            if not content or content in ids:
                continue
            if content in added_token_ids:
                token_id = added_token_ids[content]
            else:
                vocab_id = self.word_pieces.token_to_id(content)
                if vocab_id is None:
                    token_id, next_id = next_id, next_id + 1
                else:
                    token_id = vocab_id
            ids[content] = AddedToken(content, token_id, lstrip=lstrip, rstrip=rstrip)
        self.added_tokens: Dict[str, AddedToken] = ids
        self._splitter = AddedTokenSplitter(ids.values())
        self._declared_tokens = {
            content
            for content in ids
            if content in added_token_ids
            or self.word_pieces.token_to_id(content) is not None
            or content in {token_content(v) for v in additional}
        }
        for key in _SPECIAL_TOKEN_KEYS:
            setattr(self, key, token_content(special_values[key]))
            setattr(self, f"{key}_id", ids[token_content(special_values[key])].id)
        self.entity_token_1 = token_content(entity_token_1)
        self.entity_token_2 = token_content(entity_token_2)
        self.entity_token_1_id = ids[self.entity_token_1].id
        self.entity_token_2_id = ids[self.entity_token_2].id

    def __len__(self) -> int:
        return max([self.word_pieces.vocab_size] + [t.id + 1 for t in self.added_tokens.values()])

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[int, List[int]]:
        """Ids of piece strings (added tokens included); unknown pieces give ``unk_token_id``."""

        def one(token: str) -> int:
            if token in self.added_tokens:
                return self.added_tokens[token].id
            found = self.word_pieces.token_to_id(token)
            return self.unk_token_id if found is None else found

        return one(tokens) if isinstance(tokens, str) else [one(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Sequence[int]]) -> Union[Optional[str], List[Optional[str]]]:
        """Piece strings of ids (added tokens included)."""
        by_id = {t.id: t.content for t in self.added_tokens.values()}

        def one(index: int) -> Optional[str]:
            return by_id.get(index) or self.word_pieces.id_to_token(index)

        return one(ids) if isinstance(ids, int) else [one(i) for i in ids]

    # ------------------------------------------------------------------ word pieces

    def _encode_segments(self, segments: Sequence[str], add_prefix_space: bool) -> List[List[int]]:
        """Word-piece ids of text segments, each encoded on its own (added tokens kept whole)."""
        plans: List[List[Tuple[bool, int]]] = []
        plain: List[str] = []
        for segment in segments:
            if add_prefix_space and segment and not segment[0].isspace():
                segment = " " + segment
            plan: List[Tuple[bool, int]] = []
            for piece in self._splitter.split(segment):
                if piece.token is not None:
                    plan.append((True, piece.token.id))
                elif piece.text:
                    plan.append((False, len(plain)))
                    plain.append(piece.text)
            plans.append(plan)
        encoded = self.word_pieces.encode_batch(plain) if plain else []
        out: List[List[int]] = []
        for plan in plans:
            ids: List[int] = []
            for is_token, value in plan:
                if is_token:
                    ids.append(value)
                else:
                    ids.extend(encoded[value])
            out.append(ids)
        return out

    def encode_text(self, text: str, add_prefix_space: Optional[bool] = None) -> List[int]:
        """Word-piece ids of ``text`` without ``<s>``/``</s>`` (transformers' ``tokenize`` + ids)."""
        prefix = self.add_prefix_space if add_prefix_space is None else add_prefix_space
        return self._encode_segments([text], prefix)[0]

    def tokenize(self, text: str, add_prefix_space: Optional[bool] = None) -> List[Optional[str]]:
        """Piece strings of ``text`` (as transformers' ``tokenize``)."""
        return self.convert_ids_to_tokens(self.encode_text(text, add_prefix_space))

    def _encode_with_spans(self, text: str, spans: List[Span], add_prefix_space: bool) -> Tuple[List[int], List[Span]]:
        """Word pieces of ``text`` cut at every span boundary, and the spans as piece ranges.

        As transformers does, the text is cut at each boundary (a space just before a
        boundary goes with the following piece) and each stretch is encoded on its own.
        """
        boundaries = sorted(set(itertools.chain.from_iterable(spans)))
        segments: List[str] = []
        segments_before: Dict[int, int] = {}
        cursor = 0
        for boundary in boundaries:
            cut = boundary - 1 if boundary > 0 and text[boundary - 1] == " " else boundary
            if cut != cursor:
                segments.append(text[cursor:cut])
                cursor = cut
            segments_before[boundary] = len(segments)
        segments.append(text[cursor:])
        encoded = self._encode_segments(segments, add_prefix_space)
        starts = list(itertools.accumulate([0] + [len(ids) for ids in encoded]))
        ids = [i for piece_ids in encoded for i in piece_ids]
        token_spans = [(starts[segments_before[s]], starts[segments_before[e]]) for s, e in spans]
        return ids, token_spans

    # ------------------------------------------------------------------ input checking

    @staticmethod
    def _check_spans(spans: Any, text: str, name: str) -> List[Span]:
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

    def _entity_ids_for(self, entities: Any, spans: List[Span], name: str, spans_name: str) -> List[int]:
        if entities is None:
            return [self.entity_mask_token_id] * len(spans)
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
        return [self.entity_vocab.lookup(title) for title in entities]

    # ------------------------------------------------------------------ one example

    def _make_example(
        self,
        text: str,
        text_pair: Optional[str],
        entity_spans: Any,
        entity_spans_pair: Any,
        entities: Any,
        entities_pair: Any,
        add_prefix_space: bool,
    ) -> _Example:
        task = self.task
        if entity_spans_pair is not None and text_pair is None:
            raise ValueError("entity_spans_pair was given without text_pair; pass the second text as text_pair.")
        if task is None:
            example = _Example(first_ids=[])
            if entity_spans is None:
                if entities is not None:
                    raise ValueError("entities were given without entity_spans; give each title's character span.")
                example.first_ids = self.encode_text(text, add_prefix_space)
            else:
                spans = self._check_spans(entity_spans, text, "entity_spans")
                example.first_entity_ids = self._entity_ids_for(entities, spans, "entities", "entity_spans")
                example.first_ids, example.first_spans = self._encode_with_spans(text, spans, add_prefix_space)
            if text_pair is not None:
                if entity_spans_pair is None:
                    example.second_ids = self.encode_text(text_pair, add_prefix_space)
                else:
                    spans = self._check_spans(entity_spans_pair, text_pair, "entity_spans_pair")
                    example.second_entity_ids = self._entity_ids_for(
                        entities_pair, spans, "entities_pair", "entity_spans_pair"
                    )
                    example.second_ids, example.second_spans = self._encode_with_spans(
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
        spans = self._check_spans(entity_spans, text, "entity_spans")
        count_ok = {ENTITY_CLASSIFICATION: len(spans) == 1, ENTITY_PAIR_CLASSIFICATION: len(spans) == 2,
                    ENTITY_SPAN_CLASSIFICATION: len(spans) > 0}[task]
        if not count_ok:
            raise ValueError(f"task={task!r} needs entity_spans with {expected}; got {len(spans)}: {spans}.")
        ids, token_spans = self._encode_with_spans(text, spans, add_prefix_space)
        if task == ENTITY_SPAN_CLASSIFICATION:
            return _Example(ids, first_entity_ids=[self.entity_mask_token_id] * len(spans), first_spans=token_spans)
        spans_out = marked_entity_spans(token_spans)
        if task == ENTITY_CLASSIFICATION:
            ids = _insert_markers(ids, [(token_spans[0], self.entity_token_1_id)])
            return _Example(ids, first_entity_ids=[self.entity_mask_token_id], first_spans=spans_out)
        head, tail = token_spans
        markers = [(head, self.entity_token_1_id), (tail, self.entity_token_2_id)]
        if head[0] < tail[0]:
            markers.reverse()
        ids = _insert_markers(ids, markers)
        return _Example(
            ids, first_entity_ids=[self.entity_mask_token_id, self.entity_mask2_token_id], first_spans=spans_out
        )

    def _prepare(
        self,
        example: _Example,
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
            example = self._make_example(
                text, text_pair, entity_spans, entity_spans_pair, entities, entities_pair, add_prefix_space
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
            example = self._make_example(
                text[i], item("text_pair"), spans_i, item("entity_spans_pair"), item("entities"),
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

    # ------------------------------------------------------------------ loading

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, Path],
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, Path]] = None,
        local_files_only: Optional[bool] = None,
        token: Optional[Union[str, bool]] = None,
        **settings: Any,
    ) -> "EntityAwareTokenizer":
        """Load from a local Hugging Face layout folder, or a hub repo id (tokenizer files only).

        ``settings`` are transformers' tokenizer settings (``task``, ``max_entity_length``,
        ``max_mention_length``, ``entity_token_1``, ``entity_token_2``, ``model_max_length``,
        ``add_prefix_space`` for LUKE, special tokens, ...) plus ``lite``; they override the
        values of ``tokenizer_config.json`` / ``special_tokens_map.json``.
        """
        allowed = set(_SETTINGS) | set(cls._extra_settings)
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got unknown settings {unknown}; valid settings are "
                f"{sorted(allowed)}."
            )
        folder = resolve_tokenizer_folder(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        config = read_json(folder / "tokenizer_config.json")
        special_map = read_json(folder / "special_tokens_map.json")
        added_token_ids = {str(k): int(v) for k, v in read_json(folder / "added_tokens.json").items()}
        strip_defaults: Dict[str, dict] = {}
        for token_id, spec in (config.get("added_tokens_decoder") or {}).items():
            added_token_ids.setdefault(spec["content"], int(token_id))
            strip_defaults[spec["content"]] = spec

        values: Dict[str, Any] = {k: config[k] for k in allowed if k in config and k != "additional_special_tokens"}
        for key in _SPECIAL_TOKEN_KEYS:
            if key in special_map:
                values[key] = special_map[key]
        additional: List[Union[str, dict]] = []
        for value in list(config.get("additional_special_tokens") or []) + list(
            special_map.get("additional_special_tokens") or []
        ):
            if token_content(value) not in {token_content(v) for v in additional}:
                additional.append(value)
        values["additional_special_tokens"] = additional
        values.update(settings)
        # flags recorded in added_tokens_decoder apply where a token is given as a bare string
        for key in _SPECIAL_TOKEN_KEYS + ("entity_token_1", "entity_token_2"):
            value = values.get(key, _DEFAULT_SPECIAL_TOKENS.get(key, "<ent>" if key == "entity_token_1" else "<ent2>"))
            if isinstance(value, str) and value in strip_defaults:
                values[key] = strip_defaults[value]
        if "model_max_length" in values and (
            values["model_max_length"] is None or values["model_max_length"] > 10**12
        ):
            values.pop("model_max_length")

        entity_file = require_file(folder, ENTITY_VOCAB_FILES, "entity vocabulary")
        entity_vocab = load_entity_vocab(entity_file)
        add_prefix_space = bool(values.pop("add_prefix_space", False))
        word_pieces = cls._load_word_pieces(folder, add_prefix_space)
        tokenizer = cls(word_pieces, entity_vocab, added_token_ids=added_token_ids, **values)
        tokenizer.name_or_path = str(name_or_path)
        return tokenizer

    _extra_settings: Tuple[str, ...] = ()
    # Text pairs: separators between the texts (LUKE/RoBERTa: ``</s></s>``; BERT: one ``[SEP]``)
    # and the token type of the second text (with ``return_token_type_ids=True``).
    pair_separators: int = 2
    pair_token_type_id: int = 0


def _insert_markers(ids: List[int], markers: Sequence[Tuple[Span, int]]) -> List[int]:
    """Insert a marker token at the end and then at the start of each span, in the given order."""
    for (start, end), marker in markers:
        ids = ids[:end] + [marker] + ids[end:]
        ids = ids[:start] + [marker] + ids[start:]
    return ids


class LukeTokenizer(EntityAwareTokenizer):
    """LUKE tokenizer: byte-level BPE word pieces (``vocab.json`` + ``merges.txt``) and entities.

    Build it with :meth:`from_pretrained`; calling it gives what transformers'
    ``LukeTokenizer`` gives with the same settings (see the module docstring for the few
    deliberate differences).
    """

    _extra_settings = ("add_prefix_space",)

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        if not (folder / "vocab.json").is_file() and (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"{folder} has no vocab.json / merges.txt but a tokenizer.json (a LUKE model built from a "
                "BERT-style encoder?). Load it with spacy_luke.tokenization.load_tokenizer(folder), which picks "
                "the right tokenizer class for any LUKE folder, or TokenizerJsonLukeTokenizer.from_pretrained(folder)."
            )
        vocab_file = require_file(folder, ["vocab.json"], "LUKE word vocabulary")
        merges_file = require_file(folder, ["merges.txt"], "LUKE BPE merges")
        return ByteLevelBPE(vocab_file, merges_file, add_prefix_space=add_prefix_space)

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if "add_prefix_space" not in settings:
            settings["add_prefix_space"] = bool(getattr(word_pieces, "add_prefix_space", False))
        super().__init__(word_pieces, entity_vocab, **settings)


class MLukeTokenizer(EntityAwareTokenizer):
    """mLUKE tokenizer: sentencepiece word pieces (``sentencepiece.bpe.model``, fairseq ids).

    Build it with :meth:`from_pretrained`; calling it gives what transformers'
    ``MLukeTokenizer`` gives with the same settings. Entity titles are looked up exactly as
    given, so pass them with their language prefix (``"en:Japan"``).
    """

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        model_file = require_file(folder, ["sentencepiece.bpe.model"], "mLUKE sentencepiece model")
        return SentencePieceBPE(model_file)

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if settings.pop("add_prefix_space", False):
            raise ValueError("add_prefix_space is a byte-level BPE setting; mLUKE's sentencepiece has no use for it.")
        super().__init__(word_pieces, entity_vocab, **settings)

    def __call__(self, *args: Any, **kwargs: Any) -> LukeEncoding:  # noqa: D102 - same as the base
        if kwargs.get("add_prefix_space"):
            raise ValueError("add_prefix_space is a byte-level BPE setting; mLUKE's sentencepiece has no use for it.")
        return super().__call__(*args, **kwargs)

    __call__.__doc__ = EntityAwareTokenizer.__call__.__doc__


class TokenizerJsonLukeTokenizer(EntityAwareTokenizer):
    """LUKE entity inputs over the word pieces of a ``tokenizer.json`` (e.g. BERT's WordPiece).

    The tokenizer of LUKE models built from a BERT-family encoder by
    :func:`spacy_luke.model.from_encoder.convert_encoder_to_luke`: word pieces come from the
    encoder's ``tokenizer.json`` (its normalizer, e.g. lowercasing, included), special tokens
    from ``tokenizer_config.json`` (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``), the
    markers ``<ent>`` / ``<ent2>`` from ``added_tokens.json``. Text pairs are laid out as the
    ``tokenizer.json`` post-processor says (BERT: ``[CLS] A [SEP] B [SEP]``, type 1 for ``B``).
    Tasks, entities and the call API are those of :class:`LukeTokenizer`.
    """

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        from .tokenizer_json import TokenizerJsonPieces

        return TokenizerJsonPieces(require_file(folder, ["tokenizer.json"], "word tokenizer (tokenizer.json)"))

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if settings.pop("add_prefix_space", False):
            raise ValueError(
                "add_prefix_space is a byte-level BPE setting; a tokenizer.json word tokenizer follows its own "
                "pre-tokenizer."
            )
        self.pair_separators = int(getattr(word_pieces, "pair_separators", 1))
        self.pair_token_type_id = int(getattr(word_pieces, "pair_token_type_id", 0))
        super().__init__(word_pieces, entity_vocab, **settings)


def tokenizer_class_for(folder: Union[str, Path]) -> type:
    """The tokenizer class for the word-tokenizer files in ``folder``.

    ``vocab.json`` + ``merges.txt``: :class:`LukeTokenizer`; ``sentencepiece.bpe.model``:
    :class:`MLukeTokenizer`; otherwise ``tokenizer.json``: :class:`TokenizerJsonLukeTokenizer`.
    """
    folder = Path(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return LukeTokenizer
    if (folder / "sentencepiece.bpe.model").is_file():
        return MLukeTokenizer
    if (folder / "tokenizer.json").is_file():
        return TokenizerJsonLukeTokenizer
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise FileNotFoundError(
        f"{folder} has no word tokenizer: expected vocab.json + merges.txt (LUKE), sentencepiece.bpe.model "
        f"(mLUKE) or tokenizer.json (a LUKE model built from another encoder); it holds {present}."
    )


def load_tokenizer(
    name_or_path: Union[str, Path],
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    **settings: Any,
) -> EntityAwareTokenizer:
    """The tokenizer of any LUKE folder or hub repo, of the class its files call for.

    LUKE (``vocab.json`` + ``merges.txt``), mLUKE (``sentencepiece.bpe.model``) or a LUKE model
    converted from a BERT-family encoder (``tokenizer.json``); see :func:`tokenizer_class_for`.
    ``settings`` are passed to that class's ``from_pretrained`` (``task``, ``max_entity_length``, ...).
    """
    folder = resolve_tokenizer_folder(
        name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    tokenizer = tokenizer_class_for(folder).from_pretrained(folder, **settings)
    tokenizer.name_or_path = str(name_or_path)
    return tokenizer
