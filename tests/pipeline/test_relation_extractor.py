"""luke_relation_extractor: parity with transformers, decision rule, get_relations, training, round trips, edge cases."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import DocBin, Span
from spacy.training import Example

import spacy_luke
from support.entity_docs import TEXTS, make_docs

NEG = "no_relation"


def make_nlp(folder, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(folder), **config})
    return nlp


def reference(folder, docs):
    """transformers: every ordered pair of doc.ents, one entity_pair_classification input each."""
    tokenizer = transformers.LukeTokenizer.from_pretrained(folder, task="entity_pair_classification")
    model = transformers.LukeForEntityPairClassification.from_pretrained(folder).eval()
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    all_logits, all_relations = [], []
    for doc in docs:
        logits, relations = [], []
        for head in doc.ents:
            for tail in doc.ents:
                if head == tail:
                    continue
                spans = [(head.start_char, head.end_char), (tail.start_char, tail.end_char)]
                with torch.no_grad():
                    row = model(**tokenizer(doc.text, entity_spans=spans, return_tensors="pt")).logits[0].numpy()
                logits.append(row)
                probs = np.exp(row - row.max())
                probs /= probs.sum()
                best = int(row.argmax())
                if labels[best] != NEG:
                    relations.append(([head.start_char, head.end_char], [tail.start_char, tail.end_char], labels[best], float(probs[best])))
        all_logits.append(np.asarray(logits, dtype=np.float32))
        all_relations.append(sorted(relations))
    return all_logits, all_relations


def doc_relations(doc):
    # msgpack (DocBin, n_process) gives the offset lists back as tuples: compare as lists
    return [(list(r["head"]), list(r["tail"]), r["label"], r["score"]) for r in doc._.luke_relations]


def test_parity_with_transformers(relation_checkpoint):
    nlp = make_nlp(relation_checkpoint)
    rex = nlp.get_pipe("luke_relation_extractor")
    assert not rex.is_loaded
    docs = make_docs(nlp, TEXTS[:25])
    expected_logits, expected = reference(relation_checkpoint, docs)
    predictions = rex.predict(docs)
    worst = 0.0
    for (pairs, logits, scored), ref in zip(predictions, expected_logits):
        assert scored.all() and len(pairs) == len(ref)
        if len(ref):
            # our pairs are sorted by (head, tail) token offsets: the reference loops in the same order
            worst = max(worst, float(np.abs(logits - ref).max()))
    assert worst < 1e-4, worst
    rex.set_annotations(docs, predictions)
    n = 0
    for doc, ref in zip(docs, expected):
        got = doc_relations(doc)
        assert [g[:3] for g in got] == [r[:3] for r in ref]
        assert np.allclose([g[3] for g in got], [r[3] for r in ref], atol=1e-4)
        assert got == sorted(got)  # sorted by position
        n += len(got)
    assert n > 30
    assert len({r[2] for doc in docs for r in doc_relations(doc)}) >= 2  # directional labels are plain labels


def test_get_relations_and_threshold(relation_checkpoint):
    nlp = make_nlp(relation_checkpoint, threshold=0.9)
    docs = make_docs(nlp, TEXTS[:10])
    docs = [nlp.get_pipe("luke_relation_extractor")(d) for d in docs]
    assert all(r["score"] >= 0.9 for d in docs for r in d._.luke_relations)
    doc = next(d for d in docs if d._.luke_relations)
    resolved = spacy_luke.get_relations(doc)
    assert len(resolved) == len(doc._.luke_relations)
    for (head, tail, label, score), rec in zip(resolved, doc._.luke_relations):
        assert [head.start_char, head.end_char] == rec["head"] and head.label_ == "ENT"
        assert [tail.start_char, tail.end_char] == rec["tail"] and label == rec["label"] and score == rec["score"]


def test_pairs_in_same_sentence_or_within_distance(relation_checkpoint):
    from spacy_luke.pipeline.relation_extractor import entity_pairs

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp("Tokyo is big . Japan is an island . Steve Jobs founded Apple .")
    spans = np.array([(0, 1), (4, 5), (9, 11), (12, 13)])
    assert entity_pairs(doc, spans, None) == [((9, 11), (12, 13)), ((12, 13), (9, 11))]
    assert len(entity_pairs(doc, spans, 3)) == 4  # (0,1)-(4,5): 3 tokens apart; (9,11)-(12,13): 1
    assert len(entity_pairs(doc, spans, 100)) == 12
    assert entity_pairs(doc, np.array([(0, 2), (1, 3)]), 100) == []  # overlapping spans never pair
    # Both rules (the pipe's default: same sentence and at most max_pair_distance tokens apart).
    assert entity_pairs(doc, spans, 100, same_sentence=True) == entity_pairs(doc, spans, None)
    assert entity_pairs(doc, spans, 0, same_sentence=True) == []  # (9,11)-(12,13) are 1 token apart
    assert len(entity_pairs(doc, spans, None, same_sentence=False)) == 12


def test_default_max_pair_distance_bounds_an_unsplit_text(relation_checkpoint):
    """Without sentence boundaries the default distance keeps pairs linear in the text's length."""
    from spacy_luke.pipeline.relation_extractor import DEFAULT_MAX_PAIR_DISTANCE

    nlp = make_nlp(relation_checkpoint, max_pairs_per_sentence=None)
    rex = nlp.get_pipe("luke_relation_extractor")
    assert rex.cfg["max_pair_distance"] == DEFAULT_MAX_PAIR_DISTANCE == 50 and rex.cfg["same_sentence"] is True
    counts = []
    for n_words in (200, 400):
        doc = nlp.make_doc(" ".join(["w"] * n_words))
        spans = np.array([(i, i + 1) for i in range(0, n_words, 5)])
        pairs = rex._doc_pairs(doc, spans)
        assert all(abs(t[0] - h[1]) <= 50 or abs(h[0] - t[1]) <= 50 for h, t in pairs)
        counts.append(len(pairs))
    # Entities 5 tokens apart: each pairs with the 10 nearest on either side, so 2 x (10 n - 55)
    # ordered pairs for n entities: linear in the text (all pairs would be n (n - 1): 1,560 and 6,320).
    assert counts == [2 * (10 * 40 - 55), 2 * (10 * 80 - 55)]
    unlimited = make_nlp(relation_checkpoint, max_pair_distance=None, max_pairs_per_sentence=None)
    doc = nlp.make_doc(" ".join(["w"] * 200))
    spans = np.array([(i, i + 1) for i in range(0, 200, 5)])
    assert len(unlimited.get_pipe("luke_relation_extractor")._doc_pairs(doc, spans)) == 40 * 39


