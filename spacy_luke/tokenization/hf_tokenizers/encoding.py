"""Padding, truncation and tensor conversion with the Hugging Face semantics.

These are the rules of transformers' ``PreTrainedTokenizerBase`` and ``LukeTokenizer``
(``_get_padding_truncation_strategies``, ``truncate_sequences``, ``_pad``,
``BatchEncoding.convert_to_tensors``), written as small functions over plain dicts of lists so
that :class:`~spacy_luke.tokenization.LukeTokenizer` returns the same keys and values.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

DO_NOT_PAD = "do_not_pad"
LONGEST = "longest"
MAX_LENGTH = "max_length"
PADDING_STRATEGIES = (DO_NOT_PAD, LONGEST, MAX_LENGTH)

DO_NOT_TRUNCATE = "do_not_truncate"
LONGEST_FIRST = "longest_first"
ONLY_FIRST = "only_first"
ONLY_SECOND = "only_second"
TRUNCATION_STRATEGIES = (DO_NOT_TRUNCATE, LONGEST_FIRST, ONLY_FIRST, ONLY_SECOND)

# transformers' "no maximum length" sentinel threshold
LARGE_INTEGER = int(1e20)


class LukeEncoding(dict):
    """The output of the tokenizers: a dict of model inputs, also readable as attributes.

    Like transformers' ``BatchEncoding``: ``enc["input_ids"]`` or ``enc.input_ids``, and
    ``enc.to(device)`` when the values are torch tensors.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> "LukeEncoding":
        """Move every torch tensor value to ``device`` (other values are kept)."""
        return LukeEncoding({k: v.to(device) if hasattr(v, "to") else v for k, v in self.items()})


def _strategy_name(value: Any) -> Any:
    """Accept transformers' enum members (``PaddingStrategy.LONGEST``) by their value."""
    return getattr(value, "value", value)


def _pick_strategy(name: str, value: Any, strategies: Sequence[str], *, off: str, on: str, hint: str) -> str:
    """The strategy a ``padding=`` / ``truncation=`` value names: False or None is ``off``, True is
    ``on``, a strategy name is itself; anything else is a ValueError listing ``hint``."""
    if value is False or value is None:
        return off
    if value is True:
        return on
    if value in strategies:
        return value
    raise ValueError(f"{name}={value!r} is not a {name} strategy; use {hint}.")


def resolve_strategies(
    padding: Union[bool, str],
    truncation: Union[bool, str, None],
    max_length: Optional[int],
    pad_to_multiple_of: Optional[int],
    model_max_length: int,
) -> Tuple[str, str, Optional[int]]:
    """``(padding_strategy, truncation_strategy, max_length)`` as transformers resolves them."""
    padding = _strategy_name(padding)
    truncation = _strategy_name(truncation)
    if max_length is not None and padding is False and truncation is None:
        truncation = LONGEST_FIRST  # transformers: max_length alone switches truncation on
    padding_strategy = _pick_strategy(
        "padding", padding, PADDING_STRATEGIES, off=DO_NOT_PAD, on=LONGEST,
        hint="True (or 'longest'), 'max_length', False (or 'do_not_pad')",
    )
    truncation_strategy = _pick_strategy(
        "truncation", truncation, TRUNCATION_STRATEGIES, off=DO_NOT_TRUNCATE, on=LONGEST_FIRST,
        hint="True (or 'longest_first'), 'only_first', 'only_second', False (or 'do_not_truncate')",
    )
    if max_length is None:
        if padding_strategy == MAX_LENGTH:
            if model_max_length > LARGE_INTEGER:
                padding_strategy = DO_NOT_PAD
            else:
                max_length = model_max_length
        if truncation_strategy != DO_NOT_TRUNCATE:
            if model_max_length > LARGE_INTEGER:
                truncation_strategy = DO_NOT_TRUNCATE
            else:
                max_length = model_max_length
    if (
        truncation_strategy != DO_NOT_TRUNCATE
        and padding_strategy != DO_NOT_PAD
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of != 0
    ):
        raise ValueError(
            "Truncation and padding are both activated but truncation length "
            f"({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
        )
    return padding_strategy, truncation_strategy, max_length


def truncate_pair(
    first: List[Any],
    second: Optional[List[Any]],
    num_to_remove: int,
    strategy: str,
    side: str = "right",
) -> Tuple[List[Any], Optional[List[Any]]]:
    """Remove ``num_to_remove`` items from a sequence (pair) following ``strategy``.

    Follows transformers' ``truncate_sequences``: when the strategy cannot remove enough
    (``only_first`` on a too-short first sequence), nothing is removed.
    """
    if num_to_remove <= 0:
        return first, second

    def cut(seq: List[Any], n: int) -> List[Any]:
        if n <= 0:
            return seq
        return seq[n:] if side == "left" else seq[:-n]

    if strategy == ONLY_FIRST or (strategy == LONGEST_FIRST and second is None):
        if len(first) > num_to_remove:
            first = cut(first, num_to_remove)
    elif strategy == LONGEST_FIRST:
        len_first, len_second = len(first), len(second)
        first_remove = min(abs(len_second - len_first), num_to_remove)
        second_remove = num_to_remove - first_remove
        if len_first > len_second:
            from_first = first_remove + second_remove // 2
            from_second = second_remove - second_remove // 2
        else:
            from_first = second_remove // 2
            from_second = first_remove + second_remove - second_remove // 2
        first = cut(first, from_first)
        second = cut(second, from_second)
    elif strategy == ONLY_SECOND and second is not None:
        if len(second) > num_to_remove:
            second = cut(second, num_to_remove)
    return first, second


