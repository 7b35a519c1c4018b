"""luke_ner's test material: the reference procedure (transformers' tokenizer + span classifier +
greedy decoding), the parity texts, a few training examples and one tokenized span batch."""
from __future__ import annotations

import numpy as np
import spacy
import torch
import transformers
from spacy.tokens import Span
from spacy.training import Example

from spacy_luke.tokenization import load_tokenizer
from support.tokenizers import make_sentences

MAX_LEN = 8


def reference_entities(folder, texts, max_mention_length=MAX_LEN):
    """The reference procedure: transformers' tokenizer + span classifier + greedy decoding.

    Candidates: every span of up to max_mention_length spaCy tokens; one pass per sentence.
    Returns, per text, sorted (start_char, end_char, label).
    """
    tokenizer = transformers.LukeTokenizer.from_pretrained(folder, task="entity_span_classification")
    model = transformers.LukeForEntitySpanClassification.from_pretrained(folder).eval()
    nlp = spacy.blank("en")
    out = []
    for text in texts:
        doc = nlp(text)
        spans = [(i, j) for i in range(len(doc)) for j in range(i + 1, min(len(doc), i + max_mention_length) + 1)]
        char_spans = [(doc[i].idx, doc[j - 1].idx + len(doc[j - 1])) for i, j in spans]
        inputs = tokenizer(text, entity_spans=char_spans, max_entity_length=len(spans), return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0].numpy()
        best = logits.argmax(-1)
        nil = [i for i, label in model.config.id2label.items() if label in ("O", "NIL")][0]
        candidates = [(logits[k, best[k]], k) for k in range(len(spans)) if best[k] != nil]
        candidates.sort(key=lambda x: -x[0])
        used = np.zeros(len(doc), dtype=bool)
        ents = []
        for _, k in candidates:
            i, j = spans[k]
            if not used[i:j].any():
                used[i:j] = True
                ents.append((char_spans[k][0], char_spans[k][1], model.config.id2label[int(best[k])]))
        out.append(sorted(ents))
    return out


def make_nlp(folder, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(folder), "max_mention_length": MAX_LEN, **config})
    return nlp


def doc_entities(doc):
    return sorted((e.start_char, e.end_char, e.label_) for e in doc.ents)


PARITY_TEXTS = [t for t in make_sentences(120, seed=3) if 4 <= len(t.split()) <= 14][:60]


TRAIN = [
    ("Steve Jobs founded Apple in California .", [(0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC")]),
    ("Beyoncé was born in Houston , Texas .", [(0, 1, "PER"), (4, 5, "LOC"), (6, 7, "LOC")]),
    ("The New York Times is a company .", [(1, 4, "ORG")]),
    ("Tokyo is the capital of Japan .", [(0, 1, "LOC"), (5, 6, "LOC")]),
]


def make_examples(nlp):
    examples = []
    for text, ents in TRAIN:
        predicted = nlp.make_doc(text)
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label=label) for s, e, label in ents]
        examples.append(Example(predicted, reference))
    return examples


def span_batch(folder):
    """The sentence "Tokyo is in Japan ." with its two names as candidate spans, tokenized for the span classifier (int64)."""
    tokenizer = load_tokenizer(folder, task="entity_span_classification")
    encoded = tokenizer(["Tokyo is in Japan ."], entity_spans=[[(0, 5), (12, 17)]], return_tensors="np")
    return {key: np.asarray(value, dtype="int64") for key, value in encoded.items()}


# A `spacy train` config for luke_ner (paths.train / paths.dev / paths.checkpoint set on the command line).
TRAIN_CONFIG = """
[paths]
train = null
dev = null
checkpoint = null

[nlp]
lang = "en"
pipeline = ["luke_ner"]
batch_size = 4

[components]

[components.luke_ner]
factory = "luke_ner"
max_mention_length = 4

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
learn_rate = 0.003

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 4

[initialize]

[initialize.components]

[initialize.components.luke_ner]

[initialize.components.luke_ner.loader]
@misc = "spacy-luke.HFLukeLoader.v1"
name_or_path = ${paths.checkpoint}
"""



def spacy_train(config: str, checkpoint, folder):
    """``spacy init fill-config`` then ``spacy train`` of ``config`` (a TRAIN_CONFIG-like text) on the
    TRAIN examples, in subprocesses, in ``folder``; returns (the filled config's text, the trained
    pipeline). Fails the test with spacy train's stderr when it fails."""
    import subprocess
    import sys
    from pathlib import Path

    from spacy.tokens import DocBin

    folder = Path(folder)
    DocBin(docs=[eg.reference for eg in make_examples(spacy.blank("en"))]).to_disk(folder / "train.spacy")
    (folder / "config.cfg").write_text(config)
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "fill-config", str(folder / "config.cfg"), str(folder / "full.cfg")],
        check=True, capture_output=True,
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(folder / "full.cfg"), "--output", str(folder / "out"),
            "--paths.train", str(folder / "train.spacy"), "--paths.dev", str(folder / "train.spacy"),
            "--paths.checkpoint", str(checkpoint),
        ],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return (folder / "full.cfg").read_text(), spacy.load(folder / "out" / "model-last")


def train_ner(checkpoint, steps: int, seed=None, **settings):
    """luke_ner (max_mention_length 4, ``settings``) fine-tuned from ``checkpoint`` on the TRAIN
    examples for ``steps`` updates at learning rate 3e-3 (``seed``: torch's seed first, for the new
    head's weights and dropout); returns (nlp, the pipe, each update's (loss, pruner loss))."""
    if seed is not None:
        torch.manual_seed(seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(checkpoint), "max_mention_length": 4, **settings})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 3e-3
    losses = []
    for _ in range(steps):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append((step["luke_ner"], step.get("luke_ner_pruner")))
    return nlp, ner, losses
