"""Loading failures are one clear error naming the file (or repo), what is wrong and the fix.

- NaN / Inf in a checkpoint's weights (a corrupted file, a diverged training run);
- a broken or mis-shaped entity vocabulary file;
- a hub repo id that cannot be fetched (offline and not cached, no network, no such repo);
- bad config.json values (sizes, heads, labels, a layer count the weights do not hold) and bad
  ``*.index.json`` shard names (outside the checkpoint folder), in Python and through the CLI.
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
from spacy_luke.sources.hub import HubUnavailableError
from spacy_luke.model.checkpoint import CheckpointError
from spacy_luke.model.config import ConfigError
from spacy_luke.tokenization import LukeTokenizer, load_entity_vocab
from spacy_luke.tokenization.hf_tokenizers.entity_vocab import EntityVocabError

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
    from support.tokenizers import build_luke_dir

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
    from spacy_luke.pipeline._shared.loaders import hf_luke_loader

    checkpoint = hf_luke_loader("studio-ousia/luke-base")()
    with pytest.raises(HubUnavailableError, match="'studio-ousia/luke-base' from the Hugging Face hub: the hub is offline"):
        checkpoint.resolve()


# --------------------------------------------------------------------------- config.json values


def _edit_config(folder: Path, **changes) -> Path:
    """Set (or, with None, delete) keys of the folder's config.json; returns its path."""
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf8"))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config), encoding="utf8")
    return path


BAD_CONFIGS = {
    "heads-zero": (dict(num_attention_heads=0), r"num_attention_heads is 0, but it must be a positive integer: fix num_attention_heads"),
    "heads-not-a-divisor": (dict(num_attention_heads=5), r"hidden_size \(32\) is not a multiple of num_attention_heads \(5\): fix num_attention_heads"),
    "negative-size": (dict(intermediate_size=-3), r"intermediate_size is -3, but it must be a positive integer: fix intermediate_size"),
    "float-size": (dict(hidden_size=32.0), r"hidden_size is 32\.0 \(a number\), but it must be a positive integer \(write 32\): fix hidden_size"),
    "bool-size": (dict(type_vocab_size=True), r"type_vocab_size is true \(a boolean\), but it must be a positive integer: fix type_vocab_size"),
    "string-size": (dict(vocab_size="120"), r'vocab_size is "120" \(a string\), but it must be a positive integer: fix vocab_size'),
    "zero-entity-emb": (dict(entity_emb_size=0), r"entity_emb_size is 0, but it must be a positive integer: fix entity_emb_size"),
    "zero-positions": (dict(max_position_embeddings=0), r"max_position_embeddings is 0, but it must be a positive integer"),
    "zero-layers": (dict(num_hidden_layers=0), r"num_hidden_layers is 0, but it must be a positive integer: fix num_hidden_layers"),
    "id2label-gap": (
        dict(id2label={"0": "L0", "1": "L1", "3": "L3", "4": "L4", "5": "L5"}),
        r"id2label has ids \[0, 1, 3, 4, 5\] \(missing \[2\]\), but label ids must be exactly 0\.\.4 .*: fix id2label",
    ),
    "id2label-not-ints": (dict(id2label={"0": "L0", "one": "L1"}), r"id2label has non-integer ids \['one'\], but label ids must be exactly 0\.\.1"),
    "id2label-list": (dict(id2label=["L0", "L1"]), r"id2label is a JSON list, but it must be an object: fix id2label"),
    "label2id-gap": (dict(id2label=None, label2id={"L0": 0, "L1": 2}), r"label2id has ids \[0, 2\] \(missing \[1\]\), .*: fix label2id"),
}


