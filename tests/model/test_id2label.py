"""config.id2label of a checkpoint without labels (a converted encoder, a pretraining checkpoint):
a missing id is a KeyError that says why, never a bare ``KeyError: 1``; labelled configs as before."""
from __future__ import annotations

import copy
import json
import pickle

import pytest

from spacy_luke.model import LukeConfig

SIZES = dict(vocab_size=10, entity_vocab_size=5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, max_position_embeddings=20)


def test_no_labels_says_why():
    config = LukeConfig(**SIZES)
    assert config.id2label == {} and not config.id2label and config.num_labels == 2
    with pytest.raises(KeyError, match="this checkpoint has no labels.*train it with your labels.*with_labels"):
        config.id2label[1]
    named = config.with_labels(["O", "PER"])
    assert [named.id2label[i] for i in (0, 1)] == ["O", "PER"]
    with pytest.raises(KeyError, match="id2label has no label 2: the checkpoint's labels are ids 0..1"):
        named.id2label[2]


def test_config_round_trips(tmp_path):
    config = LukeConfig(**SIZES).with_labels(["NIL", "LOC"])
    config.to_json_file(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["id2label"] == {"0": "NIL", "1": "LOC"}
    again = LukeConfig.from_json_file(tmp_path / "config.json")
    assert again.id2label == {0: "NIL", 1: "LOC"} and again.label2id == {"NIL": 0, "LOC": 1}
    for copied in (pickle.loads(pickle.dumps(again)), copy.deepcopy(again)):
        assert copied.id2label == again.id2label
        with pytest.raises(KeyError, match="ids 0..1"):
            copied.id2label[5]
