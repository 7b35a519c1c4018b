"""Docs with entities for the typer, relation, vector and export tests: whitespace-tokenized texts and
deterministic non-overlapping spans, and a rule component (``test_capitalized_ents``) that marks
entities for the n_process tests."""
from __future__ import annotations

import numpy as np
import spacy
from spacy.tokens import Span

from support.tokenizers import make_sentences

def _whitespace_tokenized(text):
    # spaCy splits "don't" into "do" + "n't" with no space; the BPE on the joined text does not
    # (a known limit of encoding token by token), so the parity texts avoid glued tokens.
    doc = spacy.blank("en").make_doc(text)
    return all(t.whitespace_ for t in doc[:-1])


TEXTS = [t for t in make_sentences(300, seed=11) if 5 <= len(t.split()) <= 14 and _whitespace_tokenized(t)][:40]


def spans_for(doc, seed):
    """Deterministic non-overlapping 1-3 token spans, not on whitespace."""
    rng = np.random.default_rng(seed)
    spans, i = [], int(rng.integers(0, 2))
    while i < len(doc):
        width = int(rng.integers(1, 4))
        if i + width <= len(doc) and not doc[i].is_space and not doc[i + width - 1].is_space:
            spans.append(Span(doc, i, i + width, label="ENT"))
        i += width + int(rng.integers(1, 3))
    return spans


def make_docs(nlp, texts=TEXTS):
    docs = []
    for k, text in enumerate(texts):
        doc = nlp.make_doc(text)
        doc.ents = spans_for(doc, k)
        docs.append(doc)
    return docs


@spacy.Language.component("test_capitalized_ents")
def capitalized_ents(doc):
    """A tiny rule component marking every capitalized token as an entity (for n_process tests)."""
    doc.ents = [Span(doc, t.i, t.i + 1, label="X") for t in doc if t.text[:1].isupper()]
    return doc
