"""Tiny LUKE checkpoints made with transformers' classes and random weights, and random model inputs.

Plain builders (no pytest fixtures): the fixtures in ``tests/conftest.py`` and the benchmarks call them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import torch

import transformers  # test-only dependency (see setup.cfg [test])

# Entity vocabularies: a full one (specials first, then titles) and a "-lite" one ([MASK] at 0).
ENTITY_TITLES = ["Japan", "Tokyo", "Barack Obama", "United States", "Paris", "France", "Beyoncé", "Los Angeles"]
FULL_ENTITY_VOCAB = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3, **{t: 4 + i for i, t in enumerate(ENTITY_TITLES)}}
LITE_ENTITY_VOCAB = {"[MASK]": 0, "[PAD]": 1, "[UNK]": 2, "[MASK2]": 3}

VARIANTS: Dict[str, dict] = {
    # entity-aware attention, entity_emb_size != hidden_size, two token types
    "entity_aware": dict(use_entity_aware_attention=True, entity_emb_size=16, type_vocab_size=2, layer_norm_eps=1e-12),
    # plain attention, entity_emb_size == hidden_size, public-checkpoint style eps / token types
    "plain": dict(use_entity_aware_attention=False, entity_emb_size=32, type_vocab_size=1, layer_norm_eps=1e-5),
    # a -lite style entity vocabulary: 4 entities, [MASK] at 0
    "lite_vocab": dict(use_entity_aware_attention=True, entity_emb_size=16, type_vocab_size=1, layer_norm_eps=1e-5),
}

HEADS = [
    "LukeModel",
    "LukeForMaskedLM",
    "LukeForEntityClassification",
    "LukeForEntityPairClassification",
    "LukeForEntitySpanClassification",
    "LukeForSequenceClassification",
    "LukeForTokenClassification",
    "LukeForQuestionAnswering",
    "LukeForMultipleChoice",
]
NUM_LABELS = 5
# The outputs compared with transformers' (those a head returns).
OUTPUT_KEYS = (
    "last_hidden_state",
    "pooler_output",
    "entity_last_hidden_state",
    "logits",
    "entity_logits",
    "start_logits",
    "end_logits",
    "loss",
    "mlm_loss",
    "mep_loss",
)


def hf_config(variant: str, **overrides):
    settings = dict(VARIANTS[variant])
    vocab = LITE_ENTITY_VOCAB if variant == "lite_vocab" else FULL_ENTITY_VOCAB
    settings.update(
        vocab_size=120,
        entity_vocab_size=max(vocab.values()) + 1,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=70,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        id2label={i: f"L{i}" for i in range(NUM_LABELS)},
    )
    settings.update(overrides)
    return transformers.LukeConfig(**settings)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every parameter (biases, LayerNorms too) so parity checks see all of them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)


def save_hf_checkpoint(folder: Path, head: str, variant: str, fmt: str = "safetensors", seed: int = 0, **overrides):
    """Build transformers' ``head`` with random weights and save it (plus entity_vocab.json) into ``folder``."""
    torch.manual_seed(seed)
    if head == "LukeForQuestionAnswering":
        overrides.setdefault("id2label", {0: "start", 1: "end"})
    model = getattr(transformers, head)(hf_config(variant, **overrides)).eval()
    randomize(model, seed)
    model.save_pretrained(folder, safe_serialization=(fmt == "safetensors"))
    vocab = LITE_ENTITY_VOCAB if variant == "lite_vocab" else FULL_ENTITY_VOCAB
    (Path(folder) / "entity_vocab.json").write_text(json.dumps(vocab), encoding="utf8")
    return model


def share_queries(reference: torch.nn.Module) -> None:
    """Set w2e = e2w = e2e = query in every layer of a transformers LUKE model, as the public checkpoints have."""
    with torch.no_grad():
        for layer in reference.luke.encoder.layer:
            att = layer.attention.self
            for proj in (att.w2e_query, att.e2w_query, att.e2e_query):
                proj.weight.copy_(att.query.weight)
                proj.bias.copy_(att.query.bias)


