"""Our LUKE classes give transformers' numbers on the same weights and inputs (float32, 1e-4)."""
from __future__ import annotations

import pytest
import torch

import spacy_luke.model as ours
from support.checkpoints import HEADS, OUTPUT_KEYS, LITE_ENTITY_VOCAB, FULL_ENTITY_VOCAB, make_inputs, make_labels

TOL = 1e-4


def max_differences(reference, output):
    """{key: max |reference - ours|} over the output tensors both have; fails on a key only one has."""
    diffs = {}
    for key in OUTPUT_KEYS:
        ref = getattr(reference, key, None)
        got = getattr(output, key, None)
        assert (ref is None) == (got is None), f"{key}: reference has {ref is not None}, ours {got is not None}"
        if ref is not None:
            assert ref.shape == got.shape, key
            diffs[key] = (ref - got).abs().max().item()
    assert diffs, "no outputs compared"
    return diffs


def assert_parity(reference_model, model, inputs, labels=None, impls=("eager", "sdpa")):
    labels = labels or {}
    with torch.no_grad():
        expected = reference_model(**inputs, **labels)
        for impl in impls:
            model.set_attention_implementation(impl)
            got = model(**inputs, **labels)
            diffs = max_differences(expected, got)
            assert max(diffs.values()) < TOL, (impl, diffs)
    return diffs


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("variant", ["entity_aware", "plain", "lite_vocab"])
@pytest.mark.parametrize("head", HEADS)
def test_head_parity(hf_checkpoint, head, variant, fmt):
    folder, reference = hf_checkpoint(head, variant, fmt)
    model = getattr(ours, head).from_pretrained(folder)
    assert not model.training
    assert model.loading_info["newly_initialized"] == []
    inputs = make_inputs(head, reference.config)
    assert_parity(reference, model, inputs, make_labels(head, reference.config, inputs))


@pytest.mark.parametrize(
    "head", ["LukeForEntityClassification", "LukeForEntityPairClassification", "LukeForEntitySpanClassification", "LukeForSequenceClassification"]
)
def test_multi_label_loss_parity(hf_checkpoint, head):
    folder, reference = hf_checkpoint(head)
    model = getattr(ours, head).from_pretrained(folder)
    inputs = make_inputs(head, reference.config)
    assert_parity(reference, model, inputs, make_labels(head, reference.config, inputs, multi_label=True), impls=("sdpa",))


def test_hidden_states_and_attentions(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeModel")
    model = ours.LukeModel.from_pretrained(folder)
    inputs = make_inputs("LukeModel", reference.config)
    with torch.no_grad():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True)
        got = model(**inputs, output_hidden_states=True, output_attentions=True)
    for key in ("hidden_states", "entity_hidden_states", "attentions"):
        assert len(getattr(expected, key)) == len(getattr(got, key))
        for a, b in zip(getattr(expected, key), getattr(got, key)):
            assert (a - b).abs().max().item() < TOL, key


