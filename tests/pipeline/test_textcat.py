"""luke_textcat: logits equal to transformers' LukeForSequenceClassification (LUKE and mLUKE), long
docs as the mean of their windows, doc.cats single- and multi-label, learning, saving, precisions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.training import Example

from support.checkpoints import randomize
from spacy_luke.layers import padded_batches
from spacy_luke.layers.windows import sliding_windows
from support.tokenizers import build_luke_dir, build_mluke_dir, make_sentences

LABELS = {0: "sports", 1: "politics", 2: "science"}
TEXTS = make_sentences(40, seed=11)


def build_textcat_checkpoint(root: Path, *, mluke: bool = False, multi: bool = False, positions: int = 130) -> Path:
    folder = root / f"{'mluke' if mluke else 'luke'}-textcat-{'multi' if multi else 'single'}-{positions}"
    if folder.exists():
        return folder
    tokenizer_dir = build_mluke_dir(root / "tokenizer-src") if mluke else build_luke_dir(root / "tokenizer-src")
    shutil.copytree(tokenizer_dir, folder)
    hf_tok = (transformers.MLukeTokenizer if mluke else transformers.LukeTokenizer).from_pretrained(folder)
    entity_vocab = json.loads((folder / "entity_vocab.json").read_text(encoding="utf8"))
    config = transformers.LukeConfig(
        vocab_size=len(hf_tok), entity_vocab_size=max(entity_vocab.values()) + 1, hidden_size=32, entity_emb_size=16,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=positions,
        type_vocab_size=1, layer_norm_eps=1e-5, id2label=LABELS,
        problem_type="multi_label_classification" if multi else "single_label_classification",
    )
    torch.manual_seed(3)
    model = transformers.LukeForSequenceClassification(config).eval()
    randomize(model, 3)
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("textcat")


def reference_logits(folder: Path, input_ids) -> np.ndarray:
    model = transformers.LukeForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids]), attention_mask=torch.ones(1, len(input_ids), dtype=torch.long)).logits[0].numpy()


def make_nlp(folder: Path, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_textcat", config={"pretrained": str(folder), **config})
    return nlp


@pytest.mark.parametrize("mluke", [False, True], ids=["luke", "mluke"])
def test_logits_equal_transformers(root, mluke):
    folder = build_textcat_checkpoint(root, mluke=mluke)
    nlp = make_nlp(folder)
    pipe = nlp.get_pipe("luke_textcat")
    hf_tok = (transformers.MLukeTokenizer if mluke else transformers.LukeTokenizer).from_pretrained(folder)
    docs = [nlp.make_doc(text) for text in TEXTS[:16]]
    scores = pipe.predict(docs)
    worst, compared = 0.0, 0
    for doc, doc_scores in zip(docs, scores):
        assert doc_scores.scored.tolist() == [True]
        ((_, padded),) = padded_batches(pipe.model, *pipe.model_input([doc]))
        ours = padded["input_ids"][0].tolist()
        # The pipe reads spaCy's tokens, so a word that spaCy splits where the word tokenizer does
        # not (don't -> do n't) has other pieces than the text: those docs are compared on the
        # pipe's own pieces, the others on transformers' tokenizer's.
        text_ids = hf_tok(doc.text)["input_ids"]
        compared += ours == text_ids
        expected = reference_logits(folder, text_ids if "'" not in doc.text else ours)
        if "'" not in doc.text:
            assert ours == text_ids
        worst = max(worst, float(np.abs(doc_scores.values[0] - expected).max()))
    assert worst < 1e-4, worst
    assert compared >= 10


def test_cats_single_and_multi_label(root):
    single = make_nlp(build_textcat_checkpoint(root))
    multi = make_nlp(build_textcat_checkpoint(root, multi=True))
    assert not single.get_pipe("luke_textcat").multi_label and multi.get_pipe("luke_textcat").multi_label
    for doc in single.pipe(TEXTS[:8]):
        assert set(doc.cats) == set(LABELS.values()) and sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-6)
    for doc in multi.pipe(TEXTS[:8]):
        assert set(doc.cats) == set(LABELS.values()) and all(0.0 <= p <= 1.0 for p in doc.cats.values())
    forced = make_nlp(build_textcat_checkpoint(root), multi_label=True)
    doc = forced(TEXTS[0])
    assert abs(sum(doc.cats.values()) - 1.0) > 1e-3  # sigmoid per label now
    empty = single("")
    assert empty.cats == {}


def test_a_long_doc_is_the_mean_of_its_windows(root):
    folder = build_textcat_checkpoint(root, positions=24)  # a window of 24 - 2 - 2 = 20 word pieces
    nlp = make_nlp(folder)
    pipe = nlp.get_pipe("luke_textcat")
    doc = nlp.make_doc(" ".join(TEXTS[:4]))
    pieces = pipe.doc_encoder.encode_tokens([t.text for t in doc], [t.whitespace_ for t in doc])
    budget = pipe._word_budget()
    assert len(pieces.ids) > 2 * budget
    windows = sliding_windows(pieces.starts, pieces.ends, (0, len(doc)), budget)
    tok = pipe.tokenizer
    expected = np.mean(
        [reference_logits(folder, [tok.cls_token_id] + pieces.ids[pieces.starts[s]: pieces.ends[e - 1]].tolist() + [tok.sep_token_id])
         for s, e in windows],
        axis=0,
    )
    (scores,) = pipe.predict([doc])
    np.testing.assert_allclose(scores.values[0], expected, atol=1e-4)


def examples(nlp, multi: bool):
    egs = []
    for i, text in enumerate(TEXTS[:12]):
        doc = nlp.make_doc(text)
        gold = {label: 0.0 for label in LABELS.values()}
        gold[list(LABELS.values())[i % 3]] = 1.0
        if multi and i % 2:
            gold["science"] = 1.0
        egs.append(Example.from_dict(doc, {"cats": gold}))
    return egs


@pytest.mark.heavy  # training, then to_disk / spacy.load: 10-45 s each
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_learns_and_round_trips(root, tmp_path, multi):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("luke_textcat", config={"pretrained": str(build_textcat_checkpoint(root)), "multi_label": multi})
    egs = examples(nlp, multi)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 5e-3
    assert pipe.labels == tuple(LABELS.values())
    first = None
    for _ in range(40):
        losses = nlp.update(egs, sgd=optimizer)
        first = losses["luke_textcat"] if first is None else first
    assert losses["luke_textcat"] < 0.2 * first
    scores = nlp.evaluate(egs)
    assert scores["cats_score"] > 0.9, scores
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    for a, b in zip(nlp.pipe(TEXTS[:12]), loaded.pipe(TEXTS[:12])):
        assert a.cats == b.cats


@pytest.mark.filterwarnings("ignore:precision=")
@pytest.mark.parametrize("precision", ["bfloat16", "float16", "int8"])
def test_precisions_agree_with_float32(root, precision):
    folder = build_textcat_checkpoint(root)
    reference = [doc.cats for doc in make_nlp(folder).pipe(TEXTS)]
    got = [doc.cats for doc in make_nlp(folder, precision=precision).pipe(TEXTS)]
    same = sum(max(a, key=a.get) == max(b, key=b.get) for a, b in zip(reference, got))
    assert same >= 0.9 * len(TEXTS)
    assert max(abs(a[k] - b[k]) for a, b in zip(reference, got) for k in a) < 0.1


def test_annotate_writes_the_cats(root, tmp_path):
    from spacy_luke.annotate import annotate

    nlp = make_nlp(build_textcat_checkpoint(root))
    nlp.to_disk(tmp_path / "pipeline")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS[:6]) + "\n", encoding="utf8")
    annotate(str(tmp_path / "pipeline"), [str(tmp_path / "in.txt")], str(tmp_path / "out"), progress=False)
    records = [json.loads(line) for line in (tmp_path / "out" / "part-00000.jsonl").read_text("utf8").splitlines()]
    expected = [doc.cats for doc in nlp.pipe(TEXTS[:6])]
    assert [r["cats"] for r in records] == [pytest.approx(cats) for cats in expected]


TRAIN_CONFIG = """
[paths]
train = null
dev = null
checkpoint = null

