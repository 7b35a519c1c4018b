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

