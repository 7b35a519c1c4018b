"""LukeForEntityDisambiguation: LUKE's masked entity prediction at candidate rows, and the
whole-table top-k, against transformers' LukeForMaskedLM on the same weights (float32, 1e-4)."""
from __future__ import annotations

import pytest
import torch
import transformers

from spacy_luke.model import LukeForEntityDisambiguation

SPECIALS = [0, 1, 2, 3]


def _inputs(folder, mluke: bool):
    cls = transformers.MLukeTokenizer if mluke else transformers.LukeTokenizer
    tokenizer = cls.from_pretrained(folder)
    texts = ["Tokyo is the capital of Japan .", "Steve Jobs founded Apple in California ."]
    spans = [[(0, 5), (24, 29)], [(0, 10), (19, 24)]]
    return tokenizer(texts, entity_spans=spans, entities=[["[MASK]", "[MASK]"]] * 2, padding=True, return_tensors="pt")


@pytest.mark.parametrize("mluke", [False, True], ids=["luke", "mluke"])
def test_candidate_logits_equal_transformers_entity_logits(linker_checkpoint, mluke_linker_checkpoint, mluke):
    folder = mluke_linker_checkpoint if mluke else linker_checkpoint
    reference = transformers.LukeForMaskedLM.from_pretrained(folder).eval()
    ours = LukeForEntityDisambiguation.from_pretrained(folder)
    inputs = _inputs(folder, mluke)
    with torch.no_grad():
        full = reference(**inputs).entity_logits  # (batch, entities, all rows)
        gen = torch.Generator().manual_seed(0)
        candidates = torch.randint(0, full.shape[-1], full.shape[:2] + (7,), generator=gen)
        out = ours(**inputs, candidate_ids=candidates)
    expected = full.gather(-1, candidates)
    torch.testing.assert_close(out.candidate_logits, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(out.candidate_ids, candidates)
    scores = out.candidate_scores
    assert scores.shape == candidates.shape + (2,)
    assert torch.equal(scores[..., 1].long(), candidates)


@pytest.mark.parametrize("chunk_rows", [7, 100, 65536])
def test_whole_table_top_k_equals_a_full_computation(linker_checkpoint, chunk_rows):
    reference = transformers.LukeForMaskedLM.from_pretrained(linker_checkpoint).eval()
    ours = LukeForEntityDisambiguation.from_pretrained(linker_checkpoint)
    inputs = _inputs(linker_checkpoint, False)
    with torch.no_grad():
        full = reference(**inputs).entity_logits.clone()
        full[..., SPECIALS] = float("-inf")
        want_logits, want_ids = full.topk(5, dim=-1)
        hidden = ours.luke(**inputs).entity_last_hidden_state
        logits, ids = ours.best_entities(ours.entity_predictions.transform(hidden), 5, torch.tensor(SPECIALS), chunk_rows=chunk_rows)
        via_forward = ours(**inputs, top_k=torch.tensor(5), excluded_entity_ids=torch.tensor(SPECIALS))
    assert torch.equal(ids, want_ids)
    torch.testing.assert_close(logits, want_logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(via_forward.candidate_ids, want_ids)
    assert not set(ids.flatten().tolist()) & set(SPECIALS)


def test_loss_is_cross_entropy_over_the_candidates(linker_checkpoint):
    ours = LukeForEntityDisambiguation.from_pretrained(linker_checkpoint)
    inputs = _inputs(linker_checkpoint, False)
    candidates = torch.tensor([[[5, 6, 7], [8, 9, 10]], [[11, 12, 13], [14, 15, 16]]])
    labels = torch.tensor([[2, 0], [-100, 1]])
    out = ours(**inputs, candidate_ids=candidates, labels=labels)
    logits = out.candidate_logits
    picked = [logits[0, 0].log_softmax(-1)[2], logits[0, 1].log_softmax(-1)[0], logits[1, 1].log_softmax(-1)[1]]
    torch.testing.assert_close(out.loss, -torch.stack(picked).mean())
    out.loss.backward()
    assert ours.luke.entity_embeddings.entity_embeddings.weight.grad[5:17].abs().sum() > 0


def test_needs_candidates_or_top_k(linker_checkpoint):
    ours = LukeForEntityDisambiguation.from_pretrained(linker_checkpoint)
    with pytest.raises(ValueError, match="candidate_ids"):
        ours(**_inputs(linker_checkpoint, False))