def _round_up(length: Optional[int], multiple: Optional[int]) -> Optional[int]:
    if length is not None and multiple and length % multiple != 0:
        return (length // multiple + 1) * multiple
    return length


def pad_example(
    inputs: Dict[str, Any],
    *,
    strategy: str,
    max_length: Optional[int],
    max_entity_length: Optional[int],
    pad_to_multiple_of: Optional[int],
    padding_side: str,
    return_attention_mask: bool,
    pad_token_id: int,
    entity_pad_id: int,
    max_mention_length: int,
    with_span_positions: bool,
) -> Dict[str, Any]:
    """Pad the words and entities of one example, adding the attention masks (LUKE's ``_pad``).

    The entity attention mask is built from the entity count, never from ``entity_ids != 0``
    (the "-lite" vocabularies put [MASK] at 0).
    """
    input_ids = inputs["input_ids"]
    has_entities = "entity_ids" in inputs
    if strategy == LONGEST:
        max_length = len(input_ids)
        if has_entities:
            max_entity_length = len(inputs["entity_ids"])
    max_length = _round_up(max_length, pad_to_multiple_of)
    if has_entities:
        max_entity_length = _round_up(max_entity_length, pad_to_multiple_of)
    needs_padding = strategy != DO_NOT_PAD and (
        len(input_ids) != max_length or (has_entities and len(inputs["entity_ids"]) != max_entity_length)
    )
    if return_attention_mask and "attention_mask" not in inputs:
        inputs["attention_mask"] = [1] * len(input_ids)
    if has_entities and return_attention_mask and "entity_attention_mask" not in inputs:
        inputs["entity_attention_mask"] = [1] * len(inputs["entity_ids"])
    if not needs_padding:
        return inputs
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side={padding_side!r}: use 'right' or 'left'.")
    n_words = max(0, max_length - len(input_ids))
    n_entities = max(0, max_entity_length - len(inputs["entity_ids"])) if has_entities else 0

    def extend(key: str, value: Any, n: int) -> None:
        fill = [value] * n
        inputs[key] = inputs[key] + fill if padding_side == "right" else fill + inputs[key]

    if return_attention_mask:
        extend("attention_mask", 0, n_words)
        if has_entities:
            extend("entity_attention_mask", 0, n_entities)
    if "token_type_ids" in inputs:
        extend("token_type_ids", 0, n_words)
        if has_entities:
            extend("entity_token_type_ids", 0, n_entities)
    if "special_tokens_mask" in inputs:
        extend("special_tokens_mask", 1, n_words)
    extend("input_ids", pad_token_id, n_words)
    if has_entities:
        extend("entity_ids", entity_pad_id, n_entities)
        extend("entity_position_ids", [-1] * max_mention_length, n_entities)
        if with_span_positions:
            extend("entity_start_positions", 0, n_entities)
            extend("entity_end_positions", 0, n_entities)
    return inputs


def to_tensors(
    encoded: Dict[str, Any], return_tensors: Optional[str], prepend_batch_axis: bool
) -> LukeEncoding:
    """Convert the values to ``"pt"`` (torch) or ``"np"`` (numpy) arrays, or leave them as lists."""
    return_tensors = _strategy_name(return_tensors)
    if return_tensors is None:
        return LukeEncoding(encoded)
    if return_tensors not in ("pt", "np"):
        raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt', 'np' or None.")
    import numpy as np

    out = LukeEncoding()
    for key, value in encoded.items():
        if prepend_batch_axis:
            value = [value]
        if _is_ragged(value):
            raise ValueError(
                f"Cannot make a {return_tensors!r} tensor of {key!r}: its rows have different lengths. "
                "Pass padding=True (or padding='max_length') and, for long inputs, truncation=True."
            )
        if return_tensors == "pt":
            import torch

            out[key] = torch.tensor(value)
        else:
            out[key] = np.asarray(value)
    return out


def _is_ragged(value: Sequence[Any]) -> bool:
    if not isinstance(value, (list, tuple)) or not value or not isinstance(value[0], (list, tuple)):
        return False
    lengths = {len(row) for row in value}
    if len(lengths) > 1:
        return True
    return any(_is_ragged(row) for row in value)
