"""spacy-luke.LukeTransformerModel.v1: our LUKE encoder inside spacy-transformers' `transformer` pipe.

doc._.trf_data is spacy-transformers' TransformerData computed by our LukeModel (parity with the
model on the same inputs), spaCy's own tagger and ner listen to it and train it (nlp.update and
spacy train), listeners can be replaced, the pipeline round-trips offline, long docs go through
strided windows, entities can be added as context, and everything else works without
spacy-transformers installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import DocBin, Span
from spacy.training import Example

pytest.importorskip("spacy_transformers")
from spacy_transformers.data_classes import TransformerData  # noqa: E402

from support.tokenizers import WORDS  # noqa: E402

LUKE = "spacy-luke.LukeTransformerModel.v1"
PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "project" / "configs" / "trf_ner.cfg"
LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "pooling": {"@layers": "reduce_mean.v1"},
}
NER_MODEL = {
    "@architectures": "spacy.TransitionBasedParser.v2",
    "state_type": "ner",
    "extra_state_tokens": False,
    "hidden_width": 64,
    "maxout_pieces": 2,
    "use_upper": False,
    "tok2vec": LISTENER,
}
TRAIN = [
    ("Steve Jobs founded Apple in California .", [(0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC")]),
    ("Beyoncé was born in Houston , Texas .", [(0, 1, "PER"), (4, 5, "LOC"), (6, 7, "LOC")]),
    ("The New York Times is a company .", [(1, 4, "ORG")]),
    ("Tokyo is the capital of Japan .", [(0, 1, "LOC"), (5, 6, "LOC")]),
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The encoders here are tiny: one thread is fastest, and on a busy machine two threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tag_of(word: str) -> str:
    return "PUNCT" if not word[0].isalnum() else ("PROPN" if word[0].isupper() else "X")


def make_nlp(checkpoint, *, pipes=("tagger", "ner"), window=64, stride=48, **model):
    nlp = spacy.blank("en")
    config = {"@architectures": LUKE, "pretrained": str(checkpoint), **model}
    config.setdefault("get_spans", {"@span_getters": "spacy-transformers.strided_spans.v1", "window": window, "stride": stride})
    nlp.add_pipe("transformer", config={"model": config})
    if "tagger" in pipes:
        nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": LISTENER}})
    if "ner" in pipes:
        nlp.add_pipe("ner", config={"model": NER_MODEL})
    return nlp


def make_examples(nlp):
    examples = []
    for text, ents in TRAIN:
        words = text.split()
        predicted = nlp.make_doc(text)
        reference = spacy.tokens.Doc(nlp.vocab, words=words, tags=[tag_of(w) for w in words])
        reference.ents = [Span(reference, s, e, label=label) for s, e, label in ents]
        examples.append(Example(predicted, reference))
    return examples


def luke_reference(checkpoint):
    from spacy_luke.model import LukeModel
    from spacy_luke.tokenization import load_tokenizer

    return load_tokenizer(checkpoint), LukeModel.from_pretrained(checkpoint).eval()


def encoder_param(nlp):
    return nlp.get_pipe("transformer").model.shims[0].head_model.encoder.layer[0].output.dense.weight


def long_text(n_words: int = 600) -> str:
    rng = np.random.default_rng(0)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


# ---------------------------------------------------------------------- parity, outputs


def test_trf_data_is_luke_model_word_states(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, pipes=(), get_spans={"@span_getters": "spacy-transformers.doc_spans.v1"})
    nlp.initialize()
    text = "Beyoncé was born in Houston , Texas . Tokyo is the capital of Japan ."
    doc = nlp(text)
    data = doc._.trf_data
    assert isinstance(data, TransformerData)
    tokenizer, model = luke_reference(encoder_checkpoint)
    inputs = tokenizer(text, return_tensors="pt")
    assert (data.wordpieces.input_ids == inputs["input_ids"].numpy()).all()
    assert data.wordpieces.lengths == [inputs["input_ids"].shape[1]]
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state.numpy()
    np.testing.assert_allclose(data.model_output.last_hidden_state, expected, atol=1e-5)
    assert data.width == model.config.hidden_size
    assert nlp.get_pipe("transformer").model.get_dim("nO") == model.config.hidden_size
    # The alignment: each token points at its own pieces (after <s>).
    pieces = nlp.get_pipe("transformer").model.shims[0].pieces.doc_encoder.encode_tokens(
        [t.text for t in doc], [t.whitespace_ for t in doc])
    assert data.align.lengths.tolist() == (pieces.ends - pieces.starts).tolist()
    assert data.align.dataXd.tolist() == list(range(1, len(pieces) + 1))
    assert data.wordpieces.strings[0] == tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())


def test_entities_as_context_mask(encoder_checkpoint):
    from spacy_luke.trf import entity_states

    nlp = make_nlp(encoder_checkpoint, pipes=(), entities="mask", get_spans={"@span_getters": "spacy-transformers.doc_spans.v1"})
    nlp.initialize()
    text = "Steve Jobs founded Apple in California ."
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 5, 6, "LOC")]
    doc = nlp(doc)
    out = doc._.trf_data.model_output
    tokenizer, model = luke_reference(encoder_checkpoint)
    inputs = tokenizer(text, entity_spans=[(e.start_char, e.end_char) for e in doc.ents], return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs)
    np.testing.assert_allclose(out["last_hidden_state"], expected.last_hidden_state.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["entity_last_hidden_state"], expected.entity_last_hidden_state.numpy(), atol=1e-5)
    assert out["entity_token_spans"].tolist() == [[[0, 2], [5, 6]]]
    states = entity_states(doc)
    assert set(states) == {(0, 2), (5, 6)}
    np.testing.assert_allclose(states[(5, 6)], expected.entity_last_hidden_state[0, 1].numpy(), atol=1e-5)
    # Without entities the word states differ (LUKE's entities are context).
    plain = make_nlp(encoder_checkpoint, pipes=(), get_spans={"@span_getters": "spacy-transformers.doc_spans.v1"})
    plain.initialize()
    plain_doc = plain(text)
    assert "entity_last_hidden_state" not in plain_doc._.trf_data.model_output
    assert entity_states(plain_doc) == {}
    assert not np.allclose(plain_doc._.trf_data.model_output.last_hidden_state, out["last_hidden_state"], atol=1e-4)


def test_entities_from_kb_ids_and_span_groups(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, pipes=(), entities="kb_ids", entity_spans_key="mentions")
    nlp.initialize()
    doc = nlp.make_doc("Tokyo is the capital of Japan and Houston is not .")
    doc.spans["mentions"] = [Span(doc, 0, 1, kb_id="Tokyo"), Span(doc, 5, 6, kb_id="Nowhere"), Span(doc, 7, 8)]
    doc.ents = [Span(doc, 7, 8, "LOC")]  # not read: the span group is
    model = nlp.get_pipe("transformer").model
    nlp(doc)
    encoder = model.shims[0].window_encoder
    batch = encoder.encode([doc], [[doc[:]]])
    tok = encoder.tokenizer
    assert batch.entities["entity_ids"].tolist() == [[tok.entity_vocab["Tokyo"], tok.entity_mask_token_id, tok.entity_mask_token_id]]
    assert batch.entity_token_spans.tolist() == [[[0, 1], [5, 6], [7, 8]]]
    assert model.attrs["lite"] is False  # kb_ids needs the entity table
    with pytest.raises(ValueError, match="kb_ids"):
        make_nlp(encoder_checkpoint, pipes=(), entities="kb_ids", lite=True)
    with pytest.raises(ValueError, match="entities="):
        make_nlp(encoder_checkpoint, pipes=(), entities="all")


def test_weights_load_at_initialize_not_construction(tmp_path):
    nlp = make_nlp(tmp_path / "missing", pipes=())  # nothing is read while building
    with pytest.raises(ValueError, match="initialize"):
        nlp("Tokyo is the capital of Japan .")
    unnamed = make_nlp("", pipes=())
    with pytest.raises(ValueError, match="pretrained"):
        unnamed.initialize()


def test_long_docs_go_through_strided_windows(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, pipes=(), window=40, stride=30)
    nlp.initialize()
    text = long_text()
    doc = nlp(text)
    data = doc._.trf_data
    tokenizer, model = luke_reference(encoder_checkpoint)
    pieces = nlp.get_pipe("transformer").model.shims[0].pieces.doc_encoder.encode_tokens(
        [t.text for t in doc], [t.whitespace_ for t in doc])
    assert len(pieces) > 512  # the doc is longer than any model input
    n_windows = len(nlp.get_pipe("transformer").model.attrs["get_spans"]([doc])[0])
    assert data.model_output.last_hidden_state.shape[0] == n_windows > 10
    assert len(data.align.lengths) == len(doc)
    assert (data.align.lengths >= 1).all()  # every token has pieces in some window
    # A token inside two windows lists the pieces of both.
    windows = nlp.get_pipe("transformer").model.attrs["get_spans"]([doc])[0]
    covering = np.zeros(len(doc), dtype=int)
    for span in windows:
        covering[span.start : span.end] += 1
    assert max(data.wordpieces.lengths) < 128 and covering.max() == 2  # no window was cut
    assert data.align.lengths.tolist() == (covering * (pieces.ends - pieces.starts)).tolist()
    with torch.no_grad():
        for w, length in enumerate(data.wordpieces.lengths):
            ids = torch.as_tensor(data.wordpieces.input_ids[w : w + 1, :length])
            expected = model(input_ids=ids).last_hidden_state[0].numpy()
            np.testing.assert_allclose(data.model_output.last_hidden_state[w, :length], expected, atol=1e-5)


def test_windows_longer_than_the_model_are_cut(encoder_checkpoint):
    nlp = make_nlp(encoder_checkpoint, get_spans={"@span_getters": "spacy-transformers.doc_spans.v1"})
    nlp.initialize(lambda: make_examples(nlp))
    doc = nlp(long_text())
    data = doc._.trf_data
    config = nlp.get_pipe("transformer").model.shims[0].head_model.config
    limit = config.max_position_embeddings - config.pad_token_id - 1
    assert data.wordpieces.input_ids.shape == (1, limit)
    assert data.wordpieces.input_ids[0, -1] == nlp.get_pipe("transformer").model.shims[0].pieces.tokenizer.sep_token_id
    assert data.align.lengths[0] >= 1 and data.align.lengths[-1] == 0  # the tail tokens lost their pieces
    assert len(doc) == len([t.tag_ for t in doc])  # the listeners still give every token a row


# ---------------------------------------------------------------------- training, listeners, saving


@pytest.fixture(scope="module")
def trained(mlm_checkpoint, tmp_path_factory):
    """transformer(LUKE) + tagger + ner, overfitted on TRAIN with nlp.update, from a copy of the checkpoint."""
    checkpoint = tmp_path_factory.mktemp("trf") / "luke"
    shutil.copytree(mlm_checkpoint, checkpoint)
    nlp = make_nlp(checkpoint)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    before = encoder_param(nlp).detach().clone()
    optimizer.learn_rate = 5e-3
    losses = []
    for _ in range(50):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step)
    return {"nlp": nlp, "checkpoint": checkpoint, "before": before, "losses": losses}


def test_tagger_and_ner_overfit_through_the_luke_encoder(trained):
    nlp = trained["nlp"]
    losses = trained["losses"]
    assert set(losses[0]) == {"transformer", "tagger", "ner"}
    assert losses[-1]["tagger"] < losses[0]["tagger"] * 0.1
    assert losses[-1]["ner"] < losses[0]["ner"] * 0.1
    assert not torch.equal(encoder_param(nlp), trained["before"])  # the listeners' gradients reached LUKE
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["tag_acc"] == 1.0
    assert scores["ents_f"] == 1.0


def predictions(nlp, texts):
    docs = list(nlp.pipe(texts))
    return [[(t.tag_, t.ent_iob_, t.ent_type_) for t in doc] for doc in docs], docs


def test_to_disk_and_offline_load_give_identical_outputs(trained, tmp_path):
    nlp = trained["nlp"]
    texts = [text for text, _ in TRAIN] + [long_text(150)]
    expected, expected_docs = predictions(nlp, texts)
    nlp.to_disk(tmp_path / "pipeline")
    moved = trained["checkpoint"].with_name("moved-away")
    trained["checkpoint"].rename(moved)  # nothing may read the original folder now
    try:
        loaded = spacy.load(tmp_path / "pipeline")
        got, docs = predictions(loaded, texts)
    finally:
        moved.rename(trained["checkpoint"])
    assert got == expected
    for doc, expected_doc in zip(docs, expected_docs):
        np.testing.assert_array_equal(doc._.trf_data.model_output.last_hidden_state,
                                      expected_doc._.trf_data.model_output.last_hidden_state)
        assert doc._.trf_data.wordpieces.strings == expected_doc._.trf_data.wordpieces.strings
    # bytes too, and the pipe config still names the (now unused) checkpoint
    again = make_nlp("/nonexistent/folder").from_bytes(nlp.to_bytes())
    assert predictions(again, texts)[0] == expected
    assert loaded.config["components"]["transformer"]["model"]["pretrained"] == str(trained["checkpoint"])


def test_replace_listeners(trained, tmp_path):
    nlp = trained["nlp"]
    nlp.to_disk(tmp_path / "source")
    nlp = spacy.load(tmp_path / "source")
    texts = [text for text, _ in TRAIN]
    expected, _ = predictions(nlp, texts)
    nlp.replace_listeners("transformer", "tagger", ["model.tok2vec"])
    tagger_cfg = nlp.config["components"]["tagger"]["model"]["tok2vec"]
    assert tagger_cfg["@architectures"] == "spacy-luke.LukeTok2VecTransformer.v1"
    assert tagger_cfg["model"]["@architectures"] == LUKE
    assert nlp.get_pipe("transformer").listening_components == ["ner"]
    assert predictions(nlp, texts)[0] == expected
    # The tagger owns a copy: updating the transformer for ner leaves the tagger's encoder alone.
    own = [n for n in nlp.get_pipe("tagger").model.walk() if n.name == "luke-transformer"]
    assert len(own) == 1 and own[0].shims[0].head_model is not nlp.get_pipe("transformer").model.shims[0].head_model
    nlp.to_disk(tmp_path / "replaced")
    reloaded = spacy.load(tmp_path / "replaced")
    assert predictions(reloaded, texts)[0] == expected


@pytest.mark.heavy
def test_spacy_train_fine_tunes_the_encoder(mlm_checkpoint, tmp_path):
    """The project config (plus a tagger) through `spacy train` on TRAIN overfits it."""
    from spacy.util import load_config

    nlp = spacy.blank("en")
    db = DocBin(store_user_data=True)
    for eg in make_examples(nlp):
        db.add(eg.reference)
    db.to_disk(tmp_path / "train.spacy")
    config = load_config(PROJECT_CONFIG)
    config["nlp"]["pipeline"] = ["transformer", "tagger", "ner"]
    config["components"]["tagger"] = {"factory": "tagger", "model": {"@architectures": "spacy.Tagger.v2", "tok2vec": dict(LISTENER)}}
    config["training"]["score_weights"] = {"ents_f": 0.5, "tag_acc": 0.5}
    config.to_disk(tmp_path / "config.cfg")
    overrides = {
        "paths.train": tmp_path / "train.spacy", "paths.dev": tmp_path / "train.spacy", "paths.encoder": mlm_checkpoint,
        "training.max_epochs": 0, "training.max_steps": 60, "training.eval_frequency": 60, "training.dropout": 0.0,
        "training.optimizer.learn_rate.warmup_steps": 1, "training.optimizer.learn_rate.total_steps": 1000,
        "training.optimizer.learn_rate.initial_rate": 0.002,
    }
    args = [sys.executable, "-m", "spacy", "train", str(tmp_path / "config.cfg"), "--output", str(tmp_path / "out")]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a tiny encoder: see one_torch_thread
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    trained_nlp = spacy.load(tmp_path / "out" / "model-last")
    assert trained_nlp.pipe_names == ["transformer", "tagger", "ner"]
    scores = trained_nlp.evaluate(make_examples(trained_nlp))
    assert scores["tag_acc"] == 1.0 and scores["ents_f"] == 1.0, scores


def test_project_config_resolves_without_reading_the_encoder():
    from spacy.util import load_config, load_model_from_config

    config = load_config(PROJECT_CONFIG, overrides={"paths.encoder": "/not/there/luke-minilm"})
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "ner"]
    assert nlp.get_pipe("transformer").model.attrs["pretrained"] == "/not/there/luke-minilm"
    assert not nlp.get_pipe("transformer").model.shims[0].is_loaded


# ---------------------------------------------------------------------- without spacy-transformers


@pytest.mark.heavy  # a Python subprocess
def test_package_and_pipes_work_without_spacy_transformers(ner_checkpoint):
    code = f"""
