"""Give a trained luke_ner pipeline a span pruner, learned afterwards (the command line:
``python -m spacy_luke train-pruner``, :mod:`spacy_luke.cli.train_pruner`).

The pruner (:mod:`spacy_luke.model.span_pruner`) reads detached word states, so learning it
never changes the NER weights: it can be trained alone, in minutes, on a pipeline trained
without one. The result is the same pipeline with the pruner in its weights and ``pruning`` set
in its config.cfg; the NER head, the encoder and every other pipe are as they were.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ...layers.span_pruner import prune
from .span_pruning import SpanPruning, ensure_pruner, update_pruner


@dataclass
class PrunerReport:
    """What train-pruner did: steps, the last epoch's mean loss, and (with dev data) how many gold
    entities the kept candidates hold."""

    pipe: str
    steps: int
    loss: float
    seconds: float
    dev_gold: int = 0
    dev_gold_kept: int = 0
    dev_candidates: int = 0
    dev_kept: int = 0

    @property
    def dev_recall(self) -> Optional[float]:
        return self.dev_gold_kept / self.dev_gold if self.dev_gold else None


def train_span_pruner(
    pipeline: Path,
    train: Path,
    output: Path,
    *,
    pipe_name: Optional[str] = None,
    dev: Optional[Path] = None,
    pruning: SpanPruning = SpanPruning(),
    epochs: int = 2,
    batch_size: int = 32,
    learn_rate: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> PrunerReport:
    """Train a span pruner for the luke_ner pipe of the saved ``pipeline`` on ``train`` (.spacy
    with gold entities) and save the pipeline with it to ``output``."""
    import spacy
    import torch
    from spacy.training import Corpus

    nlp = spacy.load(pipeline)
    name, pipe = _ner_pipe(nlp, pipe_name)
    if pipe.cfg.get("spans_key"):
        raise ValueError(f"[{name}] writes to doc.spans[{pipe.cfg['spans_key']!r}]: train-pruner learns from doc.ents only.")
    pipe.pruning = pruning
    ensure_pruner(pipe, pruning)
    head = pipe.luke_model
    if head.span_pruner.settings.layers != pruning.layers or head.span_pruner.settings.hidden_width != pruning.hidden_width:
        raise ValueError(
            f"[{name}] already has a span pruner of {head.span_pruner.settings.layers} layers and width "
            f"{head.span_pruner.settings.hidden_width}; train with those settings, or start from a pipeline without one."
        )
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(head.span_pruner.parameters(), lr=learn_rate, weight_decay=0.01)
    examples = _examples(nlp, name, Corpus(str(train)))
    if not examples:
        raise ValueError(f"{train} holds no examples.")
    rng = random.Random(seed)
    steps, started, loss = 0, time.perf_counter(), 0.0
    for epoch in range(epochs):
        rng.shuffle(examples)
        total, batches = 0.0, 0
        for i in range(0, len(examples), batch_size):
            batch = examples[i : i + batch_size]
            candidates = pipe._training_items(batch)
            if not any(len(c) for c in candidates):
                continue
            optimizer.zero_grad(set_to_none=True)
            total += update_pruner(pipe, batch, candidates, {})
            optimizer.step()
            steps, batches = steps + 1, batches + 1
            if batches % 100 == 0:
                log(f"epoch {epoch + 1}/{epochs}: step {batches}, mean loss {total / batches:.4f}")
        loss = total / max(1, batches)
        log(f"epoch {epoch + 1}/{epochs}: {batches} steps, mean loss {loss:.4f}")
    report = PrunerReport(name, steps, loss, time.perf_counter() - started)
    if dev is not None:
        _measure(pipe, _examples(nlp, name, Corpus(str(dev))), report)
    nlp.to_disk(output)
    _set_pruning_in_config(Path(output) / "config.cfg", name, pruning)
    return report


def _ner_pipe(nlp, pipe_name: Optional[str]):
    from ..ner import LukeNER

    found = [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, LukeNER)]
    if pipe_name is not None:
        found = [(name, pipe) for name, pipe in found if name == pipe_name]
        if not found:
            raise ValueError(f"The pipeline has no luke_ner pipe named {pipe_name!r} (its pipes: {nlp.pipe_names}).")
    if len(found) != 1:
        what = "no luke_ner pipe" if not found else f"several luke_ner pipes ({[n for n, _ in found]}): name one with --pipe"
        raise ValueError(f"The pipeline has {what}.")
    return found[0]


def _examples(nlp, name: str, corpus) -> List:
    """The corpus's examples, their predicted docs run through the pipes before ``name`` (sentences)."""
    before = []
    for pipe_name, proc in nlp.pipeline:
        if pipe_name == name:
            break
        before.append(proc)
    examples = list(corpus(nlp))
    for eg in examples:
        for proc in before:
            eg.predicted = proc(eg.predicted)
    return examples


def _measure(pipe, examples: Sequence, report: PrunerReport, batch_size: int = 64) -> None:
    """How many gold entities the pruner keeps among the dev candidates."""
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        docs = [eg.predicted for eg in batch]
        candidates = pipe._items(docs)
        kept = prune(pipe.model, docs, candidates, keep_per_word=pipe.pruning.keep_per_word, min_probability=pipe.pruning.min_probability)
        for eg, spans, kept_spans in zip(batch, candidates, kept):
            gold = {(s.start, s.end) for s in eg.get_aligned_spans_y2x(eg.reference.ents)}
            report.dev_gold += len(gold)
            report.dev_gold_kept += len(gold & {tuple(x) for x in kept_spans.tolist()})
            report.dev_candidates += len(spans)
            report.dev_kept += len(kept_spans)


def _set_pruning_in_config(path: Path, name: str, pruning: SpanPruning) -> None:
    from thinc.api import Config

    config = Config().from_disk(path, interpolate=False)
    config["components"][name]["pruning"] = {"@misc": "spacy-luke.span_pruning.v1", **asdict(pruning)}
    config.to_disk(path)


def report_lines(report: PrunerReport) -> List[str]:
    lines = [f"[{report.pipe}] span pruner: {report.steps} steps in {report.seconds:.0f} s, last epoch's mean loss {report.loss:.4f}"]
    if report.dev_recall is not None:
        lines.append(
            f"dev: kept {report.dev_kept} of {report.dev_candidates} candidates "
            f"({report.dev_kept / max(1, report.dev_candidates):.1%}), holding {report.dev_gold_kept} of {report.dev_gold} "
            f"gold entities ({report.dev_recall:.2%})"
        )
    return lines
