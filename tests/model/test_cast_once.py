"""16-bit predictions from weights cast once: the bfloat16 / float16 views (``views.half.half_view``).

A view is a copy of the float model in 16 bits (the heads' output layers in float32) that shares
no tensor with it; predictions through the pipes agree with float32; a training step is seen by
the next prediction (the view is built again); threads share one view.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import spacy
import torch

import spacy_luke.model as ours
from spacy_luke.layers import luke_shim
from support.checkpoints import make_inputs
from spacy_luke.model import unpadded
from spacy_luke.model.attention_options import attention_options
from spacy_luke.model.views import half
from spacy_luke.model.views.half import KEEP_FLOAT_16, Float32Output, cast_copy
from spacy_luke.model.views.precision import inference_view
from support.linker_reference import ENTS, TEXT, make_doc
from support.ner import PARITY_TEXTS
from support.ner import make_examples

HALF = {"bfloat16": torch.bfloat16, "float16": torch.float16}
#: Heads with their own output layer, and the heads the pipes run (LukeModel: luke_entity_vectors).
HEADS = [
    "LukeModel",
    "LukeForMaskedLM",
    "LukeForEntityClassification",
    "LukeForEntityPairClassification",
    "LukeForEntitySpanClassification",
    "LukeForQuestionAnswering",
]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the slow-CPU warnings of the 16-bit modes
        yield


def _tensors(module):
    return [*module.parameters(), *module.buffers()]


def _storage(module):
    return {t.untyped_storage().data_ptr() for t in _tensors(module)}


# -------------------------------------------------------------------------------- the view itself


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_view_is_a_16_bit_copy_sharing_nothing(hf_checkpoint, head, name):
    folder, reference = hf_checkpoint(head)
    model = getattr(ours, head).from_pretrained(folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    view = inference_view(model, name)
    assert view is not model and not view.training
    assert _storage(view).isdisjoint(_storage(model))  # no tensor, no storage in common
    kept = {path for path, sub in view.named_modules() if isinstance(sub, Float32Output)}
    assert kept == {path for path, _ in model.named_modules() if path.rsplit(".", 1)[-1] in KEEP_FLOAT_16}
    for path, param in view.named_parameters():
        module_path = path.rpartition(".")[0]
        if module_path in kept:  # the output layer: float32, the float model's numbers
            assert param.dtype == torch.float32 and torch.equal(param, model.get_parameter(path))
        else:
            assert param.dtype == HALF[name], path
        assert not param.requires_grad
    # The float model is untouched, and stays trainable.
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Writing into the float weights (an optimizer step) never reaches the view.
    view_before = {k: v.clone() for k, v in view.state_dict().items()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    assert all(torch.equal(view_before[k], v) for k, v in view.state_dict().items())


def test_tied_weights_stay_tied_and_are_cast():
    linear = torch.nn.Linear(4, 6)
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(6, 4), "classifier": linear})
    model["embed"].weight = torch.nn.Parameter(torch.randn(6, 4))
    model["classifier"].weight = model["embed"].weight  # tied: an output layer that is also an embedding
    model.register_buffer("positions", torch.arange(5))
    view = cast_copy(model, torch.bfloat16, keep_float=("classifier",))
    assert view["classifier"].weight is view["embed"].weight  # still one tensor
    assert view["classifier"].weight.dtype == torch.bfloat16  # tied elsewhere: cast with the rest
    assert type(view["classifier"]) is torch.nn.Linear
    assert view.positions.dtype == torch.long and torch.equal(view.positions, model.positions)
    assert view.positions.data_ptr() != model.positions.data_ptr()


def test_built_in_inference_mode_keeps_version_counters(hf_checkpoint):
    """The layer builds views inside ``torch.inference_mode``: the copy must still track versions."""
    folder, reference = hf_checkpoint("LukeForEntitySpanClassification")
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    with torch.inference_mode():
        view = inference_view(model, "bfloat16")
        view(**make_inputs("LukeForEntitySpanClassification", reference.config))
    assert all(not p.is_inference() for p in view.parameters())
    assert all(isinstance(p._version, int) for p in view.parameters())


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("unpad", [False, True])
@pytest.mark.parametrize("variant", ["entity_aware", "plain"])
def test_view_logits_agree_with_float32(hf_checkpoint, name, impl, unpad, variant):
    head = "LukeForEntitySpanClassification"
    folder, reference = hf_checkpoint(head, variant)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    model.set_attention_implementation(impl)
    inputs = make_inputs(head, reference.config, batch=5, length=14, entities=6, seed=2)
    keep = inputs["entity_attention_mask"].bool()
    with torch.inference_mode(), attention_options(unpad=unpad):
        base = model(**inputs).logits
        view = inference_view(model, name)
        got = view(**inputs).logits
    assert got.dtype == torch.float32  # from the float32 output layer
    scale = base[keep].abs().max()
    # bfloat16 keeps 8 bits of mantissa, float16 11: errors of a few units of the last place.
    tolerance = {"bfloat16": 0.03, "float16": 0.005}[name]
    assert (got[keep] - base[keep]).abs().max() < tolerance * scale
    assert (got[keep].argmax(-1) == base[keep].argmax(-1)).float().mean() >= 0.9


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16_bit_workspace_matches_plain_unpadded(hf_checkpoint, monkeypatch, name):
    """CPU inference of a 16-bit view runs with the reused buffers, as float32 does, with the same numbers."""
    head = "LukeForEntitySpanClassification"
    folder, reference = hf_checkpoint(head)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    view = inference_view(model, name)
    inputs = make_inputs(head, reference.config, batch=6, length=11, entities=5, seed=4)
    inputs["attention_mask"][2, 3:] = 0
    inputs["entity_attention_mask"][2, 1:] = 0
    keep = inputs["entity_attention_mask"].bool()
    monkeypatch.setattr(unpadded, "TOKEN_CHUNK", 7)  # several chunks, the last one short
    buffers = []
    original = unpadded.Workspace.output_for

    def spy(self, layer_input):
        out = original(self, layer_input)
        buffers.append(out.dtype)
        return out

    monkeypatch.setattr(unpadded.Workspace, "output_for", spy)
    with torch.inference_mode(), attention_options(unpad=True):
        got = view(**inputs).logits
        assert buffers == [HALF[name]] * len(model.luke.encoder.layer)  # the workspace ran, in 16 bits
        monkeypatch.setattr(unpadded.Workspace, "wanted", staticmethod(lambda hidden, training: False))
        expected = view(**inputs).logits
        base = model(**inputs).logits
    scale = base[keep].abs().max()
    assert (got[keep] - expected[keep]).abs().max() < 0.01 * scale
    assert (got[keep] - base[keep]).abs().max() < 0.03 * scale


def test_entity_disambiguation_in_16_bits(linker_checkpoint):
    model = ours.LukeForEntityDisambiguation.from_pretrained(linker_checkpoint)
    import transformers

    tokenizer = transformers.LukeTokenizer.from_pretrained(linker_checkpoint)
    inputs = tokenizer(["Tokyo is the capital of Japan ."], entity_spans=[[(0, 5), (24, 29)]], entities=[["[MASK]", "[MASK]"]],
                       return_tensors="pt")
    candidates = torch.arange(4, 4 + 2 * 9).view(1, 2, 9)
    with torch.inference_mode():
        base = model(**inputs, candidate_ids=candidates)
        view = inference_view(model, "bfloat16")
        got = view(**inputs, candidate_ids=candidates)
        top = view(**inputs, top_k=torch.tensor(5), excluded_entity_ids=torch.tensor([0, 1, 2, 3]))
        base_top = model(**inputs, top_k=torch.tensor(5), excluded_entity_ids=torch.tensor([0, 1, 2, 3]))
    assert view.entity_table.dtype == torch.bfloat16
    scores = got.candidate_scores
    assert scores.dtype == torch.float32 and torch.equal(scores[..., 1].long(), candidates)  # ids exact
    scale = base.candidate_logits.abs().max()
    assert (scores[..., 0] - base.candidate_logits).abs().max() < 0.03 * scale
    assert torch.equal(got.candidate_logits.argmax(-1), base.candidate_logits.argmax(-1))
    assert torch.equal(top.candidate_ids[..., 0], base_top.candidate_ids[..., 0])


# ------------------------------------------------------------------------------------ the pipes


def _nlp(precision, ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, "precision": precision})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint), "precision": precision})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint), "precision": precision})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(encoder_checkpoint), "precision": precision})
    return nlp


def _annotations(doc):
    return {
        "ents": {(e.start, e.end, e.label_): e._.luke_score for e in doc.ents},
        "types": {(e.start, e.end): e._.luke_types for e in doc.ents},
        "relations": {(tuple(r["head"]), tuple(r["tail"]), r["label"]): r["score"] for r in doc._.luke_relations},
        "vectors": {(e.start, e.end): e._.luke_vector for e in doc.ents},
    }


def _found(reference, got, key):
    """The share of ``reference``'s items (entities, relations) that ``got`` has too."""
    total = sum(len(a[key]) for a in reference)
    return sum(len(a[key].keys() & b[key].keys()) for a, b in zip(reference, got)) / total, total


