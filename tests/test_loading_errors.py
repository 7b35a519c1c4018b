"""Loading failures are one clear error naming the file (or repo), what is wrong and the fix.

- NaN / Inf in a checkpoint's weights (a corrupted file, a diverged training run);
- a broken or mis-shaped entity vocabulary file;
- a hub repo id that cannot be fetched (offline and not cached, no network, no such repo).
Everything here runs offline: HF_HUB_OFFLINE / HF_HOME point at empty temporary folders.
"""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import spacy
import torch
from safetensors.torch import load_file, save_file

import spacy_luke.model as ours
from pipeline_fixtures import ner_checkpoint, pipe_root  # noqa: F401
from spacy_luke.hub import HubUnavailableError
from spacy_luke.model.checkpoint import CheckpointError
from spacy_luke.tokenization import LukeTokenizer, load_entity_vocab
from spacy_luke.tokenization.entity_vocab import EntityVocabError

NER_HUB_ID = "studio-ousia/luke-large-finetuned-conll-2003"
ENCODER_KEY = "luke.encoder.layer.0.attention.self.query.weight"


def _corrupt(folder: Path, key: str, value: float, index=(0, 0)) -> None:
    """Write ``value`` into one element of tensor ``key`` of the folder's weights file, in place."""
    safetensors = folder / "model.safetensors"
    if safetensors.is_file():
        state = load_file(str(safetensors))
        state[key][index] = value
        save_file(state, str(safetensors), metadata={"format": "pt"})
    else:
        path = folder / "pytorch_model.bin"
        state = torch.load(path, weights_only=True)
        state[key][index] = value
        torch.save(state, path)


# --------------------------------------------------------------------------- NaN / Inf weights


@pytest.mark.parametrize("fmt,value,kind", [("safetensors", float("nan"), "1 NaN, 0 Inf"), ("bin", float("-inf"), "0 NaN, 1 Inf")])
def test_non_finite_weights_name_the_file_and_tensor(hf_checkpoint, fmt, value, kind):
    folder, _ = hf_checkpoint("LukeForEntitySpanClassification", fmt=fmt)
    _corrupt(folder, ENCODER_KEY, value, index=(3, 5))
    weights = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    with pytest.raises(CheckpointError) as info:
        ours.LukeForEntitySpanClassification.from_pretrained(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / weights}: tensor {ENCODER_KEY!r} has NaN/Inf values ({kind} of ")
    assert "the checkpoint is corrupted" in message
    assert isinstance(info.value, ValueError)


def test_non_finite_check_covers_half_precision_and_dtype_casts(hf_checkpoint):
    """A float16 file is checked as stored (before the cast to the requested dtype)."""
    folder, _ = hf_checkpoint("LukeModel")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(folder / "model.safetensors")).items()}
    state["embeddings.word_embeddings.weight"][7, 1] = float("inf")  # a bare LukeModel: no "luke." prefix
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"tensor 'embeddings\.word_embeddings\.weight' has NaN/Inf values \(0 NaN, 1 Inf of"):
        ours.LukeModel.from_pretrained(folder, dtype=torch.bfloat16)


def test_large_finite_values_are_not_mistaken_for_inf():
    """The fast screen (the tensor's sum) overflows here; the exact pass finds every value finite."""
    from spacy_luke.model.checkpoint import check_finite

    check_finite(torch.full((1000,), 3e38), "big", "f.safetensors")
    check_finite(torch.full((10, 10), 6e4, dtype=torch.float16), "big16", "f.safetensors")
    with pytest.raises(CheckpointError, match=r"^f\.safetensors: tensor 'big' has NaN/Inf values \(1 NaN, 0 Inf of 1000\)"):
        check_finite(torch.cat([torch.full((999,), 3e38), torch.tensor([float("nan")])]), "big", "f.safetensors")