@pytest.mark.parametrize("changes,expected", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_bad_config_values_name_the_file_key_and_fix(hf_checkpoint, changes, expected):
    """Each bad value is refused when config.json is read, before any module is built."""
    folder, _ = hf_checkpoint("LukeForEntitySpanClassification")
    path = _edit_config(folder, **changes)
    for load, argument in ((ours.LukeConfig.from_json_file, path), (ours.LukeForEntitySpanClassification.from_pretrained, folder)):
        with pytest.raises(ConfigError, match=expected) as info:
            load(argument)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert "use the config.json that came with the checkpoint" in message
        assert isinstance(info.value, ValueError) and info.value.__cause__ is None


@pytest.mark.parametrize(
    "content,expected",
    [
        ("[1, 2]", r"expected a JSON object of model settings .*got a JSON list"),
        ('"luke"', r"got a JSON string"),
        ('{"hidden_size": 32, ', r"invalid JSON at line 1, column \d+ \(Expecting property name"),
    ],
    ids=["list", "string", "truncated"],
)
def test_config_that_is_not_a_json_object_names_the_file(hf_checkpoint, content, expected):
    folder, _ = hf_checkpoint("LukeModel")
    path = folder / "config.json"
    path.write_text(content, encoding="utf8")
    with pytest.raises(ConfigError, match=expected) as info:
        ours.LukeModel.from_pretrained(folder)
    assert str(info.value).startswith(f"{path}: ") and str(info.value).endswith("(download or save it again).")


def test_id2label_gap_fails_on_load_not_as_an_uninitialized_pipe(ner_checkpoint, tmp_path):  # noqa: F811
    folder = tmp_path / "gap-ner"
    shutil.copytree(ner_checkpoint, folder)
    path = _edit_config(folder, id2label={"0": "O", "1": "PER", "2": "ORG", "4": "LOC"}, label2id={"O": 0, "PER": 1, "ORG": 2, "LOC": 4})
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(folder)})
    with pytest.raises(ConfigError, match=rf"^{path}: id2label has ids \[0, 1, 2, 4\] \(missing \[3\]\)"):
        nlp("Beyoncé lives in Los Angeles.")


# --------------------------------------------------------------------------- layer count vs the weights


def test_huge_layer_count_fails_from_the_tensor_names_before_building(hf_checkpoint):
    """100,000 layers used to be built on the meta device (minutes, gigabytes) before failing."""
    import time

    folder, _ = hf_checkpoint("LukeForEntitySpanClassification")
    path = _edit_config(folder, num_hidden_layers=100_000)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        ours.LukeForEntitySpanClassification.from_pretrained(folder)
    assert time.perf_counter() - start < 1.0
    assert str(info.value).startswith(
        f"{path}: num_hidden_layers is 100000 but model.safetensors holds layers 0-1: set num_hidden_layers to 2"
    )


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_too_few_layers_in_config_is_named(hf_checkpoint, fmt):
    folder, _ = hf_checkpoint("LukeModel", fmt=fmt)
    path = _edit_config(folder, num_hidden_layers=1)
    weights = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    with pytest.raises(ConfigError, match=rf"^{path}: num_hidden_layers is 1 but {weights} holds layers 0-1: set num_hidden_layers to 2"):
        ours.LukeModel.from_pretrained(folder)


def test_layer_count_against_sharded_weights(hf_checkpoint, tmp_path):
    _, reference = hf_checkpoint("LukeModel")
    folder = tmp_path / "sharded"
    reference.save_pretrained(folder, max_shard_size="20KB")
    shards = len(list(folder.glob("model-*.safetensors")))
    path = _edit_config(folder, num_hidden_layers=3)
    with pytest.raises(ConfigError, match=rf"^{path}: num_hidden_layers is 3 but its {shards} weight shards hold"):
        ours.LukeModel.from_pretrained(folder)


