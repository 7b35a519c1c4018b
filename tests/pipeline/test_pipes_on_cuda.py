"""Every pipe on a CUDA GPU, in every precision and engine that runs there, against the CPU float32
results of the same weights: the same decisions (entities, types, relations, kb ids, categories),
scores within a stated tolerance per precision; a few training steps on CUDA; ``spacy.require_gpu()``.

The checkpoints have random weights, so they make close calls that 16-bit rounding can flip (and
luke_ner's greedy decoding then differs downstream): in float32 every doc's decisions are the CPU's;
in 16 bits at least :data:`AGREEMENT` of the docs' (a flip on the CPU's bfloat16 here too), and the
scores of the docs that agree are within :data:`TOLERANCE`.

Marked ``gpu``: skipped where torch sees no CUDA device (``benchmarks/gpu_check.sh`` runs them).
"""
from __future__ import annotations

import numpy as np
import pytest
import spacy
import torch

from spacy_luke.annotate.device import apply_device, plan_for_this_machine
from spacy_luke.layers.engines import engine_names, get_engine
from spacy_luke.model.views.precision import get_precision, precision_names
from support.entity_docs import TEXTS, make_docs
from support.ner import MAX_LEN, PARITY_TEXTS, make_examples
from support.pipes import build_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is false)"),
]

#: The precisions and engines that run on CUDA, from their registries.
CUDA_PRECISIONS = [name for name in precision_names() if get_precision(name).runs_on("cuda")]
CUDA_ENGINES = [name for name in engine_names() if get_engine(name).devices is None or "cuda" in get_engine(name).devices]
#: Largest difference of a probability (or score) from the CPU float32 one, per precision.
TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 6e-2}
#: Smallest cosine similarity of an entity vector with the CPU float32 one, per precision.
MIN_COSINE = {"float32": 1 - 1e-6, "float16": 1 - 1e-3, "bfloat16": 1 - 1e-2}
#: Smallest share of the docs whose decisions are the CPU float32 ones, per precision.
AGREEMENT = {"float32": 1.0, "float16": 0.9, "bfloat16": 0.85}
PIPES = ("luke_ner", "luke_entity_typer", "luke_relation_extractor", "luke_entity_vectors", "luke_entity_linker", "luke_textcat")