def test_lite_reads_and_checks_only_the_kept_entity_rows(hf_checkpoint):
    """A NaN in a Wikipedia entity's row is not read with lite=True (only the special rows are)."""
    folder, _ = hf_checkpoint("LukeModel")
    japan = json.loads((folder / "entity_vocab.json").read_text(encoding="utf8"))["Japan"]
    _corrupt(folder, "entity_embeddings.entity_embeddings.weight", float("nan"), index=(japan, 0))
    model = ours.LukeModel.from_pretrained(folder, lite=True)
    assert torch.isfinite(model.entity_embeddings.entity_embeddings.weight).all()
    with pytest.raises(CheckpointError, match="entity_embeddings.weight' has NaN/Inf values"):
        ours.LukeModel.from_pretrained(folder)


def test_ner_pipe_refuses_a_nan_checkpoint_instead_of_finding_nothing(ner_checkpoint, tmp_path):  # noqa: F811
    folder = tmp_path / "nan-ner"
    shutil.copytree(ner_checkpoint, folder)
    _corrupt(folder, "classifier.weight", float("nan"))
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(folder)})
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'classifier\.weight' has NaN/Inf values"):
        nlp("Beyoncé lives in Los Angeles.")


# --------------------------------------------------------------------------- entity vocabulary


@pytest.mark.parametrize(
    "content,expected",
    [
        ('{"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "Jap', r"invalid JSON at line 1, column \d+ \(Unterminated string"),
        ("", r"invalid JSON at line 1, column 1 \(Expecting value\)"),
        ('["[PAD]", "[UNK]", "[MASK]"]', r"expected a JSON object mapping entity titles to ids .*got a JSON list"),
        ('{"[PAD]": 0, "Japan": "four"}', r"entry 'Japan' has id 'four'; ids must be non-negative integers"),
    ],
    ids=["truncated", "empty", "list", "bad-id"],
)
def test_broken_entity_vocab_names_the_file(hf_checkpoint, content, expected):
    folder, _ = hf_checkpoint("LukeModel")
    path = folder / "entity_vocab.json"
    path.write_text(content, encoding="utf8")
    for load in (load_entity_vocab, ours.LukeModel.from_pretrained):
        with pytest.raises(EntityVocabError, match=expected) as info:
            load(folder)
        assert str(info.value).startswith(f"{path}: ") and isinstance(info.value, ValueError)
        assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_entity_vocab_not_utf8(tmp_path):
    path = tmp_path / "entity_vocab.json"
    path.write_bytes(b'{"[PAD]": 0, "Z\xfcrich": 1}')
    with pytest.raises(EntityVocabError, match=r"entity_vocab\.json: not UTF-8 text"):
        load_entity_vocab(path)


def test_broken_entity_vocab_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "entity_vocab.jsonl"
    path.write_text('{"id": 0, "entities": [["[PAD]", ""]]}\n{"id": 1, "entities": [["Japan", "en"]\n', encoding="utf8")
    with pytest.raises(EntityVocabError, match=rf"^{path}:2: invalid JSON at line 2"):
        load_entity_vocab(path)
    path.write_text('{"id": 0, "entities": [["[PAD]", ""]]}\n{"id": 1, "titles": ["Japan"]}\n', encoding="utf8")
    with pytest.raises(EntityVocabError, match=rf"^{path}:2: expected one JSON object per line"):
        load_entity_vocab(path)


def test_broken_entity_vocab_through_the_tokenizer(tmp_path):
    from tokenizer_fixtures import build_luke_dir

    folder = tmp_path / "broken-tok"
    shutil.copytree(build_luke_dir(tmp_path / "tok"), folder)  # the fixture folder is shared: corrupt a copy
    (folder / "entity_vocab.json").write_text('{"[PAD]": 0,', encoding="utf8")
    with pytest.raises(EntityVocabError, match=r"entity_vocab\.json: invalid JSON at line 1"):
        LukeTokenizer.from_pretrained(folder)


