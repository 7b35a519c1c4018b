"""luke_entity_typer: marker inputs, parity with transformers, decision rules, training, round trips, edge cases."""
from __future__ import annotations

import json
import shutil
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

from support.entity_docs import TEXTS, make_docs


def reference_logits(folder, docs):
    """transformers: one LukeTokenizer(task="entity_classification") input per span, LukeForEntityClassification."""
    tokenizer = transformers.LukeTokenizer.from_pretrained(folder, task="entity_classification")
    model = transformers.LukeForEntityClassification.from_pretrained(folder).eval()
    out = []
    for doc in docs:
        rows = []
        for ent in doc.ents:
            inputs = tokenizer(doc.text, entity_spans=[(ent.start_char, ent.end_char)], return_tensors="pt")
            with torch.no_grad():
                rows.append(model(**inputs).logits[0].numpy())
        out.append(np.asarray(rows, dtype=np.float32).reshape(len(doc.ents), -1))
    return out, model.config


def reference_types(logits, config, multi, threshold=0.5):
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    out = []
    for row in logits:
        if multi:
            probs = 1 / (1 + np.exp(-row.astype(np.float64)))
            out.append({labels[j]: probs[j] for j in range(len(row)) if probs[j] >= threshold})
        else:
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            out.append({labels[int(row.argmax())]: probs[row.argmax()]})
    return out


def make_nlp(folder, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(folder), **config})
    return nlp


def doc_types(doc):
    return [(e.start_char, e.end_char, {k: round(v, 5) for k, v in sorted((e._.luke_types or {}).items())}) for e in doc.ents]


# ---------------------------------------------------------------------- marker inputs


def test_marker_inputs_equal_tokenizer(typer_checkpoint):
    from spacy_luke.tokenization import DocEncoder, LukeTokenizer

    ours = LukeTokenizer.from_pretrained(typer_checkpoint)
    encoder = DocEncoder(ours)
    hf_single = transformers.LukeTokenizer.from_pretrained(typer_checkpoint, task="entity_classification")
    hf_pair = transformers.LukeTokenizer.from_pretrained(typer_checkpoint, task="entity_pair_classification")
    nlp = spacy.blank("en")
    checked = 0
    for k, doc in enumerate(make_docs(nlp, TEXTS[:25])):
        pieces = encoder.encode_tokens([t.text for t in doc], [t.whitespace_ for t in doc])
        ents = list(doc.ents)
        for ent in ents:
            expected = hf_single(doc.text, entity_spans=[(ent.start_char, ent.end_char)])
            got = encoder.marker_inputs_from_pieces(pieces, [(ent.start, ent.end)])
            for key in ("input_ids", "attention_mask", "entity_ids", "entity_attention_mask", "entity_position_ids"):
                np.testing.assert_array_equal(got[key], np.asarray(expected[key]), err_msg=f"{key} {doc.text!r}")
            checked += 1
        for head in ents:
            for tail in ents:
                if head is tail:
                    continue
                spans = [(head.start_char, head.end_char), (tail.start_char, tail.end_char)]
                expected = hf_pair(doc.text, entity_spans=spans)
                got = encoder.marker_inputs_from_pieces(pieces, [(head.start, head.end), (tail.start, tail.end)])
                for key in ("input_ids", "entity_ids", "entity_position_ids"):
                    np.testing.assert_array_equal(got[key], np.asarray(expected[key]), err_msg=f"{key} {doc.text!r} {spans}")
                checked += 1
    assert checked > 100
    # adjacent spans, both orders
    doc = nlp.make_doc("Steve Jobs founded Apple in California .")
    pieces = encoder.encode_tokens([t.text for t in doc], [t.whitespace_ for t in doc])
    for head, tail in (((0, 2), (2, 3)), ((2, 3), (0, 2))):
        char = [(doc[a:b].start_char, doc[a:b].end_char) for a, b in (head, tail)]
        expected = hf_pair(doc.text, entity_spans=char)
        got = encoder.marker_inputs_from_pieces(pieces, [head, tail])
        np.testing.assert_array_equal(got["input_ids"], expected["input_ids"])
        np.testing.assert_array_equal(got["entity_position_ids"], expected["entity_position_ids"])
    with pytest.raises(ValueError, match="overlap"):
        encoder.marker_inputs_from_pieces(pieces, [(0, 2), (1, 3)])