# Stated agreement of each mode with float32 on the fixtures' 60 texts (2-layer, 32-wide random
# models with a classifier scaled 40x, so their decisions sit close together): share of float32's
# entities and relations found, largest score difference on the entities both found, and the
# cosine of the entity vectors.
AGREEMENT = {
    "bfloat16": dict(entities=0.98, relations=0.95, score=0.15, types=0.06, cosine=0.9995),
    "float16": dict(entities=0.995, relations=0.99, score=0.02, types=0.01, cosine=0.9999),
}


@pytest.mark.heavy  # four pipes in two precisions: 30-55 s each
@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_pipes_in_16_bits_agree_with_float32(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint, name):
    checkpoints = (ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint)
    results = {}
    for mode in ("float32", name):
        nlp = _nlp(mode, *checkpoints)
        results[mode] = [_annotations(doc) for doc in nlp.pipe(PARITY_TEXTS, batch_size=16)]
        for pipe_name, pipe in nlp.pipeline:
            layer = luke_shim(pipe.model)._model
            assert layer.precision.name == mode
            if mode != "float32":  # a 16-bit view was built and used; the float weights stay float32
                assert layer._view_cache is not None and next(layer._view_cache[1]["torch"].parameters()).dtype == HALF[mode]
            assert {p.dtype for p in pipe.luke_model.parameters()} == {torch.float32}
    reference, got = results["float32"], results[name]
    bounds = AGREEMENT[name]
    entities, n_entities = _found(reference, got, "ents")
    relations, n_relations = _found(reference, got, "relations")
    assert n_entities > 100 and n_relations > 100
    assert entities >= bounds["entities"] and relations >= bounds["relations"], (entities, relations)
    both = [(a, b) for a, b in zip(reference, got)]
    score = max(abs(a["ents"][k] - b["ents"][k]) for a, b in both for k in a["ents"].keys() & b["ents"].keys())
    types = max(abs(a["types"][k][t] - b["types"][k].get(t, 0.0)) for a, b in both for k in a["types"].keys() & b["types"].keys()
                for t in a["types"][k])
    cosine = min(
        float(np.dot(a["vectors"][k], b["vectors"][k]) / (np.linalg.norm(a["vectors"][k]) * np.linalg.norm(b["vectors"][k])))
        for a, b in both for k in a["vectors"].keys() & b["vectors"].keys()
    )
    assert score <= bounds["score"] and types <= bounds["types"] and cosine >= bounds["cosine"], (score, types, cosine)