# --------------------------------------------------------------------------- hub ids that cannot be had


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1, a fresh empty HF_HOME, and a guard that fails on any network connection."""
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    connections = []

    def no_network(self, address, *args):
        connections.append(address)
        raise OSError(f"test: network access to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    yield home
    assert connections == []


def _assert_how_to_get_a_model(message: str, repo_id: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert f"`hf download {repo_id}`" in message and f"`huggingface-cli download {repo_id}`" in message
    assert "pass a local folder" in message
    assert "python -m spacy_luke convert-encoder" in message and "project/" in message and "CoNLL-2003" in message


def test_default_ner_checkpoint_offline_says_what_was_tried_and_how_to_get_one(offline_hub):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": NER_HUB_ID})  # adding loads nothing
    with pytest.raises(HubUnavailableError) as info:
        nlp("Beyoncé lives in Los Angeles.")
    err = info.value
    message = str(err)
    assert message.startswith(f"Cannot get the checkpoint {NER_HUB_ID!r} from the Hugging Face hub: ")
    assert f"the hub is offline (HF_HUB_OFFLINE=1) and the repo is not in the local Hugging Face cache ({offline_hub / 'hub'})" in message
    _assert_how_to_get_a_model(message, NER_HUB_ID)
    assert isinstance(err, OSError) and err.repo_id == NER_HUB_ID
    assert err.__cause__ is None and err.__suppress_context__  # no huggingface_hub traceback chain
    assert type(err.hub_error).__name__ == "LocalEntryNotFoundError"


def test_tokenizer_hub_id_offline(offline_hub):
    with pytest.raises(HubUnavailableError, match=r"^Cannot get the tokenizer 'studio-ousia/luke-base' .*HF_HUB_OFFLINE=1") as info:
        LukeTokenizer.from_pretrained("studio-ousia/luke-base")
    _assert_how_to_get_a_model(str(info.value), "studio-ousia/luke-base")


def test_hf_home_set_at_call_time_is_the_cache(hf_checkpoint, offline_hub):
    """huggingface_hub reads HF_HOME at import; we read it per call, so a cache set later is used."""
    folder, _ = hf_checkpoint("LukeForEntitySpanClassification")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline_hub / "hub" / "models--tiny--luke-ner"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    model = ours.LukeForEntitySpanClassification.from_pretrained("tiny/luke-ner")
    assert model.checkpoint_folder == repo / "snapshots" / commit


def _hub_error(name: str) -> Exception:
    import huggingface_hub.errors as errors

    return getattr(errors, name)(f"{name} from huggingface_hub\nwith a second line\nand a third")


@pytest.mark.parametrize(
    "error,reason",
    [
        ("RepositoryNotFoundError", "no such repo on the hub (or it is private: log in with `hf auth login`); check the repo id"),
        ("GatedRepoError", "the repo is gated: accept its terms on huggingface.co and log in (`hf auth login`)"),
        ("RevisionNotFoundError", "the repo has no revision 'v9'"),
        ("LocalEntryNotFoundError", "the hub could not be reached (no network?) and the repo is not in the local Hugging Face cache"),
        ("EntryNotFoundError", "EntryNotFoundError: EntryNotFoundError from huggingface_hub (and the repo is not in"),
    ],
)
def test_online_failures_are_one_line_with_the_reason(tmp_path, monkeypatch, error, reason):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls = []

    def failing_snapshot_download(**kwargs):
        calls.append(kwargs)
        raise _hub_error(error)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing_snapshot_download)
    with pytest.raises(HubUnavailableError) as info:
        ours.LukeModel.from_pretrained("org/some-luke", revision="v9", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith(f"Cannot get the checkpoint 'org/some-luke' from the Hugging Face hub: {reason}")
    assert "second line" not in message
    _assert_how_to_get_a_model(message, "org/some-luke")
    assert calls and calls[0]["local_files_only"] is False and calls[0]["repo_id"] == "org/some-luke"


def test_hub_error_reaches_the_pipeline_loader_unwrapped(offline_hub):
    """spacy-luke.HFLukeLoader.v1 (training configs) goes through the same error."""
    from spacy_luke.pipeline.loaders import hf_luke_loader

    checkpoint = hf_luke_loader("studio-ousia/luke-base")()
    with pytest.raises(HubUnavailableError, match="'studio-ousia/luke-base' from the Hugging Face hub: the hub is offline"):
        checkpoint.resolve()
