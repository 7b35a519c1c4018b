"""The entity-aware tokenizer core: settings, special tokens, word pieces, text cut at spans.

:class:`EntityAwareTokenizer` is what :class:`~spacy_luke.tokenization.LukeTokenizer`,
:class:`~spacy_luke.tokenization.MLukeTokenizer` and
:class:`~spacy_luke.tokenization.TokenizerJsonLukeTokenizer` share; its transformers-compatible
``__call__`` comes from :mod:`.transformers_call`. They return the same keys and values as
transformers' tokenizers of the same names given the same settings, so that code and tests can
move between the two. Differences, all on purpose (clear errors instead of silent surprises):

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
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..subwords.added_tokens import SPECIAL_TOKEN_KEYS, AddedToken, AddedTokenSplitter, strip_flags, token_content
from ..subwords.files import read_tokenizer_settings, require_file, resolve_tokenizer_folder
from ..subwords.word_pieces import WordPieceModel
from .entity_vocab import ENTITY_VOCAB_FILES, MASK, MASK2, PAD, UNK, EntityVocab, load_entity_vocab
from .task_examples import ENTITY_CLASSIFICATION, ENTITY_PAIR_CLASSIFICATION, TASKS, Span
from .transformers_call import TransformersCallMixin

# the keyword settings of the tokenizers (``from_pretrained`` rejects any other name)
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
) + SPECIAL_TOKEN_KEYS


class EntityAwareTokenizer(TransformersCallMixin):
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
        self._entity_special_tokens = (entity_pad_token, entity_unk_token, entity_mask_token, entity_mask2_token)
        self._set_entity_vocab(entity_vocab)

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
        for key in SPECIAL_TOKEN_KEYS:
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
        for key in SPECIAL_TOKEN_KEYS:
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

    def encode_with_spans(self, text: str, spans: List[Span], add_prefix_space: bool) -> Tuple[List[int], List[Span]]:
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

    def _set_entity_vocab(self, entity_vocab) -> None:
        pad, unk, mask, mask2 = self._entity_special_tokens
        self.entity_vocab = entity_vocab
        self.entity_unk_token_id = entity_vocab.special_id(unk)
        self.entity_pad_token_id = entity_vocab.special_id(pad)
        self.entity_mask_token_id = entity_vocab.special_id(mask)
        self.entity_mask2_token_id = entity_vocab.special_id(mask2)

    def keep_entities(self, titles) -> List[int]:
        """Prune the entity vocabulary to the special entities and ``titles`` (those it has).

        Returns, for each new id, the old row: prune the model's entity table with the same rows
        (``spacy_luke.model.keep_entity_rows``) so that ids and rows still match.
        """
        keep = list(dict.fromkeys(list(self._entity_special_tokens) + [t for t in titles if t in self.entity_vocab]))
        pruned, rows = self.entity_vocab.lite(keep)
        self._set_entity_vocab(pruned)
        return rows

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
        values, added_token_ids = read_tokenizer_settings(folder, allowed, settings)
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
