"""Docs made by different vocabs in one batch: every LUKE pipe gives each doc what it gives it alone.

The second doc's vocab holds token strings that neither the first doc's vocab nor the pipeline's
has, so a pipe that reads token strings from one vocab for the whole batch cannot encode it.
"""
from __future__ import annotations

import numpy as np
import pytest
import spacy
from spacy.tokens import Span


FIRST = ("Paris is in Georgia and Jaguar Cars is not in Tokyo .", [(0, 1, "LOC"), (3, 4, "LOC"), (5, 7, "ORG"), (10, 11, "LOC")])
# "Quorvandix" and "Zembleforth" exist only in the second vocab
SECOND = ("Quorvandix visited Paris with Zembleforth from Tokyo .", [(0, 1, "PER"), (2, 3, "LOC"), (4, 5, "PER"), (6, 7, "LOC")])
ONLY_SECOND = ("Quorvandix", "Zembleforth")


def two_vocab_docs(with_ents=True):
    """Fresh docs of FIRST and SECOND, each made by its own ``spacy.blank("en")`` vocab."""
    docs = []
    for text, ents in (FIRST, SECOND):
        doc = spacy.blank("en").make_doc(text)
        if with_ents:
            doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
        docs.append(doc)
    return docs


def results(name, doc):
    if name == "luke_ner":
        return [(e.start, e.end, e.label_, round(e._.luke_score, 5)) for e in doc.ents]
    if name == "luke_entity_typer":
        return [sorted((label, round(p, 5)) for label, p in e._.luke_types.items()) for e in doc.ents]
    if name == "luke_relation_extractor":
        return [(r["head"], r["tail"], r["label"], round(r["score"], 5)) for r in doc._.luke_relations]
    if name == "luke_entity_vectors":
        return [np.round(e._.luke_vector, 5).tolist() for e in doc.ents]
    return [(e.kb_id_, [(kb, round(p, 5)) for kb, p in e._.luke_kb_scores]) for e in doc.ents]


PIPES = {
    "luke_ner": ("ner_checkpoint", {"max_mention_length": 4}),
    "luke_entity_typer": ("typer_checkpoint", {}),
    "luke_relation_extractor": ("relation_checkpoint", {"threshold": 0.0, "negative_label": "none"}),
    "luke_entity_vectors": ("encoder_checkpoint", {}),
    "luke_entity_linker": ("linker_checkpoint", {}),
}


@pytest.mark.filterwarnings("ignore:.*lack the negative label:UserWarning")
@pytest.mark.parametrize("name", list(PIPES))
def test_docs_of_two_vocabs_in_one_batch_match_each_doc_alone(name, request):
    fixture, config = PIPES[name]
    nlp = spacy.blank("en")
    nlp.add_pipe(name, config={"pretrained": str(request.getfixturevalue(fixture)), **config})
    with_ents = name != "luke_ner"  # luke_ner finds its own
    docs = two_vocab_docs(with_ents)
    assert docs[0].vocab is not docs[1].vocab
    assert all(w in docs[1].vocab.strings and w not in docs[0].vocab.strings and w not in nlp.vocab.strings for w in ONLY_SECOND)
    # the batch first: the pipe's piece cache has seen none of the second doc's tokens yet
    batched = [results(name, doc) for doc in nlp.pipe(docs, batch_size=2)]
    alone = [results(name, next(nlp.pipe([doc]))) for doc in two_vocab_docs(with_ents)]
    assert batched == alone
    assert all(batched), batched  # every doc got annotations
