"""The engines: one registry in spacy_luke.layers.engines, read by the pipes, the batch runner and
HeadOutput; and the one per-call mode (call_mode) that tells HeadOutput a training call from a
prediction."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spacy_luke.layers import batch_runner, engines, head_layer, load_luke_folder, luke_shim
from spacy_luke.layers.engines import DEFAULT_ENGINE, ENGINES, Engine, max_padding, check_engine, engine_names, get_engine
from spacy_luke.model.mode import call_mode
from support.ner import span_batch
from support.ner import PARITY_TEXTS, doc_entities, make_nlp

PACKAGE = Path(engines.__file__).resolve().parents[1]


def test_each_engine_is_named_once_with_its_settings():
    assert engine_names() == tuple(ENGINES) == ("torch", "onnxruntime") and DEFAULT_ENGINE == "torch"
    assert all(isinstance(engine, Engine) and engine.name == name for name, engine in ENGINES.items())
    torch_engine, ort = ENGINES["torch"], ENGINES["onnxruntime"]
    assert (torch_engine.max_padding, torch_engine.build, torch_engine.precisions, torch_engine.devices) == (1.0, None, None, None)
    assert (ort.max_padding, ort.build, ort.precisions, ort.devices) == (0.1, engines.ort_head, ("float32", "int8"), ("cpu",))
    assert "LukeForEntityDisambiguation" not in ort.heads and "LukeForEntitySpanClassification" in ort.heads
    assert {name: max_padding(name) for name in ENGINES} == {"torch": 1.0, "onnxruntime": 0.1}


def test_unknown_engines_and_what_an_engine_cannot_run():
    for bad in ("tensorrt", "", None, ["torch"]):
        with pytest.raises(ValueError, match="choose one of 'torch', 'onnxruntime'"):
            get_engine(bad)
    with pytest.raises(ValueError, match=r"^\[ner\] engine='tensorrt': choose one of"):
        check_engine("ner", "tensorrt", "float32")
    with pytest.raises(ValueError, match="runs precision 'float32' or 'int8', not 'float16': .* engine='torch'"):
        check_engine("ner", "onnxruntime", "float16")
    with pytest.raises(ValueError, match="LukeForEntityDisambiguation head cannot be exported to onnxruntime"):
        check_engine("linker", "onnxruntime", "float32", "LukeForEntityDisambiguation")
    assert check_engine("ner", "torch", "bfloat16", "LukeForEntityDisambiguation") == "torch"


def test_an_engine_runs_elsewhere_its_fallback_warning_once(monkeypatch):
    monkeypatch.setattr(engines, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert get_engine("onnxruntime").on(torch.device("cuda", 0)) is ENGINES["torch"]
        assert get_engine("onnxruntime").on("cuda:1") is ENGINES["torch"]
        assert get_engine("onnxruntime").on("cpu") is ENGINES["onnxruntime"]
    assert [str(w.message) for w in caught] == [
        "engine='onnxruntime' runs on cpu only; the model is on cuda:0, so the torch engine runs."
    ]


def test_no_engine_name_checked_outside_the_registry():
    """Engines are told apart by the registry's fields, never by comparing their names elsewhere."""
    names = "|".join(ENGINES)
    check = re.compile(rf"""(==|!=|\bin\b|\bis\b)\s*[\(\[{{]?\s*["']({names})["']|["']({names})["']\s*(==|!=|\bin\b)""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py")) if path.name != "engines.py"
        for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1) if check.search(line)
    ]
    assert offenders == []


def test_a_new_engine_needs_only_the_registry(ner_checkpoint, monkeypatch):
    """An engine added to ENGINES runs a pipe's predictions with its own module and padding rule."""
    built, calls, paddings = [], [], []

    def build(head_model, output, precision):
        built.append((type(head_model).__name__, output, precision))

        def run(**inputs):  # what a new runtime would run; here the float head itself, counted
            calls.append(len(inputs["input_ids"]))
            return head_model(**inputs)

        return run

    def bucket(costs, max_cost, max_padding):
        paddings.append(max_padding)
        return original_bucket(costs, max_cost, max_padding)

    original_bucket = batch_runner.bucket_by_cost
    monkeypatch.setattr(batch_runner, "bucket_by_cost", bucket)
    monkeypatch.setitem(ENGINES, "toy", Engine("toy", max_padding=0.25, build=build, precisions=("float32",)))
    assert "toy" in engine_names()
    with pytest.raises(ValueError, match="engine='toy' runs precision 'float32', not 'int8'"):
        make_nlp(ner_checkpoint, engine="toy", precision="int8")
    reference = make_nlp(ner_checkpoint)
    nlp = make_nlp(ner_checkpoint, engine="toy")
    texts = PARITY_TEXTS[:6]
    expected = [doc_entities(doc) for doc in reference.pipe(texts)]
    paddings.clear()
    assert [doc_entities(doc) for doc in nlp.pipe(texts)] == expected
    assert built == [("LukeForEntitySpanClassification", "logits", "float32")]  # once per weight version
    assert calls and set(paddings) == {0.25}
    model = luke_shim(nlp.get_pipe("luke_ner").model)._model
    assert set(model._view_cache[1]) == {"toy"}  # cached by the engine's name


def _layer(folder):
    from spacy.util import registry

    model = registry.architectures.get("spacy-luke.EntitySpanClassifier.v1")()
    load_luke_folder(model, folder)
    return model


def _spy_views(model, monkeypatch):
    """The head output of ``model`` in int8, with a record of the modules each call runs."""
    shim = luke_shim(model)
    shim.set_precision("int8")
    head_output = shim._model
    ran = []
    original = head_output._inference_model

    def inference_model(*args):
        view = original(*args)
        ran.append(view)
        return view

    monkeypatch.setattr(head_output, "_inference_model", inference_model)
    return head_output, ran


def test_one_signal_says_training_or_prediction(ner_checkpoint, monkeypatch):
    """HeadOutput reads the call's mode (call_mode), not torch.is_grad_enabled(): a prediction with
    gradients enabled runs the inference view; a training call under torch.no_grad() the float weights."""
    model = _layer(ner_checkpoint)
    head_output, ran = _spy_views(model, monkeypatch)
    kwargs = {key: torch.from_numpy(value) for key, value in span_batch(ner_checkpoint).items()}
    with torch.enable_grad(), call_mode(False):
        predicted = head_output(**kwargs)
    assert len(ran) == 1 and ran[0] is not head_output.head_model  # the int8 view
    assert not predicted.requires_grad and predicted.is_inference()
    with torch.no_grad(), call_mode(True):
        trained = head_output(**kwargs)
    assert len(ran) == 1  # the float weights: no view asked for
    assert not trained.requires_grad  # no graph: the caller turned gradients off
    with call_mode(True):
        assert head_output(**kwargs).requires_grad  # the float weights, with gradients
    with pytest.raises(RuntimeError, match="outside spacy_luke.model.mode.call_mode"):
        head_output(**kwargs)
    # Through the layer: predict() is a prediction even with gradients enabled.
    with torch.enable_grad():
        head_layer(model).predict(span_batch(ner_checkpoint))
    assert len(ran) == 2


def test_the_span_pruner_head_reads_the_call_mode(ner_checkpoint, monkeypatch):
    from spacy_luke.layers.span_pruner import PRUNER_INPUTS, build_pruner_head
    from spacy_luke.model.span_pruner import SpanPrunerConfig, add_span_pruner

    model = _layer(ner_checkpoint)
    add_span_pruner(luke_shim(model).head_model, SpanPrunerConfig(layers=1, hidden_width=8))
    head_output, ran = _spy_views(model, monkeypatch)
    pruner = build_pruner_head(head_layer(model))
    batch = {key: span_batch(ner_checkpoint)[key] for key in PRUNER_INPUTS}
    with torch.enable_grad():
        predicted = pruner.predict(batch)
    assert len(ran) == 1 and ran[0] is not head_output.head_model and predicted.shape[-1] == 1
    with torch.no_grad():
        logits, backprop = pruner.begin_update(batch)
    assert len(ran) == 1  # training: the float head
    weight = luke_shim(model).head_model.span_pruner.classifier.weight
    logits, backprop = pruner.begin_update(batch)
    backprop(np.ones_like(logits))
    assert weight.grad is not None and luke_shim(model).head_model.luke.embeddings.word_embeddings.weight.grad is None
