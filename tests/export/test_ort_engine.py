"""engine = "onnxruntime": the pipes' predictions run by ONNX Runtime on their head exported at first
use; the same numbers as the torch engine (1e-4 in float32), the same annotations, a fresh export
after training, clear errors for what it cannot run."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import spacy

pytest.importorskip("onnxruntime")

from support.entity_docs import TEXTS, make_docs  # noqa: E402
from support.onnx_pipes import ATOL, PIPES  # noqa: E402

from spacy_luke.layers import head_layer, luke_shim, padded_batches, set_engine  # noqa: E402
from spacy_luke.layers.engines import OrtHead  # noqa: E402


def make_pipeline(request, kind, **config):
    factory, fixture, max_batch_cost = PIPES[kind]
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    settings = {"pretrained": str(request.getfixturevalue(fixture)), "max_batch_cost": max_batch_cost, **config}
    pipe = nlp.add_pipe(factory, config=settings)
    assert pipe.luke_model is not None  # loads the weights
    return nlp, pipe


def docs_for(nlp, n=12):
    docs = make_docs(nlp, TEXTS[:n])
    for doc in docs:
        nlp.get_pipe("sentencizer")(doc)
    return docs


def annotations(kind, doc):
    if kind == "ner":
        return [(e.start, e.end, e.label_) for e in doc.ents]
    if kind == "typer":
        return [(e.start, e.end, e._.luke_types) for e in doc.ents]
    if kind == "relation":
        return doc._.luke_relations
    return [(e.start, e.end, e._.luke_vector) for e in doc.ents]


def assert_same(kind, a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if kind == "ner":
            assert x == y
        elif kind == "typer":
            assert x[:2] == y[:2] and x[2].keys() == y[2].keys()
            assert all(abs(x[2][k] - y[2][k]) <= ATOL for k in x[2])
        elif kind == "relation":
            assert (x["head"], x["tail"], x["label"]) == (y["head"], y["tail"], y["label"])
            assert abs(x["score"] - y["score"]) <= ATOL
        else:
            assert x[:2] == y[:2] and np.abs(np.asarray(x[2]) - np.asarray(y[2])).max() <= ATOL


@pytest.mark.parametrize("kind", sorted(PIPES))
def test_onnxruntime_engine_equals_torch(request, kind):
    """Every padded batch the pipe builds: ONNX Runtime's output equals the torch layer's on the
    real slots; the Doc annotations are the same."""
    nlp, pipe = make_pipeline(request, kind, engine="onnxruntime")
    assert pipe.cfg["engine"] == "onnxruntime" and pipe.max_padding == 0.1
    torch_nlp, torch_pipe = make_pipeline(request, kind)
    assert torch_pipe.max_padding == 1.0
    docs = docs_for(nlp)
    batches = [padded for _, padded in padded_batches(pipe.model, *pipe.model_input(docs))]
    assert len(batches) >= 2
    worst = 0.0
    for padded in batches:
        got = head_layer(pipe.model).predict(padded)  # ONNX Runtime
        set_engine(pipe.model, "torch")
        expected = head_layer(pipe.model).predict(padded)
        set_engine(pipe.model, "onnxruntime")
        if got.ndim == 3:
            real = padded["entity_attention_mask"].astype(bool)
            expected, got = expected[real], got[real]
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= ATOL, worst
    if kind == "ner":  # from raw text, through the whole pipeline
        ours = [annotations(kind, d) for d in nlp.pipe(TEXTS[:12])]
        reference = [annotations(kind, d) for d in torch_nlp.pipe(TEXTS[:12])]
    else:  # the entities to type / relate / encode must be on the docs: the pipe on the prepared docs
        ours = [annotations(kind, pipe(d)) for d in docs_for(nlp)]
        reference = [annotations(kind, torch_pipe(d)) for d in docs_for(torch_nlp)]
    assert len(ours) == 12 and any(ours)
    for a, b in zip(ours, reference):
        assert_same(kind, a, b)


def test_int8_graph_and_fresh_export_after_training(request):
    """precision='int8' runs ONNX Runtime's quantized graph (close to float32, not equal); after an
    update the graph is exported again from the new weights (it follows torch, not the old export)."""
    from spacy.training import Example

    nlp, pipe = make_pipeline(request, "ner", engine="onnxruntime", precision="int8")
    docs = docs_for(nlp, 4)
    padded = next(iter(padded_batches(pipe.model, *pipe.model_input(docs))))[1]
    real = padded["entity_attention_mask"].astype(bool)
    int8 = head_layer(pipe.model).predict(padded)[real]
    shim = luke_shim(pipe.model)
    shim.set_precision("float32")  # the engine stays ONNX Runtime: now its float32 graph
    assert shim._model.engine == "onnxruntime"
    before = head_layer(pipe.model).predict(padded)[real]
    assert 0 < np.abs(int8 - before).max() < 0.5  # quantized: close, not identical

    optimizer = nlp.resume_training()
    for _ in range(2):
        nlp.update([Example.from_dict(nlp.make_doc(docs[0].text), {"entities": []})], sgd=optimizer)
    after = head_layer(pipe.model).predict(padded)[real]
    set_engine(pipe.model, "torch")
    torch_after = head_layer(pipe.model).predict(padded)[real]
    assert np.abs(after - before).max() > 1e-3  # the weights moved ...
    assert np.abs(after - torch_after).max() <= ATOL  # ... and the ONNX graph with them


def test_engine_errors(request):
    with pytest.raises(ValueError, match="engine='tensorrt'.*'torch', 'onnxruntime'"):
        make_pipeline(request, "ner", engine="tensorrt")
    with pytest.raises(ValueError, match="runs precision 'float32' or 'int8', not 'bfloat16'"):
        make_pipeline(request, "ner", engine="onnxruntime", precision="bfloat16")
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="LukeForEntityDisambiguation head cannot be exported"):
        nlp.add_pipe("luke_entity_linker", config={"engine": "onnxruntime"})


def test_engine_is_saved_and_loaded(request, tmp_path):
    nlp, pipe = make_pipeline(request, "ner", engine="onnxruntime")
    expected = [annotations("ner", d) for d in nlp.pipe(TEXTS[:4])]
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("luke_ner").cfg["engine"] == "onnxruntime"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from the export or ONNX Runtime
        assert [annotations("ner", d) for d in loaded.pipe(TEXTS[:4])] == expected
    view = luke_shim(loaded.get_pipe("luke_ner").model)._model._view_cache[1]["onnxruntime"]
    assert isinstance(view, OrtHead)  # ran by ONNX Runtime
