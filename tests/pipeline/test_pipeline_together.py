"""The README's pipeline: luke_ner + luke_entity_typer + luke_relation_extractor in one nlp."""
import spacy

import spacy_luke
from support.ner import PARITY_TEXTS


def test_ner_typer_relations_together(ner_checkpoint, typer_checkpoint, relation_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint)})
    docs = list(nlp.pipe(PARITY_TEXTS[:10]))
    n_ents = sum(len(doc.ents) for doc in docs)
    assert n_ents > 0
    for doc in docs:
        for ent in doc.ents:  # every predicted entity is typed
            assert isinstance(ent._.luke_types, dict)
        for head, tail, label, score in spacy_luke.get_relations(doc):
            assert head in list(doc.ents) and tail in list(doc.ents) and head != tail
            assert 0.0 <= score <= 1.0 and label
        assert [r["head"] for r in doc._.luke_relations] == sorted(r["head"] for r in doc._.luke_relations)
    assert any(doc._.luke_relations for doc in docs)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    again = list(loaded.pipe(PARITY_TEXTS[:10]))
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in again] == [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]
    assert [[(r["head"], r["tail"], r["label"]) for r in d._.luke_relations] for d in again] == [
        [(r["head"], r["tail"], r["label"]) for r in d._.luke_relations] for d in docs
    ]