import importlib.metadata as md, sys
import catalogue
# As if spacy-transformers were not installed: no module, no entry points.
sys.modules["spacy_transformers"] = None
eps = catalogue.AVAILABLE_ENTRY_POINTS
flat = [ep for group in eps.values() for ep in group] if isinstance(eps, dict) else list(eps)
catalogue.AVAILABLE_ENTRY_POINTS = md.EntryPoints(ep for ep in flat if not ep.value.startswith("spacy_transformers"))
import spacy, spacy_luke, spacy_luke.pipeline, spacy_luke.trf
from spacy.util import registry
build = registry.architectures.get("spacy-luke.LukeTransformerModel.v1")
try:
    build(pretrained="x")
except ImportError as err:
    assert "spacy-luke[transformers]" in str(err), err
else:
    raise SystemExit("no ImportError")
nlp = spacy.blank("en")
nlp.add_pipe("luke_ner", config={{"pretrained": {str(ner_checkpoint)!r}, "max_mention_length": 4}})
doc = nlp("Tokyo is the capital of Japan .")
print("ok", len(doc), sorted(m for m in sys.modules if m.startswith("spacy_transformers")))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok 7 ['spacy_transformers']", result.stdout  # the None placeholder only


@pytest.mark.heavy  # a Python subprocess
def test_importing_the_integration_is_light():
    """spaCy may load every registered architecture: ours must not pull spacy-transformers in."""
    code = "import sys, spacy_luke.trf; print(sorted(m for m in ('spacy_transformers', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_weights_written_while_a_graph_is_open_are_counted_once_each_when_it_closes(monkeypatch):
    """The shim keeps the parameters themselves (not their id()) until it counts their writes."""
    from thinc.api import PyTorchShim

    from spacy_luke.trf.shim import LukeEncoderShim

    monkeypatch.setattr(PyTorchShim, "finish_update", lambda self, optimizer: None)  # the write itself: not the point
    shim = LukeEncoderShim()
    shim._model = torch.nn.Linear(2, 2)
    weight, bias = shim._model.weight, shim._model.bias
    shim._model(torch.ones(1, 2)).sum().backward()
    before = (weight._version, bias._version)
    shim._graph_open = True  # the transformer pipe's update, its listeners' backward pass still to come
    shim.finish_update(None)
    shim.finish_update(None)  # twice before the graph closes
    assert (weight._version, bias._version) == before and list(shim._written) == [weight, bias]
    shim._graph_open = False
    shim._count_writes()
    assert (weight._version, bias._version) == (before[0] + 1, before[1] + 1) and not shim._written
