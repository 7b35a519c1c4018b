"""luke_ner's faster training: candidate selection (``training_candidates``) and 16-bit training
(``training_precision``); prediction is the same whatever the training settings."""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import torch

from spacy_luke.layers import training_precision as tp
from spacy_luke.model.views.precision import cpu_has_native_bf16
from spacy_luke.pipeline._ner.training_candidates import TrainingCandidates, select
from support.ner import TRAIN, TRAIN_CONFIG, make_examples, spacy_train, train_ner

SELECTION = {"@misc": "spacy-luke.TrainingCandidates.v1", "sample_share": 0.2, "pruner_warmup": 5, "seed": 3}
PRUNING = {"@misc": "spacy-luke.span_pruning.v1", "layers": 1, "hidden_width": 16, "keep_per_word": 0.5}


def train(checkpoint, steps: int, **settings):
    nlp, ner, losses = train_ner(checkpoint, steps, seed=0, **settings)
    return nlp, ner, [loss for loss, _ in losses]


def entities(doc):
    return sorted((e.start, e.end, e.label_) for e in doc.ents)


# ---------------------------------------------------------------------------- the selection rule


def test_the_rule_keeps_every_gold_span_and_is_deterministic_under_a_seed():
    rng = np.random.default_rng(0)
    targets = np.where(rng.random(500) < 0.1, rng.integers(1, 4, 500), 0)
    targets[:5] = -1  # unknown gold: never trained on
    logits = rng.normal(size=500).astype(np.float32)
    rule = TrainingCandidates(sample_share=0.1, seed=7)
    first, weights = select(targets, 0, rule.generator(3), rule, logits, keep=40)
    again, weights_again = select(targets, 0, rule.generator(3), rule, logits, keep=40)
    assert np.array_equal(first, again) and np.array_equal(weights, weights_again)
    gold = set(np.flatnonzero(targets > 0).tolist())
    assert gold <= set(first.tolist())
    best = set(np.argsort(-logits, kind="stable")[:40].tolist()) - set(range(5))
    assert best <= set(first.tolist())  # the pruner's kept candidates
    assert not set(range(5)) & set(first.tolist())
    rest = np.array(sorted(set(first.tolist()) - gold - best))
    assert 0.05 * 400 < len(rest) < 0.2 * 400  # about a tenth of the ~410 others
    assert (weights[np.isin(first, rest)] == 10.0).all() and (weights[~np.isin(first, rest)] == 1.0).all()
    other_seed = TrainingCandidates(sample_share=0.1, seed=8)
    assert not np.array_equal(select(targets, 0, other_seed.generator(3), other_seed, logits, keep=40)[0], first)
    assert not np.array_equal(select(targets, 0, rule.generator(4), rule, logits, keep=40)[0], first)
    only_gold, _ = select(targets, 0, rule.generator(3), TrainingCandidates(sample_share=0.0), None)
    assert set(only_gold.tolist()) == gold


@pytest.mark.parametrize(
    "settings,message",
    [({"sample_share": 1.5}, "sample_share must be in"), ({"pruner_warmup": -1}, "pruner_warmup must be")],
)
def test_bad_selection_settings_name_the_value(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainingCandidates(**settings)


def test_bad_training_precision_names_the_choices(mlm_checkpoint):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"training_precision='int8': choose one of float32, bfloat16, float16"):
        nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "training_precision": "int8"})


# ---------------------------------------------------------------------------- training with it


def test_selected_candidates_train_the_head_and_prediction_keeps_the_gold(mlm_checkpoint):
    nlp, ner, losses = train(mlm_checkpoint, 60, pruning=PRUNING, training_candidates=SELECTION)
    assert losses[-1] < losses[0] * 0.05, losses[::10]
    for text, ents in TRAIN:
        assert entities(nlp(text)) == sorted(ents)
    # An update's head pass gets the selected candidates only: gold + kept + a share of the rest.
    examples = make_examples(nlp)
    every = ner._training_items(examples)
    chosen = ner._select_training_items(examples, every, {})
    for eg, x, y in zip(examples, every, chosen):
        gold = {(e.start, e.end) for e in eg.reference.ents}
        spans = {tuple(s) for s in y.spans.tolist()}
        assert gold <= spans and len(y) < len(x)
        assert len(y) <= ner.pruning.budget(len(eg.predicted)) + len(gold) + 0.6 * len(x)
        assert set(y.weights.tolist()) <= {1.0, 5.0}


def test_selection_without_a_pruner_learns_from_gold_and_sampled_spans(mlm_checkpoint):
    nlp, ner, losses = train(mlm_checkpoint, 60, training_candidates={**SELECTION, "sample_share": 0.5})
    assert losses[-1] < losses[0] * 0.1, losses[::10]
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["ents_f"] > 0.8, scores


def test_the_same_seed_trains_the_same_weights(mlm_checkpoint):
    _, first, _ = train(mlm_checkpoint, 3, pruning=PRUNING, training_candidates={**SELECTION, "pruner_warmup": 1})
    _, again, _ = train(mlm_checkpoint, 3, pruning=PRUNING, training_candidates={**SELECTION, "pruner_warmup": 1})
    assert torch.equal(first.luke_model.classifier.weight, again.luke_model.classifier.weight)
    _, other, _ = train(mlm_checkpoint, 3, pruning=PRUNING, training_candidates={**SELECTION, "pruner_warmup": 1, "seed": 4})
    assert not torch.equal(first.luke_model.classifier.weight, other.luke_model.classifier.weight)


