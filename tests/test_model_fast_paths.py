"""Each fast path and precision mode against the plain float32 path (and transformers where exact)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import spacy_luke.model as ours
from conftest import make_inputs
from pipeline_fixtures import ner_checkpoint, pipe_root  # noqa: F401
from spacy_luke.model.embeddings import mean_position_embeddings
from spacy_luke.model.precision import (
    PRECISIONS,
    effective_precision,
    inference_view,
    precision_context,
    quantize_linears,
)

TOL = 1e-4
HEAD = "LukeForEntitySpanClassification"


def _share_queries(reference):
    with torch.no_grad():
        for layer in reference.luke.encoder.layer:
            att = layer.attention.self
            for proj in (att.w2e_query, att.e2w_query, att.e2e_query):
                proj.weight.copy_(att.query.weight)
                proj.bias.copy_(att.query.bias)


@pytest.fixture
def shared_model(hf_checkpoint):
    """(transformers model, our model) with w2e = e2w = e2e = query, as the public checkpoints."""
    folder, reference = hf_checkpoint(HEAD)
    _share_queries(reference)
    reference.save_pretrained(folder)
    return reference, ours.LukeForEntitySpanClassification.from_pretrained(folder)


def _attention_modules(model):
    return [layer.attention.self for layer in model.luke.encoder.layer]


def test_mean_position_embeddings_matches_materialized_mean():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(40, 8, generator=gen)
    positions = torch.full((3, 5, 6), -1, dtype=torch.long)
    for b in range(3):
        for e in range(4):  # the last entity of each row is padding (no positions)
            start, width = (b + e) % 20, 1 + (b * e) % 6
            positions[b, e, :width] = torch.arange(start, start + width)
    positions[0, 0, :3] = torch.tensor([7, -1, 9])  # a gap is allowed
    valid = (positions != -1).float().unsqueeze(-1)
    expected = (table[positions.clamp(min=0)] * valid).sum(-2) / valid.sum(-2).clamp(min=1e-7)
    got = mean_position_embeddings(table, positions)
    assert got.shape == (3, 5, 8)
    assert torch.allclose(got, expected, atol=1e-6)
    assert got[:, 4].abs().sum() == 0


def test_shared_queries_survive_train_eval_toggles(shared_model):
    """thinc calls model.train() after every prediction: the shortcut must come back in eval."""
    reference, model = shared_model
    inputs = make_inputs(HEAD, reference.config)
    with torch.no_grad():
        expected = reference(**inputs).logits
        model.train()
        assert not any(att.queries_shared for att in _attention_modules(model))
        model.eval()
        got = model(**inputs).logits
    assert all(att.queries_shared for att in _attention_modules(model))
    assert (expected - got).abs().max() < TOL


def test_shared_queries_rechecked_when_weights_change(shared_model):
    reference, model = shared_model
    inputs = make_inputs(HEAD, reference.config)
    with torch.no_grad():
        model(**inputs)
        att = _attention_modules(model)[0]
        assert att.queries_shared
        att.w2e_query.weight.add_(0.5)  # in place: the version counter moves
        reference.luke.encoder.layer[0].attention.self.w2e_query.weight.add_(0.5)
        got = model(**inputs).logits
        assert not att.queries_shared
        assert (reference(**inputs).logits - got).abs().max() < TOL


def test_shortcut_off_matches_entity_aware_path(shared_model):
    """The plain-attention shortcut gives the entity-aware path's numbers (both implementations)."""
    reference, model = shared_model
    inputs = make_inputs(HEAD, reference.config)
    with torch.no_grad():
        fast = model(**inputs).logits
        for att in _attention_modules(model):
            att.frozen_shared = False
        for impl in ("sdpa", "eager"):
            model.set_attention_implementation(impl)
            slow = model(**inputs).logits
            assert (fast - slow).abs().max() < TOL, impl


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_fused_qkv_matches_separate_projections(shared_model, impl):
    reference, model = shared_model
    inputs = make_inputs(HEAD, reference.config)
    model.set_attention_implementation(impl)
    with torch.no_grad():
        plain = model(**inputs).logits
        for att in _attention_modules(model):
            att.fused_qkv = True
        fused = model(**inputs).logits
        assert (plain - fused).abs().max() < TOL
        assert (reference(**inputs).logits - fused).abs().max() < TOL
        # the fused copy follows weight changes
        for model_, ref_ in ((model, reference),):
            model_.luke.encoder.layer[1].attention.self.key.weight.mul_(1.5)
            ref_.luke.encoder.layer[1].attention.self.key.weight.mul_(1.5)
        assert (reference(**inputs).logits - model(**inputs).logits).abs().max() < TOL
    # fused weights never replace the trainable ones: gradients still reach `query`
    model.train()
    model(**inputs).logits.sum().backward()
    assert model.luke.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_fused_qkv_not_saved(shared_model, tmp_path):
    reference, model = shared_model
    for att in _attention_modules(model):
        att.fused_qkv = True
    with torch.no_grad():
        model(**make_inputs(HEAD, reference.config))
    assert not any("qkv" in name for name in model.state_dict())
    model.save_pretrained(tmp_path / "saved")
    ours.LukeForEntitySpanClassification.from_pretrained(tmp_path / "saved")


