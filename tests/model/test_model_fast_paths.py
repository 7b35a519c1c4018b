"""Each fast path and precision mode against the plain float32 path (and transformers where exact)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import spacy_luke.model as ours
from support.checkpoints import make_inputs
from spacy_luke.model.attention_options import attention_options
from spacy_luke.model.embeddings import mean_position_embeddings
from spacy_luke.model.views.int8 import quantize_linears
from spacy_luke.model.views.precision import PRECISIONS, effective_precision, inference_view, precision_context
from support.checkpoints import share_queries

TOL = 1e-4
HEAD = "LukeForEntitySpanClassification"


@pytest.fixture
def shared_model(hf_checkpoint):
    """(transformers model, our model) with w2e = e2w = e2e = query, as the public checkpoints."""
    folder, reference = hf_checkpoint(HEAD)
    share_queries(reference)
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
        with attention_options(shared_queries=False):
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
        model.set_attention_options(fused_qkv=True)
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
    model.set_attention_options(fused_qkv=True)
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
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            with precision_context(name, "cpu"):  # no autocast: the view is cast once
                assert not torch.is_autocast_enabled("cpu")
                view = inference_view(model, name)
                half = view(**inputs).logits
            assert view.luke.dtype == dtype and half.dtype == torch.float32  # a 16-bit encoder, float32 logits
            assert (half.float() - base).abs().max().item() < 0.02 * scale
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

    from spacy_luke.pipeline._shared.base import PRECISIONS as PIPE_PRECISIONS
    from spacy_luke.layers.bucketing import bucket_by_cost

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

    from support.tokenizers import make_sentences

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
        share_queries(reference)
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


@pytest.mark.parametrize("variant", ["shared", "entity_aware"])
def test_unpadded_workspace_matches_plain_unpadded(hf_checkpoint, monkeypatch, variant):
    """CPU inference with reused buffers and chunked per-token work = the plain unpadded path."""
    from spacy_luke.model import unpadded

    folder, reference = hf_checkpoint(HEAD)
    if variant == "shared":
        share_queries(reference)
        reference.save_pretrained(folder)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder).eval()
    model.luke.encoder.unpad = True
    inputs = make_inputs(HEAD, reference.config, batch=6, length=11, entities=5, seed=4)
    inputs["attention_mask"][2, 3:] = 0
    inputs["entity_attention_mask"][2, 1:] = 0
    keep = inputs["entity_attention_mask"].bool()
    monkeypatch.setattr(unpadded, "TOKEN_CHUNK", 7)  # several chunks, the last one short
    calls = []
    original = unpadded.Workspace.output_for

    def spy(self, layer_input):
        out = original(self, layer_input)
        calls.append((out.data_ptr(), layer_input.data_ptr()))
        return out

    monkeypatch.setattr(unpadded.Workspace, "output_for", spy)
    with torch.no_grad():
        got = model(**inputs).logits
        int8_got = inference_view(model, "int8")(**inputs).logits
    assert len(calls) == 2 * len(model.luke.encoder.layer)
    assert all(out != inp for out, inp in calls)  # never written into its own input
    n_layers = len(model.luke.encoder.layer)
    for forward in (calls[:n_layers], calls[n_layers:]):
        assert len({out for out, _ in forward}) == 2  # two buffers per forward, reused by every layer
    assert unpadded.Workspace(torch.zeros(20, 4)).chunks()[-1] == slice(14, 20)
    # The same model without the workspace: gradients on (so no workspace), or the check off.
    monkeypatch.setattr(unpadded.Workspace, "wanted", staticmethod(lambda hidden, training: False))
    with torch.no_grad():
        expected = model(**inputs).logits
        int8_expected = inference_view(model, "int8")(**inputs).logits
    assert (expected[keep] - got[keep]).abs().max() < 1e-5
    # int8: the chunks get their own activation scales, so only close.
    scale = expected[keep].abs().max()
    assert (int8_expected[keep] - int8_got[keep]).abs().max() < 0.1 * scale
    assert (int8_got[keep] - expected[keep]).abs().max() < 0.1 * scale


def test_workspace_only_for_cpu_inference_without_autocast():
    from spacy_luke.model.unpadded import Workspace

    hidden = torch.zeros(3, 4)
    with torch.no_grad():
        assert Workspace.wanted(hidden, training=False)
        assert Workspace.wanted(hidden.bfloat16(), training=False)  # a 16-bit view cast once
        assert Workspace.wanted(hidden.half(), training=False)
        assert not Workspace.wanted(hidden, training=True)
        assert not Workspace.wanted(hidden.bfloat16(), training=True)
        assert not Workspace.wanted(hidden.double(), training=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not Workspace.wanted(hidden, training=False)
            assert not Workspace.wanted(hidden.bfloat16(), training=False)
    assert not Workspace.wanted(hidden, training=False)  # autograd on
    with pytest.raises(ValueError, match="at least 1 token"):
        Workspace(hidden, chunk=0)


def _int8_linear(weight, bias=None, ratio=None, per_token=True):
    """An nn.Linear and its int8 layer (per token, the default, or per call); ``ratio``: that
    scheme's outlier ratio (0: no outliers in float32)."""
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(torch.zeros(weight.shape[0]) if bias is None else bias)
    view = quantize_linears(torch.nn.Sequential(linear))[0]
    view.per_token = per_token
    if ratio is not None:
        setattr(view, "row_outlier_ratio" if per_token else "outlier_ratio", ratio)
    return linear, view