# ---------------------------------------------------------------------- parity


@pytest.mark.parametrize("multi", [False, True])
def test_parity_with_transformers(typer_checkpoint, typer_multi_checkpoint, multi):
    folder = typer_multi_checkpoint if multi else typer_checkpoint
    nlp = make_nlp(folder)
    typer = nlp.get_pipe("luke_entity_typer")
    assert not typer.is_loaded
    docs = make_docs(nlp)
    expected_logits, config = reference_logits(folder, docs)
    predictions = typer.predict(docs)
    assert typer.multi_label is multi  # from the checkpoint's problem_type
    worst = max(float(np.abs(p[1] - e).max()) for p, e in zip(predictions, expected_logits) if len(e))
    assert worst < 1e-4, worst
    typer.set_annotations(docs, predictions)
    n_typed = 0
    for doc, logits in zip(docs, expected_logits):
        expected = reference_types(logits, config, multi)
        for ent, types in zip(doc.ents, expected):
            assert set(ent._.luke_types) == set(types)
            for label, prob in types.items():
                assert abs(ent._.luke_types[label] - prob) < 1e-4
            n_typed += len(types)
    assert n_typed > 20


def test_threshold_and_override(typer_multi_checkpoint):
    nlp_low = make_nlp(typer_multi_checkpoint, threshold=0.2)
    nlp_high = make_nlp(typer_multi_checkpoint, threshold=0.9)
    low = [doc_types(nlp_low.get_pipe("luke_entity_typer")(d)) for d in make_docs(nlp_low, TEXTS[:10])]
    high = [doc_types(nlp_high.get_pipe("luke_entity_typer")(d)) for d in make_docs(nlp_high, TEXTS[:10])]
    n_low = sum(len(t) for doc in low for _, _, t in doc)
    n_high = sum(len(t) for doc in high for _, _, t in doc)
    assert n_low > n_high
    assert all(p >= 0.9 for doc in high for _, _, t in doc for p in t.values())
    # multi_label = false on a multi-label checkpoint: one argmax label per span
    nlp_single = make_nlp(typer_multi_checkpoint, multi_label=False)
    single = [doc_types(nlp_single.get_pipe("luke_entity_typer")(d)) for d in make_docs(nlp_single, TEXTS[:10])]
    assert all(len(t) == 1 for doc in single for _, _, t in doc)


def test_candidates_span_group(typer_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "luke_entity_typer",
        config={"pretrained": str(typer_checkpoint), "candidates": {"@misc": "spacy-luke.span_group_candidates.v1", "spans_key": "sc"}},
    )
    docs = make_docs(nlp, TEXTS[:5])
    for doc in docs:
        doc.spans["sc"] = [Span(doc, e.start, e.end, label="X") for e in doc.ents] + [Span(doc, 0, 2, label="Y")]
        doc.ents = []
        nlp.get_pipe("luke_entity_typer")(doc)
        assert all(span._.luke_types for span in doc.spans["sc"])