def test_training_settings_change_no_prediction(mlm_checkpoint, tmp_path):
    nlp, ner, _ = train(mlm_checkpoint, 2)
    texts = [text for text, _ in TRAIN]
    before = [ner.predict([nlp.make_doc(t)])[0].values for t in texts]
    nlp.to_disk(tmp_path / "plain")
    other = spacy.load(tmp_path / "plain", config={"components": {"luke_ner": {"training_candidates": SELECTION}}})
    assert other.get_pipe("luke_ner").training_candidates is not None
    other.get_pipe("luke_ner").training_precision = "bfloat16"
    after = [other.get_pipe("luke_ner").predict([other.make_doc(t)])[0].values for t in texts]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- 16-bit training


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with AVX512-BF16 or AMX")
def test_bfloat16_training_learns_with_float32_master_weights(mlm_checkpoint):
    nlp, ner, losses = train(mlm_checkpoint, 60, training_precision="bfloat16", pruning=PRUNING, training_candidates=SELECTION)
    assert losses[-1] < losses[0] * 0.05, losses[::10]
    assert all(p.dtype == torch.float32 for p in ner.luke_model.parameters())
    for text, ents in TRAIN:
        assert entities(nlp(text)) == sorted(ents)
    # The training pass ran in bfloat16 (its logits are bfloat16 numbers); float32 when switched off.
    examples = make_examples(nlp)
    items = ner._training_items(examples)
    docs = [eg.predicted for eg in examples]
    classifier = ner.model.get_ref("classifier")

    def in_bfloat16(values):
        return np.array_equal(values, torch.from_numpy(values).bfloat16().float().numpy())

    with torch.no_grad():
        assert in_bfloat16(classifier.begin_update((docs, items))[0][0].values)
        ner.training_precision = "float32"
        assert not in_bfloat16(classifier.begin_update((docs, items))[0][0].values)


def test_16bit_training_falls_back_to_float32_with_a_warning_where_unsupported(mlm_checkpoint, monkeypatch):
    from spacy_luke.model.views import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(tp, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="no native bfloat16 products .* training in float32"):
        nlp, ner, losses = train(mlm_checkpoint, 3, training_precision="bfloat16")
    assert tp.training_autocast("bfloat16", "cpu").dtype_name is None
    with pytest.warns(RuntimeWarning, match="training_precision='float16' runs on GPUs .* training in float32 on cpu"):
        assert tp.training_autocast("float16", "cpu").dtype_name is None
    assert losses[-1] < losses[0]


def test_16bit_training_on_a_gpu_picks_bfloat16_or_float16_with_a_scaler(monkeypatch):
    from spacy_luke.model.views import precision

    monkeypatch.setattr(tp, "_WARNED", set())
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: True)
    assert tp.training_autocast("bfloat16", "cuda:0") == tp.TrainingAutocast("bfloat16", "bfloat16", "cuda", False)
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="no bfloat16 support: training in float16 with a gradient scaler"):
        assert tp.training_autocast("bfloat16", "cuda:0") == tp.TrainingAutocast("bfloat16", "float16", "cuda", True)
    assert tp.training_autocast("float16", "cuda:0").grad_scaler


# ---------------------------------------------------------------------------- spacy train


NEW_SETTINGS = """max_mention_length = 4
training_precision = "{precision}"

[components.luke_ner.pruning]
@misc = "spacy-luke.span_pruning.v1"
layers = 1
hidden_width = 16
keep_per_word = 0.5

[components.luke_ner.training_candidates]
@misc = "spacy-luke.TrainingCandidates.v1"
sample_share = 0.2
pruner_warmup = 5
"""


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_with_the_new_training_settings(mlm_checkpoint, tmp_path):
    precision = "bfloat16" if cpu_has_native_bf16() else "float32"
    config = TRAIN_CONFIG.replace("max_mention_length = 4\n", NEW_SETTINGS.format(precision=precision))
    full, trained = spacy_train(config.replace("max_steps = 40", "max_steps = 60"), mlm_checkpoint, tmp_path)
    assert "spacy-luke.TrainingCandidates.v1" in full and "reweight = true" in full and "seed = 0" in full
    ner = trained.get_pipe("luke_ner")
    assert ner.training_candidates == TrainingCandidates(sample_share=0.2, pruner_warmup=5)
    assert ner.training_precision == precision
    assert ner.luke_model.span_pruner.settings.trained
    assert trained.evaluate(make_examples(trained))["ents_f"] > 0.5


def test_the_projects_fast_training_config_resolves():
    from pathlib import Path

    from spacy.util import load_config, load_model_from_config

    path = Path(__file__).resolve().parents[3] / "project" / "configs" / "luke_ner_fast.cfg"
    nlp = load_model_from_config(load_config(path, overrides={"paths.encoder": "assets/luke-minilm"}), auto_fill=True, validate=True)
    ner = nlp.get_pipe("luke_ner")
    assert ner.training_candidates == TrainingCandidates(sample_share=0.1, pruner_warmup=50, seed=0)
    assert ner.pruning is not None and ner.training_precision == "bfloat16"