def test_int8_linear_weights_in_7_bits_and_no_int16_saturation():
    """8-bit activations with 7-bit weights: pairs of products can't saturate int16 on AVX2."""
    from spacy_luke.model.views.int8 import WEIGHT_QUANT_RANGE

    gen = torch.Generator().manual_seed(0)
    weight = torch.rand(64, 768, generator=gen) * 0.02 + 0.01  # all large and positive
    x = torch.rand(32, 768, generator=gen) * 0.1 + 0.9  # every activation near the top of the range
    x[0, 0] = -1.0
    for per_token in (True, False):
        linear, view = _int8_linear(weight, per_token=per_token)
        assert type(view).__name__ == "Int8Linear"
        ints = view.weight_ints
        assert ints.dtype == torch.int8  # plain integers, no deprecated quantized dtype
        assert ints.min() >= WEIGHT_QUANT_RANGE[0] and ints.max() <= WEIGHT_QUANT_RANGE[1]
        assert ints.max() == WEIGHT_QUANT_RANGE[1]  # the range is used
        with torch.no_grad():
            expected, got = linear(x), view(x)
        # A saturating kernel (8-bit activations x 8-bit weights) is off by ~50% here.
        assert (got - expected).abs().max() < 0.01 * expected.abs().mean()


@pytest.mark.parametrize("per_token,ratio", [(True, 8.0), (False, 5.0)])
def test_int8_linear_outlier_channels_in_float(per_token, ratio):
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(96, 256, generator=gen) * 0.05
    x = torch.randn(40, 256, generator=gen)
    x[:, 17] *= 60.0  # one outlier channel, as LayerNorm outlier dimensions give
    x[:, 200] *= 40.0
    errors = {}
    for r in (0.0, ratio):
        linear, view = _int8_linear(weight, ratio=r, per_token=per_token)
        with torch.no_grad():
            expected = linear(x)
            got = view(x)
            batched = view(x.view(4, 10, 256))
        errors[r] = (got - expected).abs().max().item()
        assert torch.allclose(batched.reshape(40, 96), got, atol=1e-6)
    assert errors[ratio] < 0.2 * errors[0.0]
    # No outliers: the plain int8 product (one grid per row, or one over the whole call).
    linear, view = _int8_linear(weight, per_token=per_token)
    y = torch.randn(40, 256, generator=gen)
    with torch.no_grad():
        assert torch.allclose(view(y), _int8_reference(view, y), atol=1e-4)
        assert view(torch.zeros(0, 256)).shape == (0, 96)
        sparse = torch.zeros(40, 256)
        sparse[:, :100] = torch.randn(40, 100, generator=gen)  # median peak 0: no "outliers" per call
        assert torch.allclose(view(sparse), _int8_reference(view, sparse), atol=1e-4)
        assert torch.equal(view(torch.zeros(3, 256)), view.bias.expand(3, 96))  # all-zero input: the bias


def _int8_reference(view, x):
    """The int8 scheme written out in float64: x on asymmetric 8-bit grids (scale and zero point
    from the range, widened to 0: of each row when ``view.per_token``, else of the whole call),
    weights per output channel."""
    if view.per_token:
        return torch.cat([_one_grid(view, row[None]) if row.any() else view.bias[None] for row in x])
    return _one_grid(view, x)


def _one_grid(view, x):
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (high - low) / 255.0
    zero_point = round(-low / scale)
    offset = torch.tensor(zero_point + 0.5)
    x_ints = torch.add(offset, x, alpha=1.0 / scale).clamp_(0, 255).floor_().double() - zero_point  # as the layer rounds
    weights = view.weight_ints.double() * view.weight_scales.double()[:, None]
    return (x_ints * scale @ weights.t() + view.bias.double()).float()