def test_empty_docs_and_no_ents_warn_once(typer_checkpoint):
    nlp = make_nlp(typer_checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(nlp.pipe(["", "Tokyo is a city .", "Japan and Tokyo ."]))
        list(nlp.pipe(["more text here ."]))
    assert len([w for w in caught if "found no spans" in str(w.message)]) == 1
    assert all(len(d.ents) == 0 for d in docs)
    assert not nlp.get_pipe("luke_entity_typer").is_loaded  # nothing to do: nothing loaded


def test_head_mismatch_is_a_clear_error(ner_checkpoint):
    nlp = make_nlp(ner_checkpoint)
    doc = make_docs(nlp, TEXTS[:1])[0]
    with pytest.raises(ValueError, match="LukeForEntitySpanClassification checkpoint.*needs LukeForEntityClassification"):
        nlp.get_pipe("luke_entity_typer")(doc)


def test_long_doc_uses_windows_and_skips_too_long_spans(typer_checkpoint):
    nlp = make_nlp(typer_checkpoint)
    text = " ".join(TEXTS[:30])
    doc = nlp.make_doc(text)
    assert len(doc) > 150
    doc.ents = [Span(doc, 2, 3, label="A"), Span(doc, len(doc) - 3, len(doc) - 2, label="B"), Span(doc, 40, 42, label="C")]
    nlp.get_pipe("luke_entity_typer")(doc)
    assert all(e._.luke_types for e in doc.ents)
    # a span longer than the word budget cannot be marked: skipped with a warning
    doc2 = nlp.make_doc(text)
    doc2.ents = [Span(doc2, 0, len(doc2) - 1, label="HUGE")]
    with pytest.warns(UserWarning, match="more word pieces than the model.s window"):
        nlp.get_pipe("luke_entity_typer")(doc2)
    assert doc2.ents[0]._.luke_types is None


def test_bad_config():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="threshold"):
        nlp.add_pipe("luke_entity_typer", config={"threshold": 1.5})


# ---------------------------------------------------------------------- serialization


def test_round_trips_docbin_and_n_process(typer_multi_checkpoint, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(typer_multi_checkpoint, copy)
    nlp = make_nlp(copy)
    docs = [nlp.get_pipe("luke_entity_typer")(d) for d in make_docs(nlp, TEXTS[:8])]
    expected = [doc_types(d) for d in docs]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(copy)
    loaded = spacy.load(tmp_path / "pipeline")
    got = [doc_types(loaded.get_pipe("luke_entity_typer")(d)) for d in make_docs(loaded, TEXTS[:8])]
    assert got == expected
    assert loaded.get_pipe("luke_entity_typer").multi_label
    # to_bytes
    fresh = spacy.blank("en")
    fresh.add_pipe("luke_entity_typer")
    fresh.from_bytes(nlp.to_bytes())
    assert [doc_types(fresh.get_pipe("luke_entity_typer")(d)) for d in make_docs(fresh, TEXTS[:8])] == expected
    # DocBin with user data
    restored = list(DocBin(docs=docs, store_user_data=True).from_bytes(DocBin(docs=docs, store_user_data=True).to_bytes()).get_docs(nlp.vocab))
    assert [doc_types(d) for d in restored] == expected


def test_n_process_2(typer_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_capitalized_ents")
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    expected = [doc_types(d) for d in nlp.pipe(TEXTS[:8])]
    got = [doc_types(d) for d in nlp.pipe(TEXTS[:8], n_process=2, batch_size=3)]
    assert any(expected) and got == expected


# ---------------------------------------------------------------------- training

TRAIN = [
    ("Steve Jobs founded Apple in California .", [(0, 2, ["person", "artist"]), (3, 4, ["organization"]), (5, 6, ["location"])]),
    ("Beyoncé was born in Houston , Texas .", [(0, 1, ["person", "artist"]), (4, 5, ["location"]), (6, 7, ["location"])]),
    ("The New York Times is a company .", [(1, 4, ["organization"])]),
    ("Tokyo is the capital of Japan .", [(0, 1, ["location"]), (5, 6, ["location"])]),
]


def make_examples(nlp):
    examples = []
    for text, spans in TRAIN:
        predicted, reference = nlp.make_doc(text), nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label="ENT") for s, e, _ in spans]
        predicted.ents = [Span(predicted, s, e, label="ENT") for s, e, _ in spans]
        for s, e, types in spans:
            reference[s:e]._.luke_types = {t: 1.0 for t in types}
        examples.append(Example(predicted, reference))
    return examples