@pytest.fixture(scope="module")
def pipelines(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint, linker_checkpoint, pipe_root, tmp_path_factory):
    """A saved pipeline per pipe (and the texts or Docs it takes)."""
    textcat = build_checkpoint(pipe_root, "cuda-textcat", "LukeForSequenceClassification", {0: "POS", 1: "NEG", 2: "NEUTRAL"})
    settings = {
        "luke_ner": {"pretrained": str(ner_checkpoint), "max_mention_length": MAX_LEN},
        "luke_entity_typer": {"pretrained": str(typer_checkpoint)},
        "luke_relation_extractor": {"pretrained": str(relation_checkpoint), "threshold": 0.0},
        "luke_entity_vectors": {"pretrained": str(encoder_checkpoint)},
        "luke_entity_linker": {
            "pretrained": str(linker_checkpoint), "entity_candidates": {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": 3},
        },
        "luke_textcat": {"pretrained": str(textcat)},
    }
    root = tmp_path_factory.mktemp("cuda-pipelines")
    out = {}
    for name in PIPES:
        nlp = spacy.blank("en")
        nlp.add_pipe(name, config=settings[name])
        nlp.to_disk(root / name)
        out[name] = root / name
    return out


def inputs(name: str, nlp):
    if name in ("luke_ner", "luke_textcat"):
        return PARITY_TEXTS[:32]
    return make_docs(nlp, TEXTS[:32])


def results(name: str, docs) -> list:
    """(decisions, scores) per doc after pipe ``name``: what must be equal, what may differ a little."""
    out = []
    for doc in docs:
        if name == "luke_ner":
            out.append(([(e.start, e.end, e.label_) for e in doc.ents], [e._.luke_score for e in doc.ents]))
        elif name == "luke_entity_typer":
            types = [e._.luke_types for e in doc.ents]
            out.append(([max(t, key=t.get) for t in types], [p for t in types for _, p in sorted(t.items())]))
        elif name == "luke_relation_extractor":
            relations = doc._.luke_relations
            out.append(([(tuple(r["head"]), tuple(r["tail"]), r["label"]) for r in relations], [r["score"] for r in relations]))
        elif name == "luke_entity_vectors":
            out.append((None, [e._.luke_vector for e in doc.ents]))
        elif name == "luke_entity_linker":
            out.append(([e.kb_id_ for e in doc.ents], [p for e in doc.ents for _, p in sorted(e._.luke_kb_scores)]))
        else:
            out.append((max(doc.cats, key=doc.cats.get), [p for _, p in sorted(doc.cats.items())]))
    return out


def compare(name: str, precision: str, got: list, expected: list) -> None:
    """``got`` against the CPU float32 ``expected`` (see the module docstring)."""
    agree = [(g[1], e[1]) for g, e in zip(got, expected) if g[0] == e[0]]
    assert len(got) == len(expected) and len(agree) >= AGREEMENT[precision] * len(expected), [g[0] for g in got]
    scores = [s for g, _ in agree for s in g]
    reference = [s for _, e in agree for s in e]
    assert len(scores) == len(reference) > 0
    if name == "luke_entity_vectors":
        a, b = np.stack(scores), np.stack(reference)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() >= MIN_COSINE[precision], cosine.min()
    else:
        worst = float(np.max(np.abs(np.asarray(scores, dtype=np.float64) - np.asarray(reference, dtype=np.float64))))
        assert worst <= TOLERANCE[precision], worst


def run_pipeline(folder, name: str, device: str, precision: str = "float32", engine: str = "torch"):
    nlp = spacy.load(folder)
    nlp.get_pipe(name).configure(precision=precision, engine=engine)
    gpu_id = int(device.split(":")[1]) if device.startswith("cuda") else None
    apply_device(nlp, plan_for_this_machine(gpu_id, precision, None))
    return results(name, list(nlp.pipe(inputs(name, nlp), batch_size=16)))


@pytest.mark.parametrize("engine", CUDA_ENGINES)
@pytest.mark.parametrize("precision", CUDA_PRECISIONS)
@pytest.mark.parametrize("name", PIPES)
def test_each_pipe_on_cuda_matches_cpu_float32(pipelines, name, precision, engine):
    expected = run_pipeline(pipelines[name], name, "cpu")
    compare(name, precision, run_pipeline(pipelines[name], name, "cuda:0", precision, engine), expected)


def ner_for_training(mlm_checkpoint, device: str):
    from spacy_luke.layers.head_layer import luke_shim

    torch.manual_seed(0)
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(mlm_checkpoint), "max_mention_length": 4})
    luke_shim(ner.model).set_device(device)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 3e-3
    return nlp, ner, examples, optimizer


def test_training_steps_on_cuda_follow_the_cpu(mlm_checkpoint):
    losses = {}
    for device in ("cpu", "cuda:0"):
        nlp, ner, examples, optimizer = ner_for_training(mlm_checkpoint, device)
        losses[device] = []
        for _ in range(30 if device != "cpu" else 3):
            step = {}
            nlp.update(examples, sgd=optimizer, losses=step)
            losses[device].append(step["luke_ner"])
    assert next(ner.luke_model.parameters()).device.type == "cuda"
    assert np.allclose(losses["cuda:0"][:3], losses["cpu"], rtol=1e-3), (losses["cuda:0"][:3], losses["cpu"])
    assert all(np.isfinite(losses["cuda:0"])) and losses["cuda:0"][-1] < losses["cuda:0"][0] * 0.5, losses["cuda:0"][::5]
    doc = nlp("Tokyo is the capital of Japan .")  # predictions on the GPU after training
    assert all(e.label_ in ("PER", "ORG", "LOC") for e in doc.ents)


def test_spacy_require_gpu_puts_new_pipes_on_cuda(ner_checkpoint):
    pytest.importorskip("cupy", reason="spacy.require_gpu() needs cupy")
    cpu = spacy.blank("en")
    cpu.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": MAX_LEN})
    expected = results("luke_ner", cpu.pipe(PARITY_TEXTS[:16]))
    spacy.require_gpu(0)
    try:
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": MAX_LEN})
        got = results("luke_ner", nlp.pipe(PARITY_TEXTS[:16]))
        assert next(ner.luke_model.parameters()).device.type == "cuda"
    finally:
        spacy.require_cpu()
    compare("luke_ner", "float32", got, expected)
