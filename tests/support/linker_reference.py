"""The linker tests' document (ambiguous names) and their reference: transformers' LukeForMaskedLM with a
softmax over the same candidates, and Yamada et al.'s global decoding written out."""
from __future__ import annotations

import numpy as np
import spacy
import torch
import transformers
from spacy.tokens import Span

TEXT = "Paris is in Georgia and Jaguar Cars is not in Tokyo ."
ENTS = [(0, 1, "LOC"), (3, 4, "LOC"), (5, 7, "ORG"), (10, 11, "LOC")]


def make_nlp(folder, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(folder), **config})
    return nlp


def make_doc(nlp, text=TEXT, ents=ENTS):
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    return doc


class Reference:
    """transformers' LukeForMaskedLM + softmax over the same candidates (titles), the same inputs."""

    def __init__(self, folder, mluke=False):
        cls = transformers.MLukeTokenizer if mluke else transformers.LukeTokenizer
        self.tokenizer = cls.from_pretrained(folder)
        self.model = transformers.LukeForMaskedLM.from_pretrained(folder).eval()
        self.vocab = self.tokenizer.entity_vocab

    def entity_logits(self, doc, entities):
        spans = [(e.start_char, e.end_char) for e in doc.ents]
        inputs = self.tokenizer(doc.text, entity_spans=spans, entities=entities, return_tensors="pt")
        with torch.no_grad():
            return self.model(**inputs).entity_logits[0].double().numpy()

    def probabilities(self, logits_row, titles, priors=None):
        z = np.array([logits_row[self.vocab[t]] for t in titles])
        p = np.exp(z - z.max())
        p /= p.sum()
        if priors is not None:
            p = p * np.asarray(priors)
            p /= p.sum()
        return p


def reference_global(reference, doc, candidates, max_passes=100):
    """Yamada et al. (2022): fix the most confident unresolved mention, feed its entity, repeat."""
    entities = ["[MASK]"] * len(doc.ents)
    resolved = {}
    unresolved = [i for i, c in enumerate(candidates) if c]
    for n_pass in range(max_passes):
        if not unresolved:
            break
        logits = reference.entity_logits(doc, entities)
        probs = {i: reference.probabilities(logits[i], [t for t, _ in candidates[i]], [p for _, p in candidates[i]]) for i in unresolved}
        if n_pass == max_passes - 1:
            chosen = list(unresolved)
        else:
            chosen = [max(unresolved, key=lambda i: probs[i].max())]
        for i in chosen:
            best = candidates[i][int(np.argmax(probs[i]))][0]
            resolved[i] = (best, probs[i])
            entities[i] = best
            unresolved.remove(i)
    return resolved