def test_words_only_input(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeForSequenceClassification")
    model = ours.LukeForSequenceClassification.from_pretrained(folder)
    inputs = make_inputs("LukeForSequenceClassification", reference.config)
    words_only = {k: v for k, v in inputs.items() if not k.startswith("entity")}
    with torch.no_grad():
        assert (reference(**words_only).logits - model(**words_only).logits).abs().max() < TOL
        assert model.luke(**words_only).entity_last_hidden_state is None


def test_shared_queries_take_the_plain_path_and_match(hf_checkpoint):
    """Pretrained checkpoints have w2e = e2w = e2e = query: plain attention is then exact."""
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    with torch.no_grad():
        for layer in reference.luke.encoder.layer:
            att = layer.attention.self
            for proj in (att.w2e_query, att.e2w_query, att.e2e_query):
                proj.weight.copy_(att.query.weight)
                proj.bias.copy_(att.query.bias)
    reference.save_pretrained(folder)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    assert all(layer.attention.self.queries_shared for layer in model.luke.encoder.layer)
    assert_parity(reference, model, make_inputs("LukeForEntitySpanClassification", reference.config))
    model.train()  # training may make the queries diverge: the shortcut is switched off
    assert not any(layer.attention.self.queries_shared for layer in model.luke.encoder.layer)


def test_sharded_checkpoint(hf_checkpoint, tmp_path):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    sharded = tmp_path / "sharded"
    reference.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    model = ours.LukeForEntitySpanClassification.from_pretrained(sharded)
    assert_parity(reference, model, make_inputs("LukeForEntitySpanClassification", reference.config), impls=("sdpa",))


def test_lite_loading_keeps_only_special_entities(hf_checkpoint):
    """lite=True prunes the entity table to [PAD]/[UNK]/[MASK]/[MASK2]; [MASK] inputs give the same numbers."""
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder, lite=True)
    table = model.luke.entity_embeddings.entity_embeddings.weight
    assert table.shape[0] == 4 and model.config.entity_vocab_size == 4
    assert dict(model.entity_vocab) == {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    ref_inputs = dict(inputs, entity_ids=torch.full_like(inputs["entity_ids"], FULL_ENTITY_VOCAB["[MASK]"]))
    lite_inputs = dict(inputs, entity_ids=torch.full_like(inputs["entity_ids"], model.entity_vocab["[MASK]"]))
    with torch.no_grad():
        expected = reference(**ref_inputs).logits
        got = model(**lite_inputs).logits
    assert (expected - got).abs().max() < TOL


def test_lite_vocab_mask_at_zero(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification", "lite_vocab")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    assert model.entity_vocab["[MASK]"] == 0 == LITE_ENTITY_VOCAB["[MASK]"]
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    inputs["entity_ids"] = torch.zeros_like(inputs["entity_ids"])
    assert_parity(reference, model, inputs)


def test_head_from_pretraining_checkpoint_is_fresh_and_encoder_matches(hf_checkpoint):
    """Fine-tuning start: a task class loaded from an MLM checkpoint gets a new head, same encoder."""
    folder, reference = hf_checkpoint("LukeForMaskedLM")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    assert sorted(model.loading_info["newly_initialized"]) == ["classifier.bias", "classifier.weight"]
    assert any(k.startswith("lm_head.") for k in model.loading_info["skipped"])
    assert model.classifier.bias.abs().sum() == 0 and model.classifier.weight.std() > 0
    inputs = make_inputs("LukeModel", reference.config)
    with torch.no_grad():
        expected = reference.luke(**inputs)
        got = model.luke(**inputs)
    assert (expected.entity_last_hidden_state - got.entity_last_hidden_state).abs().max() < TOL
    with pytest.raises(ours.CheckpointError, match="classifier"):
        ours.LukeForEntitySpanClassification.from_pretrained(folder, strict=True)


def test_entity_aware_queries_copied_from_query_when_absent(hf_checkpoint):
    """A checkpoint without w2e/e2w/e2e queries loaded as entity-aware equals plain attention."""
    folder, reference = hf_checkpoint("LukeModel", "plain")
    config = ours.LukeConfig.from_json_file(folder / "config.json")
    config = ours.LukeConfig.from_dict({**config.to_dict(), "use_entity_aware_attention": True})
    model = ours.LukeModel.from_pretrained(folder, config=config)
    att = model.encoder.layer[0].attention.self
    assert torch.equal(att.e2e_query.weight, att.query.weight)
    inputs = make_inputs("LukeModel", reference.config)
    with torch.no_grad():
        assert (reference(**inputs).entity_last_hidden_state - model(**inputs).entity_last_hidden_state).abs().max() < TOL


def test_pair_classifier_bias_is_honoured(hf_checkpoint):
    from safetensors.torch import load_file, save_file

    folder, reference = hf_checkpoint("LukeForEntityPairClassification")
    state = load_file(folder / "model.safetensors")
    bias = torch.arange(5, dtype=torch.float32)
    state["classifier.bias"] = bias
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    model = ours.LukeForEntityPairClassification.from_pretrained(folder)
    assert model.config.classifier_bias is True
    inputs = make_inputs("LukeForEntityPairClassification", reference.config)
    with torch.no_grad():
        assert (reference(**inputs).logits + bias - model(**inputs).logits).abs().max() < TOL


def test_dtype_and_device_arguments(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder, dtype=torch.bfloat16, device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    with torch.no_grad():
        diff = (reference(**inputs).logits - model(**inputs).logits.float()).abs().max()
    assert diff < 0.1


def test_save_pretrained_round_trip_loads_in_transformers(hf_checkpoint, tmp_path):
    import transformers

    folder, reference = hf_checkpoint("LukeForMaskedLM")
    model = ours.LukeForMaskedLM.from_pretrained(folder)
    model.save_pretrained(tmp_path / "ours")
    again = ours.LukeForMaskedLM.from_pretrained(tmp_path / "ours")
    reloaded_hf = transformers.LukeForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    inputs = make_inputs("LukeForMaskedLM", reference.config)
    assert_parity(reference, again, inputs, impls=("sdpa",))
    assert_parity(reloaded_hf, again, inputs, impls=("sdpa",))


def test_training_mode_gradients_flow(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    model.train()
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    out = model(**inputs, **make_labels("LukeForEntitySpanClassification", reference.config, inputs))
    out.loss.backward()
    assert model.luke.encoder.layer[0].attention.self.w2e_query.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