@pytest.mark.parametrize("top_k", [None, 5])
def test_linker_in_bfloat16_agrees_with_float32(linker_checkpoint, top_k):
    texts = [TEXT, "Tokyo and Paris .", "Jaguar Cars is in Georgia ."]
    ents = [ENTS, [(0, 1, "LOC"), (2, 3, "LOC")], [(0, 2, "ORG"), (4, 5, "LOC")]]
    links = {}
    for mode in ("float32", "bfloat16"):
        nlp = spacy.blank("en")
        config = {"pretrained": str(linker_checkpoint), "precision": mode}
        if top_k:
            config["entity_candidates"] = {"@misc": "spacy-luke.AllEntitiesCandidates.v1", "top_k": top_k}
        pipe = nlp.add_pipe("luke_entity_linker", config=config)
        docs = [pipe(make_doc(nlp, text, spans)) for text, spans in zip(texts, ents)]
        links[mode] = [(e.kb_id_, dict(e._.luke_kb_scores or [])) for doc in docs for e in doc.ents]
    for (kb_a, scores_a), (kb_b, scores_b) in zip(links["float32"], links["bfloat16"]):
        if top_k:  # the best of the whole table: in bfloat16's top k, with about the same probability
            assert kb_a in scores_b and abs(scores_a[kb_a] - scores_b[kb_a]) < 0.01
        else:  # the same candidates, the same choice
            assert kb_a == kb_b and scores_a.keys() == scores_b.keys()
            assert max(abs(scores_a[k] - scores_b[k]) for k in scores_a) < 0.005