@pytest.mark.parametrize("per_token", [True, False])
def test_int8_one_sided_inputs_keep_all_8_bits(per_token):
    """GELU's output (about -0.17 .. max): the asymmetric grid spends its 256 levels on that range."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(64, 256, generator=gen) * 0.05
    linear, view = _int8_linear(weight, ratio=0.0, per_token=per_token)
    x = torch.nn.functional.gelu(torch.randn(50, 256, generator=gen) * 2)
    from spacy_luke.model.views.int8 import activation_qparams

    scale, zero_point = activation_qparams(float(x.min()), float(x.max()))
    assert scale == pytest.approx((float(x.max()) - float(x.min())) / 255) and 0 < zero_point < 20
    with torch.no_grad():
        assert torch.allclose(view(x), _int8_reference(view, x), atol=1e-4)  # on that grid
        symmetric = float(x.abs().max()) / 127  # the grid of a symmetric scheme: coarser here
        assert scale < 0.6 * symmetric
    assert activation_qparams(0.0, 0.0) == (1.0, 128) and activation_qparams(1.0, 2.0) == (2.0 / 255, 0)


def test_int8_view_uses_no_deprecated_quantization(shared_model):
    """The int8 view runs on oneDNN's kernels with plain int8 tensors: no torch.ao, no qint8, no warnings."""
    import warnings

    _, model = shared_model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = quantize_linears(model.eval())
        ids = torch.tensor([[5, 6, 7, 8]])
        with torch.no_grad():
            view.luke(input_ids=ids, attention_mask=torch.ones_like(ids))
    tensors = [t for m in view.modules() for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))]
    assert not any(t.is_quantized for t in tensors)
    assert any(type(m).__name__ == "Int8Linear" for m in view.modules())


def test_int8_fused_qkv_equals_separate_projections(shared_model):
    _, model = shared_model
    view = quantize_linears(model.eval())
    att = view.luke.encoder.layer[1].attention.self
    assert att.qkv_quantized is not None
    float_query = model.luke.encoder.layer[1].attention.self.query.weight
    assert att.qkv_quantized.float_weights[0].data_ptr() == float_query.data_ptr()  # the float model's, not a copy
    x = torch.randn(30, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fused = att.qkv_quantized(x)
        separate = torch.cat([att.query(x), att.key(x), att.value(x)], dim=-1)
    assert torch.allclose(fused, separate, atol=1e-5)


def test_float32_onednn_view_shares_the_weights_and_matches(shared_model):
    """float32 on the CPU runs oneDNN's products on the float model's own tensors: same numbers (1e-5)."""
    from spacy_luke.model.views.linear_views import OneDnnLinear, onednn_linear_available, onednn_view

    _, model = shared_model
    model.eval()
    if not onednn_linear_available():
        pytest.skip("this PyTorch build has no oneDNN float32 linear")
    view = onednn_view(model)
    layers = [m for m in view.modules() if isinstance(m, OneDnnLinear)]
    assert layers and not any(type(m) is torch.nn.Linear and not name.endswith("classifier") for name, m in view.named_modules())
    query = model.luke.encoder.layer[0].attention.self.query.weight
    assert view.luke.encoder.layer[0].attention.self.query.weight.data_ptr() == query.data_ptr()  # shared, not copied
    assert sum(p.numel() for p in view.parameters()) == sum(p.numel() for p in model.parameters())
    inputs = make_inputs(HEAD, model.config, seed=5)
    with torch.inference_mode():
        for unpad in (False, True):
            with attention_options(unpad=unpad):
                expected = model(**inputs).logits
                got = view(**inputs).logits
            assert torch.allclose(got, expected, atol=1e-5), (unpad, (got - expected).abs().max())
    # The view follows the weights: it multiplies the float model's tensors, not a snapshot.
    with torch.no_grad():
        model.luke.encoder.layer[0].output.dense.weight.mul_(1.5)
    with torch.inference_mode():
        assert torch.allclose(onednn_view(model)(**inputs).logits, model(**inputs).logits, atol=1e-5)
    layer = layers[0]
    x = torch.randn(5, layer.in_features)
    assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-5)  # autograd on: F.linear
    assert onednn_view(model.to(torch.float64)) is model  # not float32: the model itself
    model.float()


def test_int8_per_token_activations():
    """Per-token activation grids (the default): each row on its own asymmetric 8-bit grid; rows of
    very different sizes (word vs entity tokens) each keep their precision."""
    gen = torch.Generator().manual_seed(4)
    weight = torch.randn(48, 128, generator=gen) * 0.05
    linear, view = _int8_linear(weight, bias=torch.randn(48, generator=gen), ratio=0.0)
    x = torch.randn(30, 128, generator=gen) * torch.logspace(-2, 1, 30)[:, None]  # row sizes 0.01 .. 10
    x[3] = 0.0  # an all-zero row: exactly the bias
    assert view.per_token
    with torch.no_grad():
        got = view(x)
        expected = _int8_reference(view, x)
        assert torch.allclose(got, expected, atol=1e-4)  # each row as if alone: its own grid
        assert torch.equal(got[3], view.bias)
        view.per_token = False
        per_call = view(x)
        exact = linear(x)
    small = slice(0, 10)  # the small rows lose most of their precision on one per-call grid
    assert (got[small] - exact[small]).abs().max() < 0.1 * (per_call[small] - exact[small]).abs().max()