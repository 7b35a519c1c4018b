"""luke_entity_linker training: overfitting a few docs, learning context, spacy train, scores."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import Span
from spacy.training import Example


OVERFIT = [
    ("Paris is a small town near Dallas .", [(0, 1, "LOC", "Paris, Texas")]),
    ("Georgia borders Florida and Alabama .", [(0, 1, "LOC", "Georgia (U.S. state)")]),
    ("Paris took Helen to Troy .", [(0, 1, "PER", "Paris (mythology)"), (4, 5, "LOC", "")]),
    ("Jaguar sells cars in Tokyo .", [(0, 1, "ORG", "Jaguar Cars"), (4, 5, "LOC", "Tokyo")]),
]


@pytest.fixture
def aliases(tmp_path):
    """"Jaguar" names both Jaguars (title matching alone finds only "Jaguar (animal)")."""
    path = tmp_path / "aliases.tsv"
    path.write_text("Jaguar\tJaguar Cars\t5\nJaguar\tJaguar (animal)\t5\n", encoding="utf8")
    return str(path)


def make_linker(folder, aliases, **config):
    nlp = spacy.blank("en")
    candidates = {"@misc": "spacy-luke.TitleCandidates.v1", "aliases": aliases}
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(folder), "entity_candidates": candidates, **config})
    return nlp


def make_examples(nlp, data):
    examples = []
    for text, ents in data:
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label=label, kb_id=kb) for s, e, label, kb in ents]
        predicted = nlp.make_doc(text)
        predicted.ents = [Span(predicted, s, e, label=label) for s, e, label, _ in ents]
        examples.append(Example(predicted, reference))
    return examples


def linked(nlp, examples):
    return [[e.kb_id_ for e in nlp(eg.predicted.copy()).ents] for eg in examples]


def gold(examples):
    return [[e.kb_id_ for e in eg.reference.ents] for eg in examples]


def train(nlp, examples, epochs, batch_size=4, seed=0, learn_rate=5e-3):
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = learn_rate
    rng = random.Random(seed)
    losses = []
    for _ in range(epochs):
        order = list(examples)
        rng.shuffle(order)
        epoch = {}
        for i in range(0, len(order), batch_size):
            nlp.update(order[i : i + batch_size], sgd=optimizer, losses=epoch)
        losses.append(epoch["luke_entity_linker"])
    return losses


@pytest.mark.heavy  # 40 training epochs: 7-10 s each
@pytest.mark.parametrize("decoding", ["local", "global"])
def test_overfits_a_handful_of_docs(linker_checkpoint, aliases, decoding):
    nlp = make_linker(linker_checkpoint, aliases, decoding=decoding, incl_prior=False)
    examples = make_examples(nlp, OVERFIT)
    assert len(nlp.get_pipe("luke_entity_linker")._items([examples[3].predicted])[0].candidates[0]) == 2
    losses = train(nlp, examples, epochs=40)
    assert losses[-1] < 0.1 * losses[0], losses
    # "Troy" has no gold kb_id and no candidate: it stays NIL ("")
    assert linked(nlp, examples) == gold(examples)


CAR_WORDS = ["engine", "drove", "road", "dealer", "wheels", "motor", "speed", "garage", "fuel", "brakes", "racing", "driver"]
ANIMAL_WORDS = ["jungle", "hunted", "prey", "forest", "teeth", "zoo", "cubs", "river", "claws", "spots", "wild", "fur"]
TEMPLATES = ["The Jaguar had {a} and {b} .", "A Jaguar with {a} , {b} and {c} .", "We saw the Jaguar near {a} and {b} ."]


def context_data(n, seed):
    rng = random.Random(seed)
    data = []
    for k in range(n):
        words, title = (CAR_WORDS, "Jaguar Cars") if k % 2 == 0 else (ANIMAL_WORDS, "Jaguar (animal)")
        a, b, c = rng.sample(words, 3)
        text = rng.choice(TEMPLATES).format(a=a, b=b, c=c)
        start = text.split(" ").index("Jaguar")
        data.append((text, [(start, start + 1, "MISC", title)]))
    return data


@pytest.mark.heavy  # 8 epochs over 48 docs: 14 s
def test_context_tells_an_ambiguous_name_apart(linker_checkpoint, aliases):
    """One name, two titles: the training contexts tell them apart, and held-out texts of the same
    kinds link to the right title well above chance (1/2)."""
    nlp = make_linker(linker_checkpoint, aliases)
    train_examples = make_examples(nlp, context_data(48, seed=0))
    held_out = make_examples(nlp, context_data(40, seed=1))
    train(nlp, train_examples, epochs=8, batch_size=8)
    predicted = linked(nlp, held_out)
    right = sum(p == g for p, g in zip(predicted, gold(held_out)))
    assert right / len(held_out) >= 0.85, (right, predicted)


@pytest.mark.heavy  # 40 training epochs: 35 s
def test_scorer_gives_nel_prf(linker_checkpoint, aliases):
    nlp = make_linker(linker_checkpoint, aliases, incl_prior=False)
    examples = make_examples(nlp, OVERFIT)
    train(nlp, examples, epochs=40)
    scores = nlp.evaluate(examples)
    assert scores["nel_micro_f"] == pytest.approx(1.0) and scores["nel_micro_p"] == pytest.approx(1.0)


CONFIG = """
[paths]
train = null
dev = null
checkpoint = null
aliases = null

[nlp]
lang = "en"
pipeline = ["luke_entity_linker"]
batch_size = 8

[components]

[components.luke_entity_linker]
factory = "luke_entity_linker"
incl_prior = false

[components.luke_entity_linker.entity_candidates]
@misc = "spacy-luke.TitleCandidates.v1"
aliases = ${paths.aliases}

[corpora]

[corpora.train]
@readers = "spacy-luke.JsonlCorpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy-luke.JsonlCorpus.v1"
path = ${paths.dev}

[training]
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
max_epochs = 40
max_steps = 0
eval_frequency = 20
patience = 0
seed = 0

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.005

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 4

[training.score_weights]
nel_micro_f = 1.0

[initialize]

[initialize.components]

[initialize.components.luke_entity_linker]

[initialize.components.luke_entity_linker.loader]
@misc = "spacy-luke.HFLukeLoader.v1"
name_or_path = ${paths.checkpoint}
"""


@pytest.mark.heavy  # runs `spacy train` in a subprocess
def test_spacy_train_from_config(linker_checkpoint, aliases, tmp_path):
    records = []
    for text, ents in OVERFIT:
        nlp = spacy.blank("en")
        doc = nlp.make_doc(text)
        records.append({"text": text, "entities": [
            {"start": doc[s].idx, "end": doc[e - 1].idx + len(doc[e - 1]), "label": label, "kb_id": kb} for s, e, label, kb in ents
        ]})
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    (tmp_path / "config.cfg").write_text(CONFIG, encoding="utf8")
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "fill-config", str(tmp_path / "config.cfg"), str(tmp_path / "full.cfg")],
        check=True, capture_output=True,
    )
    assert "spacy-luke.EntityDisambiguator.v1" in (tmp_path / "full.cfg").read_text()
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(tmp_path / "full.cfg"), "--output", str(out),
         "--paths.train", str(data), "--paths.dev", str(data), "--paths.checkpoint", str(linker_checkpoint),
         "--paths.aliases", aliases],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    nlp = spacy.load(out / "model-last")
    meta = json.loads((out / "model-last" / "meta.json").read_text())
    assert meta["performance"]["nel_micro_f"] >= 0.99, meta["performance"]
    examples = make_examples(nlp, OVERFIT)
    assert linked(nlp, examples) == gold(examples)
