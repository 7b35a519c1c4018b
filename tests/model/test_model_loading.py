"""Checkpoint loading: local folders, the hub cache, and clear errors for broken checkpoints."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import spacy_luke.model as ours
from spacy_luke.model.checkpoint import resolve_checkpoint
from support.checkpoints import make_inputs


def test_missing_config(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        ours.LukeModel.from_pretrained(folder)


def test_missing_weights(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ours.CheckpointError, match="No weights in .*model.safetensors"):
        ours.LukeModel.from_pretrained(folder)


def test_missing_shard(hf_checkpoint, tmp_path):
    _, reference = hf_checkpoint("LukeModel")
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    next((tmp_path / "sharded").glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(ours.CheckpointError, match="missing"):
        ours.LukeModel.from_pretrained(tmp_path / "sharded")


def test_not_a_folder(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    with pytest.raises(NotADirectoryError, match="checkpoint \\*folder\\*"):
        ours.LukeModel.from_pretrained(folder / "config.json")
    with pytest.raises(FileNotFoundError, match="not found"):
        ours.LukeModel.from_pretrained(folder / "nope")


def test_wrong_shape_names_file_and_key(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 40
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ours.CheckpointError, match=r"model.safetensors: tensor 'encoder.layer.0.intermediate.dense.(weight|bias)' has shape"):
        ours.LukeModel.from_pretrained(folder)


def test_head_mismatch_is_a_clear_error(hf_checkpoint):
    """A relation (pair) checkpoint is not a span-classification model."""
    folder, _ = hf_checkpoint("LukeForEntityPairClassification")
    with pytest.raises(ours.CheckpointError, match="classifier.weight"):
        ours.LukeForEntitySpanClassification.from_pretrained(folder)


def test_entity_vocab_larger_than_config(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    vocab = json.loads((folder / "entity_vocab.json").read_text())
    vocab["Extra"] = 500
    (folder / "entity_vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ours.CheckpointError, match="entity_vocab_size=12"):
        ours.LukeModel.from_pretrained(folder)


def test_word_vocab_larger_than_config(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    (folder / "vocab.json").write_text(json.dumps({f"w{i}": i for i in range(500)}))
    with pytest.raises(ours.CheckpointError, match="vocab_size=120"):
        ours.LukeModel.from_pretrained(folder)


def test_config_missing_shapes(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel")
    config = json.loads((folder / "config.json").read_text())
    del config["hidden_size"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_size"):
        ours.LukeModel.from_pretrained(folder)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_corrupted_weights(hf_checkpoint, fmt):
    folder, _ = hf_checkpoint("LukeModel", fmt=fmt)
    path = folder / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ours.CheckpointError, match="corrupted or truncated"):
        ours.LukeModel.from_pretrained(folder)


def test_missing_encoder_tensor(hf_checkpoint):
    from safetensors.torch import load_file, save_file

    folder, _ = hf_checkpoint("LukeModel")
    state = load_file(folder / "model.safetensors")
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ours.CheckpointError, match="encoder.layer.1.output.dense.weight"):
        ours.LukeModel.from_pretrained(folder)


def test_unknown_tensor(hf_checkpoint):
    from safetensors.torch import load_file, save_file

    folder, _ = hf_checkpoint("LukeModel")
    state = load_file(folder / "model.safetensors")
    state["bert.something.weight"] = torch.zeros(2)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ours.CheckpointError, match="unexpected tensor.*bert.something.weight"):
        ours.LukeModel.from_pretrained(folder)


def test_bad_inputs_are_value_errors(hf_checkpoint):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    with pytest.raises(ValueError, match="outside the entity vocabulary"):
        model(**dict(inputs, entity_ids=inputs["entity_ids"] + 100))
    with pytest.raises(ValueError, match="outside the word vocabulary"):
        model(**dict(inputs, input_ids=inputs["input_ids"] + 1000))
    with pytest.raises(ValueError, match="entity_start_positions"):
        model(**{k: v for k, v in inputs.items() if k != "entity_start_positions"})
    with pytest.raises(ValueError, match="word pieces in"):
        model(**dict(inputs, entity_end_positions=inputs["entity_end_positions"] + 50))
    with pytest.raises(ValueError, match="entity_position_ids"):
        model(**dict(inputs, entity_position_ids=inputs["entity_position_ids"][:, :, 0]))
    long_ids = torch.full((1, 100), 5)
    with pytest.raises(ValueError, match="more than the model's 68 positions"):
        model.luke(input_ids=long_ids)
    with pytest.raises(TypeError, match="Unexpected keyword"):
        model(**inputs, entity_spans=[(0, 1)])
    with pytest.raises(ValueError, match="needs at least 2 entities"):
        pair = ours.LukeForEntityPairClassification(model.config)
        pair.init_weights()
        pair(**{k: v[:, :1] if k.startswith("entity") and k != "entity_start_positions" else v for k, v in inputs.items() if "start" not in k and "end" not in k})


def _fake_hub_cache(cache, repo_id, source_folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub's cache uses: models--org--name/{refs/main, snapshots/<commit>/...}."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(source_folder, root / "snapshots" / commit)


def test_hub_id_offline_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="luke-base.*offline.*not in the local Hugging Face cache"):
        ours.LukeModel.from_pretrained("studio-ousia/luke-base", cache_dir=tmp_path / "empty-cache")


def test_hub_id_offline_from_cache(hf_checkpoint, tmp_path, monkeypatch):
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    _fake_hub_cache(tmp_path / "cache", "studio-ousia/luke-tiny-test", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_checkpoint("studio-ousia/luke-tiny-test", cache_dir=tmp_path / "cache")
    assert (resolved / "config.json").is_file()
    model = ours.LukeForEntitySpanClassification.from_pretrained("studio-ousia/luke-tiny-test", cache_dir=tmp_path / "cache")
    inputs = make_inputs("LukeForEntitySpanClassification", reference.config)
    with torch.no_grad():
        assert (reference(**inputs).logits - model(**inputs).logits).abs().max() < 1e-4