[nlp]
lang = "en"
pipeline = ["luke_textcat"]
batch_size = 4

[components]

[components.luke_textcat]
factory = "luke_textcat"
pretrained = ${paths.checkpoint}

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
max_steps = 40
eval_frequency = 20
patience = 0
dropout = 0.0

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.005

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 4

[initialize]
"""


@pytest.mark.heavy  # runs `spacy train` and `spacy evaluate` in subprocesses
def test_spacy_train_and_evaluate(root, tmp_path):
    import subprocess
    import sys

    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    corpus = DocBin()
    for eg in examples(nlp, multi=False):
        doc = eg.reference
        corpus.add(doc)
    corpus.to_disk(tmp_path / "train.spacy")
    (tmp_path / "config.cfg").write_text(TRAIN_CONFIG)
    subprocess.run([sys.executable, "-m", "spacy", "init", "fill-config", str(tmp_path / "config.cfg"), str(tmp_path / "full.cfg")],
                   check=True, capture_output=True)
    full = (tmp_path / "full.cfg").read_text()
    assert "spacy-luke.SequenceClassifier.v1" in full and "spacy-luke.textcat_scorer.v1" in full
    train = tmp_path / "train.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(tmp_path / "full.cfg"), "--output", str(tmp_path / "out"),
         "--paths.train", str(train), "--paths.dev", str(train), "--paths.checkpoint", str(build_textcat_checkpoint(root))],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "out" / "model-last"), str(train), "--output", str(tmp_path / "scores.json")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["cats_score"] > 0.8, scores
    trained = spacy.load(tmp_path / "out" / "model-last")
    assert trained.get_pipe("luke_textcat").labels == tuple(LABELS.values())


# ------------------------------------------------------------------ the ONNX Runtime engine and export


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_onnxruntime_engine_gives_the_torch_cats(root, multi):
    """engine='onnxruntime': doc.cats as torch gives them (float32 to 1e-4), for long docs too (the
    mean of the windows' probabilities); int8 close to them."""
    folder = build_textcat_checkpoint(root, multi=multi, positions=40)
    texts = TEXTS[:16] + [" ".join(TEXTS[:6])]  # the last one is longer than the window
    reference = [doc.cats for doc in make_nlp(folder).pipe(texts)]
    onnx = [doc.cats for doc in make_nlp(folder, engine="onnxruntime").pipe(texts)]
    assert [a.keys() for a in onnx] == [b.keys() for b in reference]
    assert max(abs(a[k] - b[k]) for a, b in zip(onnx, reference) for k in a) <= 1e-4
    int8 = [doc.cats for doc in make_nlp(folder, engine="onnxruntime", precision="int8").pipe(texts)]
    assert max(abs(a[k] - b[k]) for a, b in zip(int8, reference) for k in a) < 0.1


def test_export_onnx_textcat_equals_transformers(root, tmp_path, capsys):
    """`export-onnx --head textcat`: the exported graph's logits equal transformers'
    LukeForSequenceClassification on the same weights, and a saved pipeline's textcat exports too."""
    from spacy_luke.cli import main
    from spacy_luke.export import OnnxRunner

    folder = build_textcat_checkpoint(root)
    out = tmp_path / "onnx"
    assert main(["export-onnx", str(folder), str(out), "--head", "textcat"]) == 0
    assert "Wrote LukeForSequenceClassification as ONNX" in capsys.readouterr().err
    runner = OnnxRunner.from_folder(out)
    assert runner.input_names == ("input_ids", "attention_mask")
    hf_tok = transformers.LukeTokenizer.from_pretrained(folder)
    for text in TEXTS[:5]:
        ids = hf_tok(text)["input_ids"]
        got = runner.predict({"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)))})[0]
        np.testing.assert_allclose(got, reference_logits(folder, ids), atol=1e-4)

    nlp = make_nlp(folder)
    nlp.to_disk(tmp_path / "pipeline")
    assert main(["export-onnx", str(tmp_path / "pipeline"), str(tmp_path / "from-pipeline")]) == 0
    assert OnnxRunner.from_folder(tmp_path / "from-pipeline").head == "LukeForSequenceClassification"