@pytest.mark.heavy  # training to overfit: 9 s
def test_overfits_multi_label(mlm_checkpoint):
    nlp = spacy.blank("en")
    typer = nlp.add_pipe("luke_entity_typer", config={"pretrained": str(mlm_checkpoint)})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    assert typer.labels == ("artist", "location", "organization", "person")
    assert typer.multi_label  # inferred from spans with several types
    optimizer.learn_rate = 5e-3
    losses = []
    for _ in range(50):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["luke_entity_typer"])
    assert losses[-1] < losses[0] * 0.1, losses[::10]
    scores = nlp.evaluate(make_examples(nlp))
    for text, spans in TRAIN:
        doc = nlp.make_doc(text)
        doc.ents = [Span(doc, s, e, label="ENT") for s, e, _ in spans]
        typer(doc)
        assert [sorted(e._.luke_types) for e in doc.ents] == [sorted(t) for _, _, t in spans]
    assert scores["luke_types_f"] == 1.0, scores


@pytest.mark.heavy  # training to overfit: 13 s
def test_single_label_span_group_gold_and_scorer(mlm_checkpoint):
    nlp = spacy.blank("en")
    typer = nlp.add_pipe("luke_entity_typer", config={"pretrained": str(mlm_checkpoint), "spans_key": "types", "multi_label": False})
    examples = []
    for text, spans in TRAIN:
        predicted, reference = nlp.make_doc(text), nlp.make_doc(text)
        reference.spans["types"] = [Span(reference, s, e, label=t[0]) for s, e, t in spans]
        predicted.ents = [Span(predicted, s, e, label="ENT") for s, e, _ in spans]
        examples.append(Example(predicted, reference))
    optimizer = nlp.initialize(lambda: examples)
    assert not typer.multi_label
    optimizer.learn_rate = 3e-3
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    scores = nlp.evaluate(examples)
    assert scores["luke_types_f"] == 1.0, scores


def test_unknown_gold_type_is_a_clear_error(typer_checkpoint):
    nlp = make_nlp(typer_checkpoint)
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match="'artist'|'organization'|type"):
        examples[0].reference[0:2]._.luke_types = {"weird": 1.0}
        nlp.update(examples)


TRAIN_CONFIG = """
[paths]
train = null
dev = null
checkpoint = null

[nlp]
lang = "en"
pipeline = ["luke_entity_typer"]
batch_size = 4

[components]

[components.luke_entity_typer]
factory = "luke_entity_typer"

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

[initialize.components.luke_entity_typer]

[initialize.components.luke_entity_typer.loader]
@misc = "spacy-luke.HFLukeLoader.v1"
name_or_path = ${paths.checkpoint}
"""


def write_jsonl(path):
    nlp = spacy.blank("en")
    with path.open("w", encoding="utf8") as f:
        for text, spans in TRAIN:
            doc = nlp.make_doc(text)
            entities = [{"start": doc[s:e].start_char, "end": doc[s:e].end_char, "label": "ENT", "types": t} for s, e, t in spans]
            f.write(json.dumps({"text": text, "entities": entities}) + "\n")


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_from_config(mlm_checkpoint, tmp_path):
    write_jsonl(tmp_path / "train.jsonl")
    (tmp_path / "config.cfg").write_text(TRAIN_CONFIG)
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "fill-config", str(tmp_path / "config.cfg"), str(tmp_path / "full.cfg")],
        check=True, capture_output=True,
    )
    full = (tmp_path / "full.cfg").read_text()
    assert "spacy-luke.EntityClassifier.v1" in full and "spacy-luke.entity_typer_scorer.v1" in full
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
    assert trained.get_pipe("luke_entity_typer").labels == ("artist", "location", "organization", "person")
    from spacy_luke.pipeline._shared.corpus import make_jsonl_corpus

    scores = trained.evaluate(list(make_jsonl_corpus(str(tmp_path / "train.jsonl"))(trained)))
    assert scores["luke_types_f"] > 0.5, scores
