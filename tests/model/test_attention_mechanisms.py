"""The attention's mechanisms one by one: masks, Q/K/V projections, scaled dot-product attention."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spacy_luke.model as ours
from support.checkpoints import make_inputs
from spacy_luke.model.masking import AttentionMask, additive_from_real, mask_for
from spacy_luke.model.qkv import FusableQkv, QkvProjection, SameTensor, weights_key
from spacy_luke.model.sdpa import ScaledDotProductAttention
from spacy_luke.model.unpadded import Workspace
from spacy_luke.model.views.int8 import quantize_linears
from spacy_luke.model.views.linear_views import StackedQkv

HEAD = "LukeForEntitySpanClassification"


def _layers(hidden=16, seed=0):
    torch.manual_seed(seed)
    return tuple(torch.nn.Linear(hidden, hidden) for _ in range(3))


def test_masks():
    token_mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mask = AttentionMask.from_token_mask(token_mask, torch.float32)
    assert mask.additive.shape == (2, 1, 1, 3)
    low = torch.finfo(torch.float32).min
    assert mask.additive.view(2, 3).tolist() == [[0.0, 0.0, low], [0.0, low, low]]
    group = additive_from_real(np.array([[True, False]]), torch.bfloat16, torch.device("cpu"))
    assert group.dtype == torch.bfloat16 and group.view(2).tolist() == [0.0, torch.finfo(torch.bfloat16).min]
    query = torch.zeros(1, dtype=torch.bfloat16)
    assert mask_for(group, query) is group
    assert mask_for(mask.additive, query).dtype == torch.bfloat16


@pytest.mark.parametrize("with_mask", [True, False])
def test_sdpa_and_eager_agree(with_mask):
    gen = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 4, generator=gen) for _ in range(3))
    mask = AttentionMask.from_token_mask(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]), torch.float32).additive
    attend = ScaledDotProductAttention(0.1).eval()
    mask = mask if with_mask else None
    fused, none = attend(query, key, value, mask, scale=0.5)
    eager, probs = attend(query, key, value, mask, scale=0.5, eager=True)
    assert none is None and probs.shape == (2, 3, 5, 5)
    assert torch.allclose(fused, eager, atol=1e-6)
    if with_mask:
        assert probs[0, :, :, 3:].abs().max() == 0
    assert not any(True for _ in attend.parameters())


def test_qkv_projections_agree():
    layers = _layers()
    flat = torch.randn(9, 16, generator=torch.Generator().manual_seed(1))
    separate = torch.cat(QkvProjection().project(layers, flat), dim=-1)
    fusable = FusableQkv()
    with torch.no_grad():
        fused = torch.cat(fusable.project(layers, flat, fused=True), dim=-1)
        assert torch.allclose(separate, fused, atol=1e-6)
        assert torch.equal(torch.cat(fusable.project(layers, flat), dim=-1), separate)  # not fused unless asked
        out = torch.empty(9, 48)
        QkvProjection().project_into(layers, flat, out, Workspace(flat))
        assert torch.allclose(out, separate, atol=1e-6)
        # The fused copy follows the weights.
        key_before = weights_key(layers)
        layers[1].weight.mul_(2.0)
        assert weights_key(layers) != key_before
        again = torch.cat(fusable.project(layers, flat, fused=True), dim=-1)
        assert torch.allclose(again, torch.cat(QkvProjection().project(layers, flat), dim=-1), atol=1e-6)
    assert weights_key((torch.nn.Identity(),)) == ()
    assert FusableQkv.can_fuse and not QkvProjection.can_fuse and not StackedQkv.can_fuse


def test_weights_key_names_the_tensors_without_ids():
    """A key holds weak references, not ``id()`` (reused once a tensor is freed): it equals another
    only for the same live tensors, in the same version and storage."""
    layers = _layers()
    key = weights_key(layers)
    assert key == weights_key(layers) and all(isinstance(part[0], SameTensor) for part in key)
    same_values = torch.nn.Linear(16, 16)
    with torch.no_grad():
        same_values.weight.copy_(layers[0].weight)
        same_values.bias.copy_(layers[0].bias)
    assert weights_key((same_values, *layers[1:])) != key  # equal values, other tensors
    tensor = torch.ones(2)
    assert SameTensor(tensor) == SameTensor(tensor) and SameTensor(tensor) != SameTensor(torch.ones(2))
    old = SameTensor(tensor)
    del tensor
    assert old != old and old.ref() is None  # a freed tensor's key matches nothing, not even a new tensor at its address
    with pytest.raises(TypeError):
        hash(old)


def test_quantized_projections_into_the_workspace():
    """Quantized layers (no weight tensor) project chunk by chunk; a stacked one equals the three."""
    layers = _layers(seed=3)
    view = quantize_linears(torch.nn.ModuleList(layers))
    quantized = tuple(view)
    flat = torch.randn(12, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        separate = torch.cat(QkvProjection().project(quantized, flat), dim=-1)
        out = torch.empty(12, 48)
        QkvProjection().project_into(quantized, flat, out, Workspace(flat, chunk=12))  # one chunk: same scale
        assert torch.equal(out, separate)
        chunked = torch.empty(12, 48)
        QkvProjection().project_into(quantized, flat, chunked, Workspace(flat, chunk=5))
        assert torch.allclose(chunked, separate, atol=0.05 * separate.abs().max().item())
    # The int8 view of a shared-query attention builds the stacked product from the float layers.
    from spacy_luke.model.attention import EntityAwareSelfAttention

    config = ours.LukeConfig.from_dict(
        dict(
            vocab_size=10,
            entity_vocab_size=4,
            hidden_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            intermediate_size=8,
            max_position_embeddings=20,
            use_entity_aware_attention=False,
        )
    )
    attention = EntityAwareSelfAttention(config)
    copy = quantize_linears(torch.nn.Sequential(attention))[0]
    assert isinstance(copy.qkv, StackedQkv) and copy.frozen_shared is True
    assert copy.attend is attention.attend  # shared, not copied
    assert isinstance(attention.qkv, FusableQkv) and attention.frozen_shared is None  # the float one is untouched
    with torch.no_grad():
        out = torch.empty(12, 48)
        copy.qkv.project_into((copy.query, copy.key, copy.value), flat, out, Workspace(flat))
        expected = torch.cat([copy.query(flat), copy.key(flat), copy.value(flat)], dim=-1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_int8_entity_aware_view_words_only_unpadded(hf_checkpoint):
    """Entity-aware queries, no entities: the int8 view's separate quantized projections into the workspace."""
    folder, reference = hf_checkpoint(HEAD)
    model = ours.LukeModel.from_pretrained(folder)
    inputs = make_inputs("LukeModel", reference.config, batch=4, length=10, seed=5)
    words = {k: v for k, v in inputs.items() if not k.startswith("entity")}
    view = quantize_linears(model).eval()
    assert not view.encoder.layer[0].attention.self.frozen_shared
    with torch.inference_mode():
        padded = view(**words).last_hidden_state
        view.encoder.unpad = True
        unpadded = view(**words).last_hidden_state
        float_states = model(**words).last_hidden_state
    keep = words["attention_mask"].bool()
    scale = float_states[keep].abs().max()
    # int8: the padded batch's activation scales also see the padding, so only close.
    assert (padded[keep] - unpadded[keep]).abs().max() < 0.1 * scale
    assert (unpadded[keep] - float_states[keep]).abs().max() < 0.1 * scale


def test_gradient_checkpointing_gives_the_same_gradients(hf_checkpoint):
    folder, reference = hf_checkpoint(HEAD, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs = make_inputs(HEAD, reference.config, batch=4, length=10, entities=4, seed=6)
    grads = []
    for checkpointing in (False, True):
        model = ours.LukeForEntitySpanClassification.from_pretrained(folder).train()
        model.luke.encoder.unpad = True  # checkpointed training runs padded whatever the options say
        if checkpointing:
            model.gradient_checkpointing_enable()
        logits = model(**inputs).logits
        (logits * inputs["entity_attention_mask"][..., None]).square().sum().backward()
        grads.append(model.luke.encoder.layer[0].attention.self.e2w_query.weight.grad.clone())
    assert grads[0].abs().max() > 0
    assert (grads[0] - grads[1]).abs().max() < 1e-4 * grads[0].abs().max()