# --------------------------------------------------------------------------- training, threads


@pytest.mark.parametrize("name", ["bfloat16", "int8"])
def test_a_training_step_is_seen_by_the_next_prediction(ner_checkpoint, name):
    """thinc's optimizer writes the float weights in place (through numpy); the view is built again."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, "precision": name})
    texts = PARITY_TEXTS[:12]

    def predict():
        return [[(e.start, e.end, e.label_, round(e._.luke_score, 4)) for e in doc.ents] for doc in nlp.pipe(texts)]

    first = predict()
    layer = luke_shim(ner.model)._model
    view = layer._view_cache[1]["torch"]
    assert predict() == first and layer._view_cache[1]["torch"] is view  # kept while the weights stay
    weights = {k: v.clone() for k, v in ner.luke_model.state_dict().items()}
    optimizer = nlp.resume_training()
    optimizer.learn_rate = 1e-2
    nlp.update(make_examples(nlp), sgd=optimizer)
    assert any(not torch.equal(weights[k], v) for k, v in ner.luke_model.state_dict().items())  # trained
    after = predict()
    assert layer._view_cache[1]["torch"] is not view and after != first  # built again from the new weights
    if name == "bfloat16":
        rebuilt = layer._view_cache[1]["torch"]
        for (path, param), float_param in zip(rebuilt.named_parameters(), ner.luke_model.parameters()):
            want = float_param if path.startswith("classifier") else float_param.to(torch.bfloat16)
            assert torch.equal(param, want), path
    # The same predictions as a pipe loaded from the trained weights.
    fresh = spacy.blank("en")
    fresh.add_pipe("luke_ner", config={"max_mention_length": 4, "precision": name})
    fresh.from_bytes(nlp.to_bytes())
    assert [[(e.start, e.end, e.label_, round(e._.luke_score, 4)) for e in doc.ents] for doc in fresh.pipe(texts)] == after


def test_threads_share_one_bfloat16_view(ner_checkpoint, monkeypatch):
    builds = []
    original = half.half_view

    def counting(model, dtype):
        builds.append(dtype)
        return original(model, dtype)

    monkeypatch.setattr(half, "half_view", counting)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, "precision": "bfloat16"})
    assert ner.luke_model is not None  # loads the weights, not the view: the threads' first calls build it
    texts = PARITY_TEXTS[:24]

    def entities(text):
        return [(e.start, e.end, e.label_, round(e._.luke_score, 4)) for e in nlp(text).ents]

    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(entities, texts))
    assert builds == [torch.bfloat16]  # one view, built once, shared by the threads
    assert threaded == [entities(text) for text in texts]