def make_inputs(head: str, config, *, batch: int = 3, length: int = 11, entities: int = 4, mention: int = 5, choices: int = 2, seed: int = 0):
    """Random inputs with padding on words and entities, valid for ``head``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch * choices,) if head == "LukeForMultipleChoice" else (batch,)
    n = shape[0]
    input_ids = torch.randint(3, config.vocab_size, (n, length), generator=gen)
    input_ids[:, 0] = 0
    lengths = [length - (i % 3) * 2 for i in range(n)]
    attention_mask = torch.zeros(n, length, dtype=torch.long)
    for i, used in enumerate(lengths):
        input_ids[i, used - 1] = 2
        input_ids[i, used:] = config.pad_token_id
        attention_mask[i, :used] = 1
    if head == "LukeForEntityClassification":
        entities = 1
    elif head == "LukeForEntityPairClassification":
        entities = 2
    entity_ids = torch.randint(0, config.entity_vocab_size, (n, entities), generator=gen)
    entity_attention_mask = torch.ones(n, entities, dtype=torch.long)
    entity_position_ids = torch.full((n, entities, mention), -1, dtype=torch.long)
    starts = torch.zeros(n, entities, dtype=torch.long)
    ends = torch.zeros(n, entities, dtype=torch.long)
    for i, used in enumerate(lengths):
        n_real = entities if i % 2 == 0 or entities <= 2 else entities - 1  # padded entities on odd rows
        for j in range(entities):
            if j >= n_real:
                entity_attention_mask[i, j] = 0
                continue
            start = int(torch.randint(1, used - 2, (1,), generator=gen))
            width = int(torch.randint(1, min(mention, used - 1 - start) + 1, (1,), generator=gen))
            entity_position_ids[i, j, :width] = torch.arange(start, start + width)
            starts[i, j], ends[i, j] = start, start + width - 1
    token_type_ids = torch.zeros(n, length, dtype=torch.long)
    if config.type_vocab_size > 1:
        token_type_ids[:, length // 2 :] = 1
    inputs = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        entity_ids=entity_ids,
        entity_attention_mask=entity_attention_mask,
        entity_token_type_ids=torch.zeros(n, entities, dtype=torch.long),
        entity_position_ids=entity_position_ids,
    )
    if head == "LukeForEntitySpanClassification":
        inputs.update(entity_start_positions=starts, entity_end_positions=ends)
    if head == "LukeForMultipleChoice":
        inputs = {k: v.reshape(batch, choices, *v.shape[1:]) for k, v in inputs.items()}
    return inputs


def make_labels(head: str, config, inputs, *, multi_label: bool = False, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    batch = inputs["input_ids"].shape[0]
    if head == "LukeModel":
        return {}
    if head == "LukeForMaskedLM":
        labels = torch.randint(0, config.vocab_size, inputs["input_ids"].shape, generator=gen)
        labels[:, ::2] = -100
        entity_labels = torch.randint(0, config.entity_vocab_size, inputs["entity_ids"].shape, generator=gen)
        entity_labels[:, 0] = -100
        return dict(labels=labels, entity_labels=entity_labels)
    if head in ("LukeForEntityClassification", "LukeForEntityPairClassification", "LukeForSequenceClassification"):
        if multi_label:
            return dict(labels=torch.randint(0, 2, (batch, NUM_LABELS), generator=gen).float())
        return dict(labels=torch.randint(0, NUM_LABELS, (batch,), generator=gen))
    if head == "LukeForEntitySpanClassification":
        shape = inputs["entity_ids"].shape
        if multi_label:
            return dict(labels=torch.randint(0, 2, (*shape, NUM_LABELS), generator=gen).float())
        return dict(labels=torch.randint(0, NUM_LABELS, shape, generator=gen))
    if head == "LukeForTokenClassification":
        return dict(labels=torch.randint(0, NUM_LABELS, inputs["input_ids"].shape, generator=gen))
    if head == "LukeForQuestionAnswering":
        length = inputs["input_ids"].shape[1]
        return dict(
            start_positions=torch.tensor([1, 3, length + 5])[:batch],  # one outside the input: ignored
            end_positions=torch.tensor([2, 4, 6])[:batch],
        )
    if head == "LukeForMultipleChoice":
        return dict(labels=torch.randint(0, inputs["input_ids"].shape[1], (batch,), generator=gen))
    raise KeyError(head)