def test_checkpoint_missing_a_middle_layer(hf_checkpoint):
    folder, _ = hf_checkpoint("LukeModel", num_hidden_layers=3)
    state = load_file(str(folder / "model.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("encoder.layer.1.")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"num_hidden_layers is 3 but model\.safetensors holds layers 0, 2: the weights are incomplete"):
        ours.LukeModel.from_pretrained(folder)


# --------------------------------------------------------------------------- sharded index files


def _sharded(hf_checkpoint, tmp_path) -> Path:
    _, reference = hf_checkpoint("LukeModel")
    folder = tmp_path / "ckpt" / "sharded"
    reference.save_pretrained(folder, max_shard_size="20KB")
    return folder


@pytest.mark.parametrize(
    "name,problem",
    [
        ("../outside.safetensors", "leads outside the checkpoint folder"),
        ("../../ckpt/outside.safetensors", "leads outside the checkpoint folder"),
        ("sub/../../outside.safetensors", "leads outside the checkpoint folder"),
        ("ABSOLUTE", "is an absolute path"),
        ("C:\\outside.safetensors", "is an absolute path"),
        ("", "is not a file name"),
        (7, "is not a file name"),
    ],
)
def test_index_shard_names_must_stay_inside_the_folder(hf_checkpoint, tmp_path, name, problem):
    """A weight_map naming a file outside the checkpoint folder is refused, even when that file exists."""
    folder = _sharded(hf_checkpoint, tmp_path)
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text(encoding="utf8"))
    key, first = next(iter(data["weight_map"].items()))
    outside = folder.parent / "outside.safetensors"
    shutil.copy(folder / first, outside)  # a real weights file, so nothing else fails first
    if name == "ABSOLUTE":
        name = str(outside)
    data["weight_map"] = {k: (name if v == first else v) for k, v in data["weight_map"].items()}
    index.write_text(json.dumps(data), encoding="utf8")
    with pytest.raises(CheckpointError) as info:
        ours.LukeModel.from_pretrained(folder)
    message = str(info.value)
    assert message.startswith(f"{index}: weight_map[") and f"= {name!r} {problem}" in message
    assert f"shard names must be files inside {folder}" in message


@pytest.mark.parametrize(
    "content,expected",
    [
        ('["model-00001-of-00002.safetensors"]', r'expected a JSON object with a "weight_map" .*got a JSON list'),
        ('{"metadata": {}}', r'has no "weight_map"'),
        ('{"weight_map": ["a", "b"]}', r'has a "weight_map" that is a JSON list, not an object'),
        ('{"weight_map": {}}', r'has an empty "weight_map"'),
        ('{"weight_map": {"a": ', r"invalid JSON at line 1, column \d+"),
    ],
    ids=["list", "no-weight-map", "weight-map-list", "empty", "truncated"],
)
def test_bad_index_file_is_named(hf_checkpoint, tmp_path, content, expected):
    folder = _sharded(hf_checkpoint, tmp_path)
    index = folder / "model.safetensors.index.json"
    index.write_text(content, encoding="utf8")
    with pytest.raises(CheckpointError, match=expected) as info:
        ours.LukeModel.from_pretrained(folder)
    assert str(info.value).startswith(f"{index}: ")
    assert str(info.value).endswith("download or save the checkpoint again (its index and shards together).")


# --------------------------------------------------------------------------- the same through the CLI


def _bad_vocab(folder: Path) -> Path:
    path = folder / "vocab.json"
    path.write_text(path.read_text(encoding="utf8")[:100], encoding="utf8")
    return path


def _bad_merges(folder: Path) -> Path:
    path = folder / "merges.txt"
    path.write_text("#version: 0.2\nĠ t\nbroken\n", encoding="utf8")
    return path


def _write_config_list(folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text("[1, 2]", encoding="utf8")
    return path


CLI_CASES = {
    "heads-zero": (lambda f: _edit_config(f, num_attention_heads=0), "num_attention_heads is 0, but it must be a positive integer"),
    "id2label-gap": (
        lambda f: _edit_config(f, id2label={"0": "O", "1": "PER", "2": "ORG", "4": "LOC"}, label2id={"O": 0, "PER": 1, "ORG": 2, "LOC": 4}),
        "id2label has ids [0, 1, 2, 4] (missing [3])",
    ),
    "negative-size": (lambda f: _edit_config(f, intermediate_size=-3), "intermediate_size is -3"),
    "float-size": (lambda f: _edit_config(f, hidden_size=32.0), "hidden_size is 32.0 (a number)"),
    "huge-layer-count": (lambda f: _edit_config(f, num_hidden_layers=100_000), "num_hidden_layers is 100000 but model.safetensors holds layers 0-1"),
    "config-a-list": (_write_config_list, "got a JSON list"),
    "truncated-vocab": (_bad_vocab, "invalid JSON at line 1, column 101"),
    "bad-merges": (_bad_merges, "line 3 is 'broken', not a merge of two pieces"),
}


@pytest.mark.parametrize("edit,expected", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_cli_reports_bad_checkpoint_files_in_one_line(ner_checkpoint, tmp_path, capsys, edit, expected):  # noqa: F811
    from spacy_luke import cli

    folder = tmp_path / "bad-ner"
    shutil.copytree(ner_checkpoint, folder)
    path = edit(folder)
    text = tmp_path / "in.txt"
    text.write_text("Beyoncé lives in Los Angeles.\n", encoding="utf8")
    assert cli.main(["ner", "--pretrained", str(folder), str(text)]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), err
    assert expected in lines[0] and "unexpected" not in lines[0] and "download or save" in lines[0]