def test_joint_encoder_keeps_hidden_states_and_attentions(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeModel")
    model = ours.LukeModel.from_pretrained(folder)
    inputs = make_inputs("LukeModel", reference.config)
    with torch.no_grad():
        expected = reference(**inputs, output_hidden_states=True)
        got = model(**inputs, output_hidden_states=True)
    assert len(expected.entity_hidden_states) == len(got.entity_hidden_states)
    for a, b in zip(expected.entity_hidden_states, got.entity_hidden_states):
        assert (a - b).abs().max() < TOL


def test_precision_modes_agree_with_float32(shared_model):
    reference, model = shared_model
    inputs = make_inputs(HEAD, reference.config)
    with torch.inference_mode():
        base = model(**inputs).logits
        scale = base.abs().max().item()
        int8 = inference_view(model, "int8")(**inputs).logits
        assert (int8 - base).abs().max().item() < 0.1 * scale
        with precision_context("bfloat16", "cpu"):
            bf16 = model(**inputs).logits.float()
        assert (bf16 - base).abs().max().item() < 0.1 * scale
    assert set(PRECISIONS) == {"float32", "bfloat16", "float16", "int8"}
    assert isinstance(precision_context("float32", "cpu"), type(precision_context("int8", "cpu")))
    with pytest.raises(ValueError, match="precision='double'"):
        precision_context("double", "cpu")


def test_int8_view_shares_float_modules_and_keeps_weights(shared_model):
    reference, model = shared_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    view = quantize_linears(model)
    assert view.luke.embeddings is model.luke.embeddings  # shared, not copied
    assert view.luke.encoder.layer[0].output.LayerNorm is model.luke.encoder.layer[0].output.LayerNorm
    assert type(model.luke.encoder.layer[0].attention.self.query) is torch.nn.Linear
    assert type(view.luke.encoder.layer[0].attention.self.query) is not torch.nn.Linear  # quantized
    assert view.classifier is model.classifier  # the output layer stays float32, shared
    assert all(att.frozen_shared for att in _attention_modules(view))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_int8_off_the_cpu_falls_back_to_float32():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert effective_precision("int8", "cuda") == "float32"
        assert effective_precision("float16", "cuda") == "float16"
        assert effective_precision("int8", "cpu") == "int8"


def test_pipe_precision_setting_and_cost_buckets(tmp_path):
    import spacy

    from spacy_luke.pipeline.base import PRECISIONS as PIPE_PRECISIONS
    from spacy_luke.pipeline.base import bucket_by_cost

    assert PIPE_PRECISIONS == PRECISIONS
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="precision='half'"):
        nlp.add_pipe("luke_ner", config={"precision": "half"})
    costs = [(20, 100), (10, 3), (60, 1800), (22, 110), (12, 4), (30, 300)]
    batches = bucket_by_cost(costs, max_cost=16384, max_padding=0.1)
    assert sorted(i for b in batches for i in b) == list(range(len(costs)))
    for batch in batches:
        real = sum(sum(costs[i]) for i in batch)
        padded = len(batch) * (max(costs[i][0] for i in batch) + max(costs[i][1] for i in batch))
        assert len(batch) == 1 or padded <= 1.1 * real
    assert [2] in batches


def test_ner_pipe_int8_and_inference_mode(ner_checkpoint):
    import spacy

    from pipeline_fixtures import make_sentences

    texts = [t for t in make_sentences(40, seed=3) if 4 <= len(t.split()) <= 14][:12]
    results = {}
    for precision in ("float32", "int8"):
        nlp = spacy.blank("en")
        nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 8, "precision": precision})
        ner = nlp.get_pipe("luke_ner")
        assert ner.cfg["precision"] == precision
        results[precision] = [sorted((e.start, e.end, e.label_) for e in doc.ents) for doc in nlp.pipe(texts)]
        # the float weights stay float (int8 lives in an inference view)
        assert type(ner.luke_model.luke.encoder.layer[0].attention.self.query) is torch.nn.Linear
    found = sum(len(set(a) & set(b)) for a, b in zip(results["float32"], results["int8"]))
    total = sum(len(a) for a in results["float32"])
    assert total > 0 and found / total > 0.7