def test_no_entities_warns_once_and_empty_docs(relation_checkpoint):
    nlp = make_nlp(relation_checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(nlp.pipe(["", "Tokyo is a city .", "Japan ."]))
        list(nlp.pipe(["Another one ."]))
    assert len([w for w in caught if "no entities" in str(w.message)]) == 1
    assert [d._.luke_relations for d in docs] == [None, [], []] or all(not d._.luke_relations for d in docs)
    assert not nlp.get_pipe("luke_relation_extractor").is_loaded


def test_head_mismatch_is_a_clear_error(typer_checkpoint):
    nlp = make_nlp(typer_checkpoint)
    doc = make_docs(nlp, TEXTS[:1])[0]
    with pytest.raises(ValueError, match="LukeForEntityClassification checkpoint.*needs LukeForEntityPairClassification"):
        nlp.get_pipe("luke_relation_extractor")(doc)


@pytest.mark.heavy  # all 1,225 pairs of fifty entities: 60 s
def test_fifty_entities_bounded_memory(relation_checkpoint, monkeypatch):
    from spacy_luke.layers import batch_runner

    nlp = make_nlp(relation_checkpoint, max_pair_distance=None, max_batch_cost=2048, max_pairs_per_sentence=None)
    rex = nlp.get_pipe("luke_relation_extractor")
    words = (TEXTS[0] + " " + TEXTS[1] + " " + TEXTS[2] + " " + TEXTS[3]).split()
    doc = nlp.make_doc(" ".join((words * 3)[:100]))
    doc.ents = [Span(doc, i, i + 1, label="E") for i in range(0, 100, 2)]
    assert len(doc.ents) == 50
    seen = []
    original = batch_runner.padded_batches

    def spy(runner, plan):
        for batch, padded in original(runner, plan):
            seen.append(len(batch) * (padded["input_ids"].shape[1] + padded["entity_ids"].shape[1]))
            yield batch, padded

    monkeypatch.setattr(batch_runner, "padded_batches", spy)
    pairs, logits, scored = rex.predict([doc])[0]
    assert len(pairs) == 2450 and scored.all()
    assert max(seen) <= 2048 + 200 and len(seen) > 50  # many small batches, none over the cost
    rex.set_annotations([doc], [(pairs, logits, scored)])
    assert isinstance(doc._.luke_relations, list)


def test_round_trips(relation_checkpoint, tmp_path):
    nlp = make_nlp(relation_checkpoint)
    docs = [nlp.get_pipe("luke_relation_extractor")(d) for d in make_docs(nlp, TEXTS[:6])]
    expected = [doc_relations(d) for d in docs]
    assert any(expected)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [doc_relations(loaded.get_pipe("luke_relation_extractor")(d)) for d in make_docs(loaded, TEXTS[:6])] == expected
    restored = list(DocBin(docs=docs, store_user_data=True).from_bytes(DocBin(docs=docs, store_user_data=True).to_bytes()).get_docs(nlp.vocab))
    assert [doc_relations(d) for d in restored] == expected


def test_n_process_2(relation_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_capitalized_ents")
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint)})
    rounded = lambda d: [(h, t, label, round(score, 5)) for h, t, label, score in doc_relations(d)]  # noqa: E731
    expected = [rounded(d) for d in nlp.pipe(TEXTS[:8])]
    got = [rounded(d) for d in nlp.pipe(TEXTS[:8], n_process=2, batch_size=3)]
    assert any(expected) and got == expected


