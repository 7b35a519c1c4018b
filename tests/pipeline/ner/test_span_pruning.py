"""luke_ner's learned span pruner: it trains, keeps the gold spans, bounds the work, serializes, and
changes nothing when it keeps every candidate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import DocBin

from support.tokenizers import make_sentences
from support.ner import TRAIN, TRAIN_CONFIG, make_examples, spacy_train, train_ner
from spacy_luke.model.span_pruner import SpanPrunerConfig
from spacy_luke.pipeline._ner.span_pruning import SpanPruning, make_span_pruning

#: The tests on the module's trained pipeline (60 training steps: about 50 s, paid by the first test that asks).
ON_TRAINED = pytest.mark.heavy
PRUNING = {"@misc": "spacy-luke.span_pruning.v1", "layers": 1, "hidden_width": 16, "keep_per_word": 0.5}


def trained_pipeline(mlm_checkpoint, steps: int = 60, pruning=PRUNING):
    return train_ner(mlm_checkpoint, steps, pruning=pruning)


@pytest.fixture(scope="module")
def trained(mlm_checkpoint):
    return trained_pipeline(mlm_checkpoint)


def entities(doc):
    return sorted((e.start, e.end, e.label_) for e in doc.ents)


@ON_TRAINED
def test_the_pruner_learns_beside_the_ner_head_and_keeps_the_gold_spans(trained):
    nlp, ner, losses = trained
    assert losses[-1][1] < losses[0][1] * 0.2, losses[::10]  # the pruner's own loss
    assert losses[-1][0] < losses[0][0] * 0.05, losses[::10]
    head = ner.luke_model
    assert head.span_pruner is not None and head.span_pruner.settings == SpanPrunerConfig(1, 16, 32, True)
    assert head.config.extra["span_pruner"] == {"layers": 1, "hidden_width": 16, "max_width": 32, "trained": True}
    for text, ents in TRAIN:
        doc = nlp(text)
        assert entities(doc) == sorted(ents)
        # The full pass scored at most ceil(0.5 x words) candidates, and every gold span among them.
        (scores,) = ner.predict([nlp.make_doc(text)])
        assert len(scores.spans) <= math.ceil(0.5 * len(doc)) < len(ner._items([doc])[0])
        kept = {tuple(span) for span in scores.spans.tolist()}
        assert {(s, e) for s, e, _ in ents} <= kept


def test_pruner_learning_never_changes_the_encoder(mlm_checkpoint):
    nlp, ner, _ = trained_pipeline(mlm_checkpoint, steps=1)
    from spacy_luke.pipeline._ner.span_pruning import update_pruner

    head = ner.luke_model
    head.zero_grad(set_to_none=True)
    examples = make_examples(nlp)
    losses = {}
    loss = update_pruner(ner, examples, ner._training_items(examples), losses)
    assert loss > 0 and losses["luke_ner_pruner"] == loss
    with_grad = {name for name, p in head.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(name.startswith("span_pruner.") for name in with_grad), with_grad


@ON_TRAINED
def test_a_budget_that_keeps_every_candidate_changes_nothing(trained):
    nlp, ner, _ = trained
    texts = [text for text, _ in TRAIN] + make_sentences()[:6]
    pruned = [entities(doc) for doc in nlp.pipe(texts)]
    full_scores = None
    ner.pruning = make_span_pruning(layers=1, hidden_width=16, keep_per_word=1000.0)
    try:
        everything = [entities(doc) for doc in nlp.pipe(texts)]
        ner.pruning = None
        full = [entities(doc) for doc in nlp.pipe(texts)]
        full_scores = ner.predict([nlp.make_doc(t) for t in texts])
        ner.pruning = make_span_pruning(layers=1, hidden_width=16, keep_per_word=1000.0)
        kept_scores = ner.predict([nlp.make_doc(t) for t in texts])
    finally:
        ner.pruning = make_span_pruning(layers=1, hidden_width=16, keep_per_word=0.5)
    assert everything == full
    for a, b in zip(full_scores, kept_scores):
        assert np.array_equal(a.spans, b.spans)
        np.testing.assert_array_equal(a.logits, b.logits)
    assert pruned[: len(TRAIN)] == full[: len(TRAIN)]


@ON_TRAINED
def test_min_probability_drops_unlikely_candidates(trained):
    from spacy_luke.layers.span_pruner import pruner_scores

    nlp, ner, _ = trained
    doc = nlp.make_doc(TRAIN[0][0])
    candidates = ner._items([doc])
    (logits,) = pruner_scores(ner.model, [doc], candidates)
    probability = 1 / (1 + np.exp(-logits.astype(np.float64)))
    threshold = float(np.median(probability))
    ner.pruning = make_span_pruning(layers=1, hidden_width=16, keep_per_word=10.0, min_probability=threshold)
    try:
        (scores,) = ner.predict([doc])
    finally:
        ner.pruning = make_span_pruning(layers=1, hidden_width=16, keep_per_word=0.5)
    expected = candidates[0][probability >= threshold]
    assert 0 < len(expected) < len(candidates[0])
    assert np.array_equal(scores.spans, expected)


def test_an_untrained_or_missing_pruner_is_a_clear_error(ner_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, "pruning": PRUNING})
    with pytest.raises(ValueError, match=r"\[luke_ner\] pruning is set, but the model has no span pruner.*train-pruner"):
        nlp("Steve Jobs founded Apple .")
    nlp.initialize()  # adds an untrained pruner
    with pytest.raises(ValueError, match="has an untrained span pruner"):
        nlp("Steve Jobs founded Apple .")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"layers": 0}, "layers must be at least 1"),
        ({"keep_per_word": 0}, "keep_per_word must be positive"),
        ({"min_probability": 1.0}, r"min_probability must be in \[0, 1\)"),
        ({"hidden_width": 0}, "hidden_width must be at least 1"),
    ],
)
def test_bad_settings_name_the_value(settings, message):
    with pytest.raises(ValueError, match=message):
        make_span_pruning(**settings)


def test_too_many_layers_is_a_clear_error(mlm_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 4, "pruning": {**PRUNING, "layers": 3}})
    with pytest.raises(ValueError, match=r"reads 1\.\.2 encoder layers .* got layers=3"):
        nlp.initialize(lambda: make_examples(nlp))


@ON_TRAINED
def test_the_pruner_travels_with_the_pipeline(trained, tmp_path):
    nlp, ner, _ = trained
    texts = [text for text, _ in TRAIN] + make_sentences()[:4]
    expected = [entities(doc) for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [entities(doc) for doc in loaded.pipe(texts)] == expected
    pruner = loaded.get_pipe("luke_ner").luke_model.span_pruner
    for (name, a), b in zip(ner.luke_model.span_pruner.named_parameters(), pruner.parameters()):
        assert torch.equal(a, b), name
    assert pruner.settings.trained
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("luke_ner", config={"pretrained": None, "max_mention_length": 4, "pruning": PRUNING})
    from_bytes.from_bytes(nlp.to_bytes())
    assert [entities(doc) for doc in from_bytes.pipe(texts)] == expected
    # Turning pruning off at load time runs the full pass (the pruner weights stay, unused).
    unpruned = spacy.load(tmp_path / "pipeline", config={"components": {"luke_ner": {"pruning": None}}})
    ner.pruning, kept = None, ner.pruning
    try:
        assert [entities(doc) for doc in unpruned.pipe(texts)] == [entities(doc) for doc in nlp.pipe(texts)]
    finally:
        ner.pruning = kept


@ON_TRAINED
def test_other_heads_skip_the_pruner_tensors(trained, tmp_path):
    from spacy_luke.model import LukeForEntitySpanClassification, LukeModel

    _, ner, _ = trained
    ner.luke_model.save_pretrained(tmp_path / "saved")
    encoder = LukeModel.from_pretrained(tmp_path / "saved")  # e.g. luke_entity_vectors on this folder
    assert any(key.startswith("span_pruner.") for key in encoder.loading_info["skipped"])
    again = LukeForEntitySpanClassification.from_pretrained(tmp_path / "saved")
    assert again.span_pruner is not None and again.span_pruner.settings.trained
    for a, b in zip(ner.luke_model.span_pruner.parameters(), again.span_pruner.parameters()):
        assert torch.equal(a, b)


@ON_TRAINED
@pytest.mark.filterwarnings("ignore:precision=")  # a CPU without the int8 kernels falls back to float32
@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_pruning_runs_in_the_fast_precisions(trained, precision):
    nlp, ner, _ = trained
    texts = [text for text, _ in TRAIN]
    from spacy_luke.layers import set_precision

    set_precision(ner.model, precision)
    try:
        found = [entities(doc) for doc in nlp.pipe(texts)]
    finally:
        set_precision(ner.model, "float32")
    assert found == [sorted(ents) for _, ents in TRAIN]


@pytest.mark.heavy  # trains a pruner through the command line's main: 27 s
def test_train_pruner_cli_adds_a_trained_pruner(mlm_checkpoint, tmp_path):
    from spacy_luke.cli import main

    nlp, _, _ = trained_pipeline(mlm_checkpoint, steps=40, pruning=None)
    assert nlp.get_pipe("luke_ner").luke_model.span_pruner is None
    nlp.to_disk(tmp_path / "model")
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(tmp_path / "train.spacy")
    code = main(
        ["train-pruner", str(tmp_path / "model"), str(tmp_path / "train.spacy"), str(tmp_path / "out"),
         "--layers", "1", "--hidden-width", "16", "--epochs", "60", "--learn-rate", "3e-3"]
    )
    assert code == 0
    pruned = spacy.load(tmp_path / "out")
    ner = pruned.get_pipe("luke_ner")
    assert ner.pruning == SpanPruning(layers=1, hidden_width=16, keep_per_word=1.0)
    assert ner.luke_model.span_pruner.settings.trained
    for text, ents in TRAIN:
        (scores,) = ner.predict([pruned.make_doc(text)])
        assert {(s, e) for s, e, _ in ents} <= {tuple(x) for x in scores.spans.tolist()}
    # the NER weights are those of the input pipeline
    before = nlp.get_pipe("luke_ner").luke_model.classifier.weight
    assert torch.equal(before, ner.luke_model.classifier.weight)


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_learns_the_pruner_with_the_pipe(mlm_checkpoint, tmp_path):
    config = TRAIN_CONFIG.replace(
        "max_mention_length = 4\n",
        'max_mention_length = 4\n\n[components.luke_ner.pruning]\n@misc = "spacy-luke.span_pruning.v1"\nlayers = 1\nhidden_width = 16\n',
    ).replace("max_steps = 40", "max_steps = 60")
    full, trained = spacy_train(config, mlm_checkpoint, tmp_path)
    assert "spacy-luke.span_pruning.v1" in full
    ner = trained.get_pipe("luke_ner")
    assert ner.pruning == SpanPruning(layers=1, hidden_width=16)
    assert ner.luke_model.span_pruner.settings.trained
    assert trained.evaluate(make_examples(trained))["ents_f"] > 0.5


def test_train_pruner_errors_are_one_line(capsys, tmp_path):
    from spacy_luke.cli import main

    blank = spacy.blank("en")
    blank.add_pipe("sentencizer")
    blank.to_disk(tmp_path / "no-ner")
    DocBin(docs=[blank.make_doc("Tokyo .")]).to_disk(tmp_path / "train.spacy")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "train.spacy"), str(tmp_path / "out")], "missing: no such file or folder"),
        ([str(tmp_path / "no-ner"), str(tmp_path / "train.spacy"), str(tmp_path / "full")], "is not empty: add --overwrite"),
        ([str(tmp_path / "no-ner"), str(tmp_path / "train.spacy"), str(tmp_path / "out")], "The pipeline has no luke_ner pipe"),
        ([str(tmp_path / "no-ner"), str(tmp_path / "train.spacy"), str(tmp_path / "out"), "--keep-per-word", "0"], "keep_per_word must be positive, got 0.0"),
    ]
    for argv, message in cases:
        assert main(["train-pruner", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err


@ON_TRAINED
def test_pruner_scores_do_not_depend_on_how_candidates_are_cut_into_passes(trained, monkeypatch):
    from spacy_luke.layers import span_inputs
    from spacy_luke.layers.span_pruner import pruner_scores

    nlp, ner, _ = trained
    text = " ".join(text for text, _ in TRAIN) * 2  # one long doc: many more candidates than one pass holds
    docs = [nlp.make_doc(text)]
    candidates = ner._items(docs)
    assert len(candidates[0]) > ner.cfg["max_entities_per_pass"]
    (whole,) = pruner_scores(ner.model, docs, candidates)
    monkeypatch.setattr(span_inputs, "WHOLE_WINDOW", 7)
    (cut,) = pruner_scores(ner.model, docs, candidates)
    assert np.isfinite(whole).all()
    np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-5)


@ON_TRAINED
def test_a_pruner_without_its_tensors_is_untrained_and_others_drop_its_settings(trained, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from spacy_luke.model import LukeForEntitySpanClassification, LukeModel

    _, ner, _ = trained
    ner.luke_model.save_pretrained(tmp_path / "pruned")
    LukeModel.from_pretrained(tmp_path / "pruned").save_pretrained(tmp_path / "encoder")
    assert "span_pruner" not in json.loads((tmp_path / "encoder" / "config.json").read_text())
    # config.json says a trained pruner, the weights lack it: made afresh, so not trained.
    state = {k: v for k, v in load_file(tmp_path / "pruned" / "model.safetensors").items() if not k.startswith("span_pruner.")}
    save_file(state, str(tmp_path / "pruned" / "model.safetensors"))
    again = LukeForEntitySpanClassification.from_pretrained(tmp_path / "pruned")
    assert again.span_pruner is not None and not again.span_pruner.settings.trained
    assert again.config.extra["span_pruner"]["trained"] is False


@ON_TRAINED
def test_a_pruner_of_another_shape_is_used_with_a_warning(trained):
    from spacy_luke.pipeline._ner.span_pruning import ensure_pruner

    _, ner, _ = trained
    with pytest.warns(UserWarning, match=r"reads 1 layers with hidden width 16, not the 2 and 16"):
        ensure_pruner(ner, make_span_pruning(layers=2, hidden_width=16))
    assert ner.luke_model.span_pruner.settings.layers == 1


@ON_TRAINED
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_pruned_predictions_from_a_thread_pool_match_sequential(trained, precision):
    from concurrent.futures import ThreadPoolExecutor

    from spacy_luke.layers import set_precision

    nlp, ner, _ = trained
    texts = [text for text, _ in TRAIN] + make_sentences()[:12]
    set_precision(ner.model, precision)
    try:
        expected = [entities(doc) for doc in nlp.pipe(texts)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(lambda text: entities(nlp(text)), texts * 3))
    finally:
        set_precision(ner.model, "float32")
    assert found == expected * 3
