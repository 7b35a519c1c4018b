"""The pipeline of ``make_data.py`` and ``tests/pipeline/test_saved_pipelines.py``: how it is built, the texts
it annotates and what of its annotations is compared (kept as it was when the data was written)."""
from pathlib import Path
from typing import Dict

import spacy

from support.linker import build_linker_checkpoint
from support.pipes import NER_LABELS, RELATION_LABELS, TYPE_LABELS, build_checkpoint
from support.tokenizers import make_sentences

TEXTS = [t for t in make_sentences(60, seed=21) if 4 <= len(t.split()) <= 16][:12]


def build_checkpoints(root: Path) -> Dict[str, Path]:
    return {
        "ner": build_checkpoint(root, "ner", "LukeForEntitySpanClassification", NER_LABELS),
        "typer": build_checkpoint(root, "typer", "LukeForEntityClassification", TYPE_LABELS, seed=1),
        "relations": build_checkpoint(root, "relations", "LukeForEntityPairClassification", RELATION_LABELS, seed=3),
        "encoder": build_checkpoint(root, "encoder", "LukeModel", {0: "LABEL_0", 1: "LABEL_1"}, seed=4),
        "linker": build_linker_checkpoint(root),
    }


def build_pipeline(checkpoints: Dict[str, Path]):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("luke_ner", config={"pretrained": str(checkpoints["ner"]), "max_mention_length": 4})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(checkpoints["typer"])})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(checkpoints["relations"])})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(checkpoints["encoder"])})
    nlp.add_pipe("luke_entity_linker", config={"pretrained": str(checkpoints["linker"]), "decoding": "global",
                                               "candidates": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 3}})
    nlp.initialize()
    return nlp


def annotations(doc) -> dict:
    """What every pipe wrote, scores rounded to 4 decimals, vectors to 3 (their first 4 values)."""
    return {
        "ents": [[e.start, e.end, e.label_, round(e._.luke_score, 4), e.kb_id_, [[k, round(p, 4)] for k, p in (e._.luke_kb_scores or [])],
                  {t: round(p, 4) for t, p in (e._.luke_types or {}).items()},
                  [round(float(v), 3) for v in (e._.luke_vector if e._.luke_vector is not None else [])][:4]]
                 for e in doc.ents],
        "relations": [[r["head"], r["tail"], r["label"], round(r["score"], 4)] for r in doc._.luke_relations],
    }
