"""The thinc head layer owns the torch module and its tokenizer: serialization and precision live there.

A registered architecture is built empty (a pipe's whole model: inputs, batch runner, one head
layer); weights and tokenizer arrive through the head layer (``load_luke_folder`` or
``Model.from_bytes``), and its bytes (and the whole model's) carry both, so a fresh model needs
neither the original folder nor the pipe.
"""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import srsly
import torch
from spacy.util import registry

from spacy_luke.layers import LukeShim, get_pieces, get_torch_module, has_torch_module, head_layer, is_loaded, load_luke_folder, set_precision
from support.ner import MAX_LEN, PARITY_TEXTS, doc_entities, make_nlp
from support.ner import span_batch

ARCHITECTURES = {
    "spacy-luke.EntitySpanClassifier.v1": "LukeForEntitySpanClassification",
    "spacy-luke.EntityClassifier.v1": "LukeForEntityClassification",
    "spacy-luke.EntityPairClassifier.v1": "LukeForEntityPairClassification",
    "spacy-luke.EntityEncoder.v1": "LukeModel",
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_is_one_empty_layer_with_a_luke_shim(name):
    model = registry.architectures.get(name)()
    shims = [shim for node in model.walk() for shim in node.shims]
    assert len(shims) == 1 and isinstance(shims[0], LukeShim) and head_layer(model).shims == shims
    assert shims[0].head == ARCHITECTURES[name]
    assert not has_torch_module(model) and not is_loaded(model)
    with pytest.raises(ValueError, match="no weights yet"):
        head_layer(model).predict({"input_ids": np.zeros((1, 3), dtype="int64")})
    # An empty layer round-trips empty (an uninitialized pipe can be serialized with exclude).
    fresh = registry.architectures.get(name)().from_bytes(model.to_bytes())
    assert not is_loaded(fresh)


def test_layer_bytes_carry_weights_and_tokenizer(ner_checkpoint):
    make = registry.architectures.get("spacy-luke.EntitySpanClassifier.v1")
    model = make()
    load_luke_folder(model, ner_checkpoint)
    batch = span_batch(ner_checkpoint)
    expected = head_layer(model).predict(batch)

    fresh = make().from_bytes(model.to_bytes())
    assert is_loaded(fresh)
    pieces, original = get_pieces(fresh), get_pieces(model)
    assert pieces.files == original.files
    assert pieces.tokenizer.entity_vocab.to_dict() == original.tokenizer.entity_vocab.to_dict()
    assert head_layer(fresh).shims[0].pieces.doc_encoder is not None
    np.testing.assert_array_equal(head_layer(fresh).predict(batch), expected)
    # The head layer's own bytes carry the same (a pipe's to_bytes holds those).
    alone = make()
    head_layer(alone).from_bytes(head_layer(model).to_bytes())
    np.testing.assert_array_equal(head_layer(alone).predict(batch), expected)
    # Separate weights, not shared ones.
    assert get_torch_module(fresh) is not get_torch_module(model)
    with torch.no_grad():
        get_torch_module(fresh).classifier.weight.add_(1.0)
    np.testing.assert_array_equal(head_layer(model).predict(batch), expected)


def test_precision_is_the_layers_and_survives_serialization(ner_checkpoint):
    make = registry.architectures.get("spacy-luke.EntitySpanClassifier.v1")
    model = make()
    load_luke_folder(model, ner_checkpoint)
    batch = span_batch(ner_checkpoint)
    float32 = head_layer(model).predict(batch)
    set_precision(model, "int8")
    int8 = head_layer(model).predict(batch)
    assert head_layer(model).shims[0].precision == "int8"
    assert not np.array_equal(int8, float32)  # the int8 view ran
    np.testing.assert_allclose(int8, float32, rtol=0.02, atol=0.05)
    fresh = make()
    set_precision(fresh, "int8")  # as a pipe does at construction, before any weights
    fresh.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(head_layer(fresh).predict(batch), int8)
    set_precision(model, "float32")
    np.testing.assert_array_equal(head_layer(model).predict(batch), float32)


def test_pipe_bytes_are_cfg_and_the_layers_bytes(ner_checkpoint):
    """The pipe adds only its cfg: the weights travel in its model's bytes."""
    nlp = make_nlp(ner_checkpoint)
    ner = nlp.get_pipe("luke_ner")
    texts = PARITY_TEXTS[:6]
    expected = [doc_entities(d) for d in nlp.pipe(texts)]
    data = ner.to_bytes()
    assert set(srsly.msgpack_loads(data)) == {"cfg", "model"}

    fresh = spacy.blank("en")
    pipe = fresh.add_pipe("luke_ner", config={"max_mention_length": MAX_LEN})
    assert not pipe.is_loaded
    pipe.model.from_bytes(ner.model.to_bytes())  # the layer alone: weights and tokenizer
    assert pipe.is_loaded and pipe.tokenizer.entity_vocab.to_dict() == ner.tokenizer.entity_vocab.to_dict()
    fresh2 = spacy.blank("en")
    fresh2.add_pipe("luke_ner", config={"max_mention_length": MAX_LEN}).from_bytes(data)
    assert [doc_entities(d) for d in fresh2.pipe(texts)] == expected
    # cfg-only bytes (model excluded) restore settings without weights
    cfg_only = spacy.blank("en").add_pipe("luke_ner", config={"max_mention_length": MAX_LEN})
    cfg_only.from_bytes(ner.to_bytes(exclude=["model"]), exclude=["model"])
    assert not cfg_only.is_loaded and cfg_only.cfg["labels"] == ner.cfg["labels"]


def test_keep_entities_leaves_one_entity_vocabulary(ner_checkpoint):
    """The model's ``entity_vocab`` is the tokenizer's, also after pruning (never a stale copy)."""
    model = registry.architectures.get("spacy-luke.EntitySpanClassifier.v1")()
    load_luke_folder(model, ner_checkpoint)
    shim = head_layer(model).shims[0]
    assert shim.head_model.entity_vocab is shim.pieces.tokenizer.entity_vocab
    titles = [title for title in shim.pieces.tokenizer.entity_vocab if not title.startswith("[")][:2]
    assert len(titles) == 2
    kept = shim.keep_entities(titles + ["not a title"])
    vocab = shim.pieces.tokenizer.entity_vocab
    assert shim.head_model.entity_vocab is vocab and sorted(vocab) == sorted(["[PAD]", "[UNK]", "[MASK]", "[MASK2]"] + titles)
    assert kept == vocab.size == shim.head_model.config.entity_vocab_size == 6
    assert shim.head_model.luke.entity_embeddings.entity_embeddings.weight.shape[0] == 6