# ---------------------------------------------------------------------- training

TRAIN = [
    {"text": "Steve Jobs founded Apple in California .",
     "entities": [{"start": 0, "end": 10, "label": "PER"}, {"start": 19, "end": 24, "label": "ORG"}, {"start": 28, "end": 38, "label": "LOC"}],
     "relations": [{"head": 1, "tail": 0, "label": "org:founded_by"}, {"head": 0, "tail": 1, "label": "per:employee_of"}]},
    {"text": "Beyoncé was born in Houston .",
     "entities": [{"start": 0, "end": 7, "label": "PER"}, {"start": 20, "end": 27, "label": "LOC"}],
     "relations": [{"head": 0, "tail": 1, "label": "per:city_of_birth"}]},
    {"text": "Tokyo is the capital of Japan .",
     "entities": [{"start": 0, "end": 5, "label": "LOC"}, {"start": 24, "end": 29, "label": "LOC"}],
     "relations": [{"head": 0, "tail": 1, "label": "loc:capital_of"}]},
]


def write_jsonl(path):
    with path.open("w", encoding="utf8") as f:
        for record in TRAIN:
            f.write(json.dumps(record) + "\n")
    return path


@pytest.mark.heavy  # training to overfit: 7 s
def test_overfits_and_scores(mlm_checkpoint, tmp_path):
    from spacy_luke.pipeline._shared.corpus import make_jsonl_corpus

    nlp = spacy.blank("en")
    rex = nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(mlm_checkpoint)})
    reader = make_jsonl_corpus(str(write_jsonl(tmp_path / "train.jsonl")))
    examples = list(reader(nlp))
    optimizer = nlp.initialize(lambda: examples)
    assert rex.labels == (NEG, "loc:capital_of", "org:founded_by", "per:city_of_birth", "per:employee_of")
    optimizer.learn_rate = 3e-3
    losses = []
    for _ in range(40):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["luke_relation_extractor"])
    assert losses[-1] < losses[0] * 0.1, losses[::10]
    scores = nlp.evaluate(list(reader(nlp)))  # gold entities in the predicted docs (use_gold_ents)
    assert scores["rel_micro_f"] == 1.0, scores
    # predicted entities instead: none upstream -> no relations, recall 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = nlp.evaluate(list(make_jsonl_corpus(str(tmp_path / "train.jsonl"), use_gold_ents=False)(nlp)))
    assert scores["rel_micro_r"] == 0.0


def test_unknown_relation_label_is_a_clear_error(relation_checkpoint, tmp_path):
    from spacy_luke.pipeline._shared.corpus import make_jsonl_corpus

    nlp = make_nlp(relation_checkpoint)
    examples = list(make_jsonl_corpus(str(write_jsonl(tmp_path / "train.jsonl")))(nlp))
    with pytest.raises(ValueError, match="'org:founded_by'|'per:employee_of'|'per:city_of_birth'|'loc:capital_of'"):
        nlp.update(examples)


def test_reader_errors(tmp_path):
    from spacy_luke.pipeline._shared.corpus import make_jsonl_corpus

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "Steve Jobs founded Apple .", "entities": [{"start": 0, "end": 8}]}) + "\n")
    with pytest.raises(ValueError, match="token boundaries"):
        list(make_jsonl_corpus(str(path))(spacy.blank("en")))


TRAIN_CONFIG = """
[paths]
train = null
dev = null
checkpoint = null

[nlp]
lang = "en"
pipeline = ["luke_relation_extractor"]
batch_size = 4

[components]

[components.luke_relation_extractor]
factory = "luke_relation_extractor"

[corpora]

[corpora.train]
@readers = "spacy-luke.JsonlCorpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy-luke.JsonlCorpus.v1"
path = ${paths.dev}

[training]
max_steps = 30
eval_frequency = 15
patience = 0
dropout = 0.0

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.003

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 4

[initialize]

[initialize.components]

[initialize.components.luke_relation_extractor]

[initialize.components.luke_relation_extractor.loader]
@misc = "spacy-luke.HFLukeLoader.v1"
name_or_path = ${paths.checkpoint}
"""


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_from_config(mlm_checkpoint, tmp_path):
    write_jsonl(tmp_path / "train.jsonl")
    (tmp_path / "config.cfg").write_text(TRAIN_CONFIG)
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "fill-config", str(tmp_path / "config.cfg"), str(tmp_path / "full.cfg")],
        check=True, capture_output=True,
    )
    full = (tmp_path / "full.cfg").read_text()
    assert "spacy-luke.EntityPairClassifier.v1" in full and "spacy-luke.relation_scorer.v1" in full
    result = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(tmp_path / "full.cfg"), "--output", str(tmp_path / "out"),
            "--paths.train", str(tmp_path / "train.jsonl"), "--paths.dev", str(tmp_path / "train.jsonl"),
            "--paths.checkpoint", str(mlm_checkpoint),
        ],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = spacy.load(tmp_path / "out" / "model-last")
    assert NEG in trained.get_pipe("luke_relation_extractor").labels