def _real_positions_equal(padded, unpadded, mask, tol):
    keep = mask.bool()
    assert (padded[keep] - unpadded[keep]).abs().max() < tol
    assert unpadded[~keep].abs().sum() == 0  # padded slots are zeros in unpadded execution


@pytest.mark.parametrize("variant", ["shared", "entity_aware"])
def test_unpadded_execution_matches_padded(hf_checkpoint, variant):
    """Running the layers on the real tokens only gives the padded path's states and logits."""
    folder, reference = hf_checkpoint(HEAD)
    if variant == "shared":
        _share_queries(reference)
        reference.save_pretrained(folder)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder).eval()
    inputs = make_inputs(HEAD, reference.config, batch=7, length=13, entities=6, seed=3)
    inputs["attention_mask"][5, 4:] = 0  # rows of very different lengths: several attention groups
    inputs["entity_attention_mask"][5, 2:] = 0
    inputs["entity_position_ids"][5] = -1  # its two entities inside its 4 words
    inputs["entity_position_ids"][5, 0, :2] = torch.tensor([1, 2])
    inputs["entity_position_ids"][5, 1, :1] = torch.tensor([2])
    inputs["entity_start_positions"][5, :2] = torch.tensor([1, 2])
    inputs["entity_end_positions"][5, :2] = torch.tensor([2, 2])
    inputs["entity_attention_mask"][6, :] = 0  # a row with no entities
    encoder_inputs = {k: v for k, v in inputs.items() if k not in ("entity_start_positions", "entity_end_positions")}
    with torch.no_grad():
        expected_states = model.luke(**encoder_inputs)
        expected = model(**inputs).logits
        model.luke.encoder.unpad = True
        states = model.luke(**encoder_inputs)
        got = model(**inputs).logits
        with_states = model.luke(**encoder_inputs, output_hidden_states=True)
    _real_positions_equal(expected_states.last_hidden_state, states.last_hidden_state, inputs["attention_mask"], 1e-5)
    _real_positions_equal(expected_states.entity_last_hidden_state, states.entity_last_hidden_state, inputs["entity_attention_mask"], 1e-5)
    keep = inputs["entity_attention_mask"].bool()
    assert (expected[keep] - got[keep]).abs().max() < 1e-5
    # hidden states requested: the padded path runs (every slot as before)
    assert (with_states.last_hidden_state - expected_states.last_hidden_state).abs().max() < 1e-5


def test_unpadded_layout_groups_and_gradients(hf_checkpoint):
    from spacy_luke.model.unpadded import UnpaddedLayout

    mask = torch.zeros(6, 10, dtype=torch.long)
    for row, (words, entities) in enumerate([(4, 3), (4, 2), (2, 0), (1, 1), (4, 3), (0, 0)]):
        mask[row, :words] = 1
        mask[row, 5 : 5 + entities] = 1
    layout = UnpaddedLayout.build(mask, 5, torch.float32, max_padding=0.1)
    assert layout.n_tokens == int(mask.sum())
    grouped = sorted(int(t) for t in layout.real_tokens)
    assert grouped == list(range(layout.n_tokens))  # every real token attended exactly once
    for group in layout.groups:
        real = group.mask.view(group.n_rows, group.length) == 0
        assert int(real.sum()) == len(group.real_slots)
        assert group.n_rows * group.length <= 1.1 * len(group.real_slots) + 1e-9 or group.n_rows == 1
    # Training through the unpadded path: the same gradients as the padded path (no dropout).
    folder, reference = hf_checkpoint(HEAD, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    grads = []
    for unpad in (False, True):
        model = ours.LukeForEntitySpanClassification.from_pretrained(folder).train()
        model.luke.encoder.unpad = unpad
        inputs = make_inputs(HEAD, reference.config, batch=5, length=12, entities=5, seed=1)
        logits = model(**inputs).logits
        (logits * inputs["entity_attention_mask"][..., None]).square().sum().backward()
        grads.append(model.luke.encoder.layer[0].attention.self.e2w_query.weight.grad.clone())
    assert grads[0].abs().max() > 0
    assert (grads[0] - grads[1]).abs().max() < 1e-4 * grads[0].abs().max()
