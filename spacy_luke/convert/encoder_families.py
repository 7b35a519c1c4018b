"""The encoder families a LUKE model can start from, as data: BERT, RoBERTa, XLM-R, DistilBERT.

Each family says how its checkpoint names map to ours (key-rule lists, applied in order by
``spacy_luke.model.checkpoint.rename_key``), which ``config.json`` keys give each LukeConfig
field and the defaults when they are absent, whether positions count from 0 (BERT) or from
``padding_idx + 1`` (RoBERTa, our layout), and the special word tokens. A new family is a new
:class:`EncoderFamily` in :data:`ENCODER_FAMILIES`, not new conversion code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

# Checkpoint names of the encoders a LUKE model can start from, mapped to our LukeModel names
# (the word side, the pooler, and the MLM head as our ``lm_head``). BERT, RoBERTa and XLM-R
# share BERT's module names below their prefix.
BERT_KEY_RULES: Tuple[Tuple[str, str], ...] = (
    (r"^(bert|roberta)\.", ""),
    (r"^cls\.predictions\.transform\.dense\.", "lm_head.dense."),
    (r"^cls\.predictions\.transform\.LayerNorm\.", "lm_head.layer_norm."),
    (r"^cls\.predictions\.bias$", "lm_head.bias"),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
)
BERT_IGNORED: Tuple[str, ...] = (
    r"(^|\.)position_ids$",
    r"(^|\.)token_type_ids$",
    r"^cls\.",  # next-sentence head, tied decoder
    r"^lm_head\.decoder\.",  # tied to the word embeddings
    r"^(classifier|qa_outputs)\.",  # fine-tuned task heads: a LUKE task gets its own
)
DISTILBERT_KEY_RULES: Tuple[Tuple[str, str], ...] = (
    (r"^distilbert\.", ""),
    (r"^transformer\.layer\.", "encoder.layer."),
    (r"\.attention\.q_lin\.", ".attention.self.query."),
    (r"\.attention\.k_lin\.", ".attention.self.key."),
    (r"\.attention\.v_lin\.", ".attention.self.value."),
    (r"\.attention\.out_lin\.", ".attention.output.dense."),
    (r"\.sa_layer_norm\.", ".attention.output.LayerNorm."),
    (r"\.ffn\.lin1\.", ".intermediate.dense."),
    (r"\.ffn\.lin2\.", ".output.dense."),
    (r"\.output_layer_norm\.", ".output.LayerNorm."),
    (r"^vocab_transform\.", "lm_head.dense."),
    (r"^vocab_layer_norm\.", "lm_head.layer_norm."),
    (r"^vocab_projector\.bias$", "lm_head.bias"),
)
DISTILBERT_IGNORED: Tuple[str, ...] = (
    r"(^|\.)position_ids$",
    r"^vocab_projector\.weight$",  # tied to the word embeddings
    r"^(pre_classifier|classifier|qa_outputs)\.",
)

_BERT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
)
_BERT_DEFAULTS = dict(
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    pad_token_id=0,
    max_position_embeddings=512,
)
BERT_SPECIAL_TOKENS = dict(
    cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]"
)
ROBERTA_SPECIAL_TOKENS = dict(
    bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
    pad_token="<pad>", mask_token="<mask>", unk_token="<unk>",
)


@dataclass(frozen=True)
class EncoderFamily:
    """How to read one family of encoder checkpoints.

    Attributes:
        key_rules, ignored: checkpoint name -> our name rewrites, and names to skip.
        config_keys: LukeConfig field -> the source config.json key that gives it.
        defaults: LukeConfig values when the source config.json does not give them.
        zero_based_positions: BERT-style positions (0..n-1) that need the shifted table.
        special_tokens: the special word tokens when the tokenizer files do not name them.
    """

    key_rules: Tuple[Tuple[str, str], ...]
    ignored: Tuple[str, ...]
    config_keys: Mapping[str, str]
    defaults: Mapping[str, Any]
    zero_based_positions: bool
    special_tokens: Mapping[str, str]


_BERT = EncoderFamily(
    key_rules=BERT_KEY_RULES,
    ignored=BERT_IGNORED,
    config_keys={key: key for key in _BERT_CONFIG_KEYS},
    defaults=_BERT_DEFAULTS,
    zero_based_positions=True,
    special_tokens=BERT_SPECIAL_TOKENS,
)
_ROBERTA = EncoderFamily(
    key_rules=BERT_KEY_RULES,
    ignored=BERT_IGNORED,
    config_keys={key: key for key in _BERT_CONFIG_KEYS},
    defaults=dict(_BERT_DEFAULTS, pad_token_id=1, type_vocab_size=1, layer_norm_eps=1e-5, max_position_embeddings=514),
    zero_based_positions=False,
    special_tokens=ROBERTA_SPECIAL_TOKENS,
)
_DISTILBERT = EncoderFamily(
    key_rules=DISTILBERT_KEY_RULES,
    ignored=DISTILBERT_IGNORED,
    config_keys=dict(
        vocab_size="vocab_size",
        hidden_size="dim",
        num_hidden_layers="n_layers",
        num_attention_heads="n_heads",
        intermediate_size="hidden_dim",
        max_position_embeddings="max_position_embeddings",
        hidden_act="activation",
        hidden_dropout_prob="dropout",
        attention_probs_dropout_prob="attention_dropout",
        initializer_range="initializer_range",
        pad_token_id="pad_token_id",
    ),
    defaults=dict(_BERT_DEFAULTS, type_vocab_size=1, layer_norm_eps=1e-12),
    zero_based_positions=True,
    special_tokens=BERT_SPECIAL_TOKENS,
)
#: config.json ``model_type`` -> how to read that encoder.
ENCODER_FAMILIES: Dict[str, EncoderFamily] = {
    "bert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "distilbert": _DISTILBERT,
}

