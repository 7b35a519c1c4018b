"""luke_ner: training (update, initialize, spacy train), serialization, multiprocessing."""
from __future__ import annotations

import shutil

import pytest
import spacy
from spacy.tokens import DocBin, Span

from support.ner import MAX_LEN, PARITY_TEXTS, TRAIN, TRAIN_CONFIG, doc_entities, make_examples, make_nlp, spacy_train


@pytest.mark.heavy  # training to overfit: 33 s
def test_overfits_a_few_examples_from_a_pretraining_checkpoint(mlm_checkpoint):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 4})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    assert ner.labels == ("LOC", "ORG", "PER")
    assert ner.luke_model.config.id2label == {0: "NIL", 1: "LOC", 2: "ORG", 3: "PER"}
    optimizer.learn_rate = 3e-3
    losses = []
    for _ in range(60):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["luke_ner"])
    assert losses[-1] < losses[0] * 0.05, losses[::10]
    for text, ents in TRAIN:
        doc = nlp(text)
        assert sorted((e.start, e.end, e.label_) for e in doc.ents) == sorted(ents)
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["ents_f"] == 1.0
    assert set(scores["ents_per_type"]) == {"LOC", "ORG", "PER"}


def test_frozen_encoder_trains_only_the_head(mlm_checkpoint):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 4, "freeze_encoder": True})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    model = ner.luke_model
    encoder_before = model.luke.encoder.layer[0].output.dense.weight.detach().clone()
    head_before = model.classifier.weight.detach().clone()
    nlp.update(examples, sgd=optimizer)
    assert (model.luke.encoder.layer[0].output.dense.weight == encoder_before).all()
    assert not (model.classifier.weight == head_before).all()


def test_initialize_from_loader_and_labels(mlm_checkpoint):
    config = {
        "nlp": {"lang": "en", "pipeline": ["luke_ner"]},
        "components": {"luke_ner": {"factory": "luke_ner", "max_mention_length": 4}},
        "initialize": {
            "components": {
                "luke_ner": {
                    "labels": ["PER", "ORG", "LOC", "MISC"],
                    "loader": {"@misc": "spacy-luke.HFLukeLoader.v1", "name_or_path": str(mlm_checkpoint)},
                }
            }
        },
    }
    nlp = spacy.util.load_model_from_config(spacy.util.Config(config), auto_fill=True)
    ner = nlp.get_pipe("luke_ner")
    assert not ner.is_loaded
    nlp.initialize(lambda: make_examples(nlp))
    assert ner.labels == ("PER", "ORG", "LOC", "MISC")
    assert len(ner.luke_model.config.id2label) == 5


def test_initialize_needs_weights():
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": None})
    with pytest.raises(ValueError, match="needs weights to initialize"):
        nlp.initialize(lambda: make_examples(nlp))


def test_unknown_gold_label_is_a_clear_error(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    examples = make_examples(nlp)
    reference = examples[0].reference
    reference.ents = [Span(reference, 0, 1, label="EVENT")]
    with pytest.raises(ValueError, match="'EVENT'"):
        nlp.update(examples)


def _copy_checkpoint(folder, tmp_path):
    copy = tmp_path / "checkpoint-copy"
    shutil.copytree(folder, copy)
    return copy


def test_to_disk_and_load_without_the_checkpoint(ner_checkpoint, tmp_path, monkeypatch):
    copy = _copy_checkpoint(ner_checkpoint, tmp_path)
    nlp = make_nlp(copy)
    texts = PARITY_TEXTS[:15]
    expected = [doc_entities(d) for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(copy)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [doc_entities(d) for d in loaded.pipe(texts)] == expected
    saved = tmp_path / "pipeline" / "luke_ner" / "luke"
    assert (saved / "model.safetensors").is_file() and (saved / "entity_vocab.json").is_file()
    # lite: the saved entity table holds only the 4 special entities
    assert loaded.get_pipe("luke_ner").luke_model.config.entity_vocab_size == 4


def test_to_bytes_round_trip(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    texts = PARITY_TEXTS[15:25]
    expected = [doc_entities(d) for d in nlp.pipe(texts)]
    data = nlp.to_bytes()
    fresh = spacy.blank("en")
    fresh.add_pipe("luke_ner", config={"max_mention_length": MAX_LEN})
    fresh.from_bytes(data)
    assert [doc_entities(d) for d in fresh.pipe(texts)] == expected


@pytest.mark.heavy  # training, then to_disk / spacy.load: 6 s
def test_trained_pipeline_round_trip(mlm_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 4})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    texts = [t for t, _ in TRAIN] + PARITY_TEXTS[:5]
    expected = [[(e.start, e.end, e.label_, round(e._.luke_score, 5)) for e in d.ents] for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "trained")
    loaded = spacy.load(tmp_path / "trained")
    assert loaded.get_pipe("luke_ner").labels == ("LOC", "ORG", "PER")
    got = [[(e.start, e.end, e.label_, round(e._.luke_score, 5)) for e in d.ents] for d in loaded.pipe(texts)]
    assert got == expected


def test_extension_values_survive_docbin(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    docs = list(nlp.pipe(PARITY_TEXTS[:10]))
    scores = [[e._.luke_score for e in d.ents] for d in docs]
    assert any(scores)
    data = DocBin(docs=docs, store_user_data=True).to_bytes()
    restored = list(DocBin().from_bytes(data).get_docs(nlp.vocab))
    assert [[e._.luke_score for e in d.ents] for d in restored] == scores


def test_n_process_2(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    texts = PARITY_TEXTS[:12]
    expected = [[(e.start_char, e.end_char, e.label_, round(e._.luke_score, 5)) for e in d.ents] for d in nlp.pipe(texts)]
    got = [
        [(e.start_char, e.end_char, e.label_, round(e._.luke_score, 5)) for e in d.ents]
        for d in nlp.pipe(texts, n_process=2, batch_size=4)
    ]
    assert any(expected) and got == expected


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_from_config(mlm_checkpoint, tmp_path):
    # `spacy init fill-config` completes it (every registered name resolves)
    full, trained = spacy_train(TRAIN_CONFIG, mlm_checkpoint, tmp_path)
    assert "spacy-luke.EntitySpanClassifier.v1" in full and "spacy-luke.ner_scorer.v1" in full
    assert trained.get_pipe("luke_ner").labels == ("LOC", "ORG", "PER")
    scores = trained.evaluate(make_examples(trained))
    assert scores["ents_f"] > 0.5, scores
