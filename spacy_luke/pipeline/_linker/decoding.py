"""What ``luke_entity_linker`` links and how its scores decode: mentions with their candidate
entities, the probability rule, global decoding, and the training loss over a mention's candidates.

The linker's model scores each mention at ``C`` entity rows: its scores hold the ``C`` candidate
logits (``values``) and the rows they belong to (``ids``, int64; padding slots hold the [PAD]
row). ``C`` is the most candidates any mention of the call has (or, over the whole vocabulary, the
search's effective ``top_k``: min(top_k, rows searched), ``EntitySearch.top_k``, which also sizes
the model's search).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc, Span

from .entity_candidates import LinkCandidate


@dataclass
class Mentions:
    """One doc's mentions (the pipe's items) and their candidate entities.

    spans: (n, 2) token [start, end) offsets.
    candidates: per mention, its candidates (best prior first; empty: nothing to link).
    known_rows: per mention, the entity row fed as its input entity (-1: [MASK]); mentions with
        a kb_id kept from the Doc are known and not linked again.
    gold: per mention, the gold kb_id (training only; "" none).
    gold_rows: per mention, the gold entity row (-1: none, NIL or not in the vocabulary).
    """

    spans: np.ndarray
    candidates: List[List[LinkCandidate]] = field(default_factory=list)
    known_rows: Optional[np.ndarray] = None
    gold: Optional[List[str]] = None
    gold_rows: Optional[np.ndarray] = None
    search_inputs: Optional[Dict[str, np.ndarray]] = None  # a whole-table search: its model inputs

    def __len__(self) -> int:
        return len(self.spans)

    @property
    def entity_rows(self) -> np.ndarray:
        """The input entity of each mention for the span inputs (-1: [MASK])."""
        return self.known_rows if self.known_rows is not None else np.full(len(self), -1, dtype=np.int64)

    @property
    def candidate_rows(self) -> Optional[List[List[int]]]:
        """The entity rows each mention is scored at (None: the whole-table search finds them)."""
        if self.search_inputs is not None:
            return None
        return [[c.entity_id for c in cands] for cands in self.candidates]

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(c) for c in self.candidates], dtype=np.int64)

    def linkable(self) -> np.ndarray:
        """(n,) bool: mentions to link (candidates, and no kb_id kept from the Doc)."""
        known = self.known_rows if self.known_rows is not None else np.full(len(self), -1)
        return (self.counts > 0) & (known < 0)


def candidate_probabilities(logits: np.ndarray, priors: Optional[Sequence[float]], incl_prior: bool) -> np.ndarray:
    """P(candidate | mention): the softmax of its candidates' logits; with ``incl_prior``, times
    each candidate's prior and renormalized (the softmax alone when all priors are zero)."""
    logits = np.asarray(logits, dtype=np.float64)
    if not len(logits):
        return np.zeros(0)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if incl_prior and priors is not None:
        weighted = probs * np.asarray(priors, dtype=np.float64)
        total = weighted.sum()
        if total > 0:
            probs = weighted / total
    return probs


def candidate_loss(logits: np.ndarray, rows: np.ndarray, gold_rows: np.ndarray, pad_row: int, normalizer: int, mask: np.ndarray) -> Tuple[float, np.ndarray]:
    """Cross entropy of each scored mention's gold entity among its candidates, over ``normalizer``.

    logits: (n, C) candidate logits; rows: (n, C) the entity rows they score; gold_rows: (n,)
    entity rows (-1: not counted). The gold is always among a training mention's candidates (the
    pipe adds it). Returns the loss and the gradient of the logits (zero on padding slots).
    """
    grads = np.zeros_like(logits, dtype=np.float32)
    if not len(logits):
        return 0.0, grads
    loss = 0.0
    for i in np.flatnonzero(mask & (gold_rows >= 0)).tolist():
        valid = rows[i] != pad_row
        hits = np.flatnonzero(valid & (rows[i] == gold_rows[i]))
        if not len(hits):
            continue
        z = np.where(valid, logits[i].astype(np.float64), -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        loss -= float(np.log(max(p[hits[0]], 1e-30)))
        p[hits[0]] -= 1.0
        grads[i] = (p / normalizer).astype(np.float32)
    return loss / normalizer, grads


def decode_globally(model, docs: Sequence[Doc], mentions: List[Mentions], best: Callable, max_passes: int) -> list:
    """Global decoding (Yamada et al., 2022), a loop over the linker model's batch runner: score
    every input, fix the unresolved mention of each input whose best candidate is the most
    probable, feed that entity as its input entity, and score again, until all are resolved; the
    pass ``max_passes`` resolves every remaining mention. Returns per doc the scores of each
    mention from the pass that resolved it. ``best(mentions, item, logits, rows) -> (entity row,
    probability)``."""
    from ...layers.call_plan import empty_scores

    plan = model.get_ref("inputs").predict((list(docs), mentions))
    if plan.skips is not None:
        plan.skips.warn()
    runner = model.get_ref("runner")
    scores = None
    unresolved: Dict[int, set] = {}
    for i, (d, indices) in enumerate(plan.owners):
        linkable = mentions[d].linkable()[indices]
        if linkable.any():
            unresolved[i] = set(np.flatnonzero(linkable).tolist())
    for n_pass in range(max_passes):
        if not unresolved:
            break
        active = sorted(unresolved)
        found = runner.predict(plan.subset(active))
        if scores is None:
            width = found[0].values.shape[1]
            scores = [s._replace(ids=np.zeros((len(s.items), width), dtype=np.int64)) for s in empty_scores(mentions, width)]
        last = n_pass == max_passes - 1
        for i in active:
            d, indices = plan.owners[i]
            slots = sorted(unresolved[i])
            logits, rows = found[d].values[indices], found[d].ids[indices]
            if last:
                chosen = slots
            else:
                confidence = [best(mentions[d], int(indices[s]), logits[s], rows[s])[1] for s in slots]
                chosen = [slots[int(np.argmax(confidence))]]
            for s in chosen:
                item = int(indices[s])
                scores[d].values[item], scores[d].ids[item], scores[d].scored[item] = logits[s], rows[s], True
                plan.extras[i]["entity_ids"][s] = best(mentions[d], item, logits[s], rows[s])[0]
                unresolved[i].discard(s)
            if not unresolved[i]:
                del unresolved[i]
    return scores if scores is not None else empty_scores(mentions, 0)


def write_links(doc: Doc, linked: Dict[tuple, tuple], spans_key: Optional[str]) -> None:
    """Write ``linked`` ({(start, end): (kb_id, [(kb_id, probability), ...])}) onto ``doc.ents``
    (or ``doc.spans[spans_key]``): new spans with the same label and the kb_id, and their
    ``Span._.luke_kb_scores``. Nothing else of the Doc changes (other entities, blocked and
    outside tokens stay as they were)."""
    if spans_key is not None:
        group = doc.spans[spans_key]
        for j, span in enumerate(list(group)):
            if (span.start, span.end) in linked:
                kb_id, kb_scores = linked[(span.start, span.end)]
                new = Span(doc, span.start, span.end, label=span.label, kb_id=kb_id, span_id=span.id)
                group[j] = new
                new._.luke_kb_scores = kb_scores
        return
    changed = []
    for ent in doc.ents:
        if (ent.start, ent.end) in linked:
            kb_id, kb_scores = linked[(ent.start, ent.end)]
            changed.append((Span(doc, ent.start, ent.end, label=ent.label, kb_id=kb_id), kb_scores))
    if changed:
        doc.set_ents([span for span, _ in changed], default="unmodified")
        for span, kb_scores in changed:
            span._.luke_kb_scores = kb_scores
