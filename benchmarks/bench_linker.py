"""Entity linking speed, memory and agreement: ``luke_entity_linker`` vs transformers' ``LukeForMaskedLM``.

Run by hand (not in CI), from the repository root::

    TOKENIZERS_PARALLELISM=false python benchmarks/bench_linker.py --shape base --entities 500000 --docs 96 --decodings local
    TOKENIZERS_PARALLELISM=false python benchmarks/bench_linker.py --shape base --entities 500000 --docs 64 \
        --decodings global --global-passes 4 --references transformers --no-memory
    # smoke run: --shape tiny --entities 5000 --docs 16 --batch 8

What it does:

1. Builds (once, cached under ``--workdir``) a ``LukeForMaskedLM`` checkpoint with random weights
   of the chosen shape, written by transformers' ``save_pretrained`` (safetensors): a byte-level
   BPE trained on the benchmark text (CoNLL-2003 train + test when present, as bench_ner.py),
   luke-base's 50,267-row word table, the four query matrices equal, and an entity vocabulary of
   ``--entities`` rows: the four specials, every CoNLL-2003 test mention text as a title, then
   ``Entity i`` fillers.
2. Documents: consecutive sentences of one CoNLL-2003 test article, up to ``--doc-words`` words
   (``--conll-dir FOLDER`` or ``--data FILE``; generated text without them), ``doc.ents`` = the gold NER spans (random spans for
   generated text); documents without a mention are left out. At most ``--max-mentions``
   mentions per doc, so that a doc is one model input in both systems.
3. Candidates: every mention gets ``--candidates`` rows of the entity table: its own title's row
   and pseudo-random rows seeded by its text (the same list in both systems, uniform priors).
   Ours receives them through a candidate source set on the pipe (``pipe.candidates``).
4. Systems, each on the same batches of ``--batch`` docs, alternating batch by batch:

   - ``transformers``: ``LukeTokenizer(entity_spans=..., entities=["[MASK]", ...])`` on the padded
     batch, ``LukeForMaskedLM`` under ``torch.no_grad()``: ``entity_logits`` (batch x mentions x
     all entities), then the argmax over each mention's candidates (a gather). Global decoding:
     the procedure of ``tests/test_entity_linker.py::reference_global`` on the batch (each pass
     one forward of the batch's unresolved docs, the resolved titles fed as their entities).
   - ``transformers-entity-head``: the same, without the word LM head that ``LukeForMaskedLM``
     always computes (``model.luke`` then ``model.entity_predictions``): a tighter reference
     (``--references`` chooses).
   - ``luke_entity_linker``: ``nlp.add_pipe("luke_entity_linker", config={"pretrained": ...,
     "decoding": ...})``, ``pipe.pipe(docs, batch_size=--batch)``.

   Each decoding (``--decodings``: local, global with ``--global-passes`` passes at most in both
   systems) is a separate alternation. Reports mentions/s, the time split and the share of
   mentions given the same kb_id as the first reference.
5. Memory (unless ``--no-memory``): each system in a process of its own loads the checkpoint,
   reads every weight once (safetensors may leave them file-backed until first use), and links
   the first batch (``--memory-decoding``, no warm-up); the peak resident memory (``VmHWM``,
   reset after loading) is reported whole and above the loaded process. Within the alternating
   run the peak above each batch's start is reported too, but there memory that glibc kept from
   an earlier batch is reused unseen, so the own-process figure is the one to quote.

``--json PATH`` writes every figure. Threads: torch's default (all cores) unless ``--threads``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import SHAPES, SPECIAL_ENTITIES, Timer  # noqa: E402

MB = 2**20
OURS = "luke_entity_linker"


# ---------------------------------------------------------------------------------- checkpoint


def mention_titles(path: Optional[Path]) -> List[str]:
    """Every distinct mention text of a CoNLL file (in order of first use); none without the file."""
    if path is None or not path.is_file():
        return []
    from spacy_luke.corpora.conll import _entity_spans, read_conll

    seen: Dict[str, None] = {}
    for document in read_conll(path):
        for sentence in document:
            words = [w for w, _ in sentence]
            for start, end, _ in _entity_spans([t for _, t in sentence]):
                seen.setdefault(" ".join(words[start:end]), None)
    return [t for t in seen if t not in SPECIAL_ENTITIES]


def linker_entity_vocab(size: int, titles: Sequence[str]) -> Dict[str, int]:
    """``size`` rows: the specials, ``titles``, then ``Entity i`` fillers (common.entity_vocab's names)."""
    vocab = {name: i for i, name in enumerate(SPECIAL_ENTITIES)}
    for title in titles[: max(0, size - len(vocab))]:
        vocab.setdefault(title, len(vocab))
    for i in range(len(vocab), size):
        vocab[f"Entity {i}"] = i
    return vocab


def build_checkpoint(folder: Path, shape: str, entities: int, titles: Sequence[str], bpe_text: Sequence[Sequence[str]],
                     bpe_vocab: int, seed: int = 0) -> Path:
    """A ``LukeForMaskedLM`` folder with random weights and a ``entities``-row entity vocabulary (cached)."""
    if (folder / "config.json").is_file():
        return folder
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(s) for s in bpe_text], vocab_size=bpe_vocab, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    n_pieces = len(json.loads((folder / "vocab.json").read_text(encoding="utf8")))
    common.write_json(folder, "added_tokens.json", {"<ent>": n_pieces, "<ent2>": n_pieces + 1})
    vocab = linker_entity_vocab(entities, titles)
    common.write_json(folder, "entity_vocab.json", vocab)
    common.write_json(folder, "tokenizer_config.json", {"tokenizer_class": "LukeTokenizer", "model_max_length": 512, "max_entity_length": 32,
                                                        "max_mention_length": 30, "add_prefix_space": False})
    common.save_random_luke(
        folder, "LukeForMaskedLM", seed=seed, prepare=common.tie_queries,
        vocab_size=max(50267, n_pieces + 2), entity_vocab_size=len(vocab), max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, use_entity_aware_attention=True, **SHAPES[shape],
    )
    return folder


# ---------------------------------------------------------------------------------- documents


def conll_documents(path: Path, n_docs: int, doc_words: int, max_mentions: int) -> List[Tuple[List[str], List[Tuple[int, int, str]]]]:
    """(words, gold entity spans) of docs made of consecutive sentences of one article."""
    from spacy_luke.corpora.conll import _entity_spans, read_conll

    docs = []

    def flush(words, ents):
        if ents and len(docs) < n_docs:
            docs.append((words, ents[:max_mentions]))

    for document in read_conll(path):
        words, ents = [], []
        for sentence in document:
            if words and len(words) + len(sentence) > doc_words:
                flush(words, ents)
                words, ents = [], []
            offset = len(words)
            words += [w for w, _ in sentence[:doc_words]]
            ents += [(offset + s, offset + e, label) for s, e, label in _entity_spans([t for _, t in sentence[:doc_words]])]
        flush(words, ents)
        if len(docs) >= n_docs:
            break
    return docs


def generated_documents(n_docs: int, doc_words: int, max_mentions: int):
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

    sentences, _ = common.load_sentences(n_docs * 20, source="/nonexistent")  # generated text
    rng = np.random.default_rng(0)
    docs, words = [], []
    for sentence in sentences:
        if words and len(words) + len(sentence) > doc_words:
            doc = Doc(Vocab(), words=words)
            ents = [(s.start, s.end, "E") for s in common.random_ents(doc, rng, gap=(1, 6), limit=max_mentions)]
            docs.append((words, ents))
            words = []
            if len(docs) == n_docs:
                break
        words = words + sentence
    return docs


class Documents:
    """The benchmark's docs, made fresh for each system (the pipe writes kb_ids on them)."""

    def __init__(self, specs, vocab):
        self.specs, self.vocab = specs, vocab

    def make(self, indices: Sequence[int]):
        from spacy.tokens import Doc, Span

        docs = []
        for i in indices:
            words, ents = self.specs[i]
            doc = Doc(self.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
            doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
            docs.append(doc)
        return docs


# ---------------------------------------------------------------------------------- candidates


class FixedCandidates:
    """A candidate source for ``luke_entity_linker``: each mention text's fixed list of rows."""

    whole_vocabulary = False

    def __init__(self, table: Dict[str, list]):
        self.table = table

    def __call__(self, mentions, context):
        return [self.table[m.text] for m in mentions]


def candidate_table(texts: Sequence[str], entity_vocab: Dict[str, int], k: int):
    """Per mention text, ``k`` LinkCandidates: its own title's row (when the vocabulary has it) and
    rows drawn with a seed from the text, in a shuffled order; uniform priors."""
    from spacy_luke.pipeline._linker.entity_candidates import LinkCandidate

    n_rows = max(entity_vocab.values()) + 1
    row_title: Dict[int, str] = {}
    table = {}
    for text in texts:
        rng = np.random.default_rng(zlib.crc32(text.encode("utf8")))
        rows = [entity_vocab[text]] if text in entity_vocab and text not in SPECIAL_ENTITIES else []
        while len(rows) < k:
            row = int(rng.integers(len(SPECIAL_ENTITIES), n_rows))
            if row not in rows:
                rows.append(row)
        rng.shuffle(rows)
        table[text] = rows
        row_title.update({r: None for r in rows})
    for title, row in entity_vocab.items():
        if row in row_title and row_title[row] is None:
            row_title[row] = title
    return {text: [LinkCandidate(row_title[r], r, 1.0 / k) for r in rows] for text, rows in table.items()}


# ------------------------------------------------------------------------------------ systems


def touch(module: torch.nn.Module) -> None:
    """Read every weight once (file-backed safetensors pages become resident before measuring)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            tensor.float().sum()


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's distinct weight tensors (tied ones once)."""
    seen = {}
    for tensor in module.state_dict().values():
        seen[(tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


class Reference:
    """transformers' LukeTokenizer + LukeForMaskedLM (or its encoder + entity head only), argmax over candidates."""

    def __init__(self, folder: Path, table: Dict[str, list], decoding: str, max_passes: int, head_only: bool):
        import transformers

        self.name = "transformers-entity-head" if head_only else "transformers"
        self.tokenizer = transformers.LukeTokenizer.from_pretrained(folder)
        self.model = transformers.LukeForMaskedLM.from_pretrained(folder).eval()
        touch(self.model)
        self.table, self.decoding, self.max_passes, self.head_only = table, decoding, max_passes, head_only
        self.timer = Timer()
        if not head_only:
            self.model.lm_head.forward = self.timer.wrap("word LM head", self.model.lm_head.forward)
        self.model.entity_predictions.forward = self.timer.wrap("entity head", self.model.entity_predictions.forward)
        self.passes = 0
        self.weights = weight_bytes(self.model)

    def logits(self, docs, entities: List[List[str]]) -> torch.Tensor:
        """entity_logits (batch, mentions, all entities) of ``docs`` with ``entities`` as input entities."""
        with self.timer("input"):
            spans = [[(e.start_char, e.end_char) for e in doc.ents] for doc in docs]
            encoded = self.tokenizer([doc.text for doc in docs], entity_spans=spans, entities=entities, padding=True,
                                     max_entity_length=max(len(s) for s in spans), return_tensors="pt")
        self.passes += 1
        with self.timer("model"), torch.no_grad():
            if self.head_only:
                hidden = self.model.luke(**encoded).entity_last_hidden_state
                return self.model.entity_predictions(hidden)
            return self.model(**encoded).entity_logits

    def candidate_scores(self, logits: torch.Tensor, docs) -> Tuple[List[List[List[str]]], torch.Tensor]:
        """Per doc and mention its candidates' kb_ids, and the logits at the candidate rows (batch, mentions, k)."""
        with self.timer("select"):
            cands = [[self.table[e.text] for e in doc.ents] for doc in docs]
            k = len(next(c for doc in cands for c in doc))
            rows = torch.zeros(logits.shape[:2] + (k,), dtype=torch.long)
            for b, doc in enumerate(cands):
                for m, c in enumerate(doc):
                    rows[b, m] = torch.tensor([x.entity_id for x in c])
            return [[[x.kb_id for x in c] for c in doc] for doc in cands], logits.gather(2, rows)

    def run(self, docs) -> List[List[str]]:
        return self.run_local(docs) if self.decoding == "local" else self.run_global(docs)

    def run_local(self, docs) -> List[List[str]]:
        logits = self.logits(docs, [["[MASK]"] * len(doc.ents) for doc in docs])
        kb_ids, scores = self.candidate_scores(logits, docs)
        del logits
        best = scores.argmax(-1).tolist()
        return [[kb_ids[b][m][best[b][m]] for m in range(len(doc.ents))] for b, doc in enumerate(docs)]

    def run_global(self, docs) -> List[List[str]]:
        """tests/test_entity_linker.py::reference_global, one forward per pass over the batch's unresolved docs."""
        entities = [["[MASK]"] * len(doc.ents) for doc in docs]
        resolved: List[Dict[int, str]] = [{} for _ in docs]
        unresolved = [list(range(len(doc.ents))) for doc in docs]
        for n_pass in range(self.max_passes):
            active = [b for b in range(len(docs)) if unresolved[b]]
            if not active:
                break
            logits = self.logits([docs[b] for b in active], [entities[b] for b in active])
            kb_ids, scores = self.candidate_scores(logits, [docs[b] for b in active])
            del logits
            with self.timer("decode"):
                probs = torch.softmax(scores.double(), dim=-1)
                confidence, best = probs.max(-1)
                for row, b in enumerate(active):
                    if n_pass == self.max_passes - 1:
                        chosen = list(unresolved[b])
                    else:
                        chosen = [max(unresolved[b], key=lambda i: float(confidence[row, i]))]
                    for i in chosen:
                        title = kb_ids[row][i][int(best[row, i])]
                        resolved[b][i] = title
                        entities[b][i] = title
                        unresolved[b].remove(i)
        return [[resolved[b][i] for i in range(len(doc.ents))] for b, doc in enumerate(docs)]


class Ours:
    """``luke_entity_linker`` with the fixed candidates."""

    def __init__(self, folder: Path, table: Dict[str, list], decoding: str, max_passes: int, batch: int, precision: str = "float32"):
        import spacy

        import spacy_luke  # noqa: F401

        self.name = OURS + ("" if precision == "float32" else f"[{precision}]")
        self.nlp = spacy.blank("en")
        self.pipe = self.nlp.add_pipe("luke_entity_linker", config={
            "pretrained": str(folder), "decoding": decoding, "max_global_passes": max_passes, "incl_prior": False, "precision": precision})
        self.pipe.candidates = FixedCandidates(table)
        self.pipe._ensure_loaded()
        touch(self.pipe.luke_model)
        self.batch = batch
        self.timer = Timer()
        pipe, luke = self.pipe, self.pipe.luke_model
        common.time_input_building(pipe, self.timer, on_batch=self._count_pass)
        luke.forward = self.timer.wrap("model", luke.forward)  # the torch module (thinc's Model has __slots__)
        if hasattr(luke, "candidate_logits"):
            luke.candidate_logits = self.timer.wrap("entity head", luke.candidate_logits)
        pipe.set_annotations = self.timer.wrap("annotate", pipe.set_annotations)
        self.passes = 0
        self.weights = weight_bytes(luke)

    def _count_pass(self, _batch) -> None:
        self.passes += 1

        return wrapped

    def run(self, docs) -> List[List[str]]:
        with self.timer("total"):
            docs = list(self.pipe.pipe(docs, batch_size=self.batch))
        return [[e.kb_id_ for e in doc.ents] for doc in docs]


# --------------------------------------------------------------------------------- measuring


def measure(systems, documents: Documents, n_docs: int, batch: int, monitor, n_mentions: int) -> Dict:
    """Alternate the systems batch by batch; mentions/s, time split, memory, agreement with the first."""
    for system in systems:  # warm-up: first calls allocate and pick kernels
        system.run(documents.make(range(min(2, n_docs))))
        system.timer.totals.clear()
        system.passes = 0

    per_batch = {s.name: [] for s in systems}
    cpu = {s.name: [0.0, 0.0] for s in systems}
    last = {"done": 0, "walls": {s.name: 0.0 for s in systems}}

    def progress(done, walls):
        mentions = sum(len(documents.specs[i][1]) for i in range(last["done"], done))
        for k, v in walls.items():
            per_batch[k].append(mentions / (v - last["walls"][k]))
        last["done"], last["walls"] = done, dict(walls)
        print(f"  {done}/{n_docs} docs, this batch: " + ", ".join(f"{k} {v[-1]:.1f} mentions/s" for k, v in per_batch.items()), flush=True)

    def with_cpu(system):
        def run(docs):
            before = resource.getrusage(resource.RUSAGE_SELF)
            out = system.run(docs)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu[system.name][0] += after.ru_utime - before.ru_utime
            cpu[system.name][1] += after.ru_stime - before.ru_stime
            return out

        return run

    results, walls, peaks = common.alternate({s.name: with_cpu(s) for s in systems}, list(range(n_docs)), batch, prepare=documents.make,
                                             monitor=monitor, on_chunk=progress)
    reference = systems[0].name
    out = {}
    for s in systems:
        same = sum(a == b for x, y in zip(results[reference], results[s.name]) for a, b in zip(x, y))
        out[s.name] = {
            "mentions_per_s": n_mentions / walls[s.name],
            "seconds": walls[s.name],
            "x_" + reference: walls[reference] / walls[s.name],
            "mentions_per_s_by_batch": per_batch[s.name],
            "cpu_user_s": cpu[s.name][0],
            "cpu_sys_s": cpu[s.name][1],
            "forward_passes": s.passes,
            "split_s": dict(s.timer.totals),
            "peak_above_batch_start_mb": peaks[s.name] / MB,
            "same_kb_ids_as_" + reference: same / max(1, n_mentions),
        }
    return out


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument("--entities", type=int, default=500_000, help="rows of the entity table")
    parser.add_argument("--workdir", default="/tmp/spacy-luke-bench-linker")
    parser.add_argument("--data", help="a CoNLL-format file (default: --conll-dir's test.txt; neither: generated text)")
    common.add_conll_argument(parser)
    parser.add_argument("--docs", type=int, default=96)
    parser.add_argument("--doc-words", type=int, default=200, help="words per doc at most (whole sentences)")
    parser.add_argument("--max-mentions", type=int, default=64, help="mentions per doc at most (the pipe's max_entities_per_pass)")
    parser.add_argument("--candidates", type=int, default=30, help="candidates per mention")
    parser.add_argument("--batch", type=int, default=32, help="docs per batch (both systems) and per alternation step")
    parser.add_argument("--decodings", default="local,global")
    parser.add_argument("--global-passes", type=int, default=4, help="passes per doc at most with global decoding (both systems)")
    parser.add_argument("--references", default="transformers,transformers-entity-head",
                        help="transformers (LukeForMaskedLM as is) and/or transformers-entity-head (without the word LM head)")
    parser.add_argument("--precisions", default="float32", help="luke_entity_linker precisions, comma-separated")
    parser.add_argument("--bpe-vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--malloc", choices=["default", "tuned"], default="default")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the per-system memory measurement (one child process each)")
    parser.add_argument("--memory-decoding", default="local", help="the decoding the memory children run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    common.use_malloc(args.malloc)
    common.set_threads(args.threads)

    import spacy

    data = Path(args.data) if args.data else args.conll_dir / "test.txt"
    if data.is_file():
        specs = conll_documents(data, args.docs, args.doc_words, args.max_mentions)
        source = f"{data.name}: consecutive sentences of one article up to {args.doc_words} words, doc.ents = gold NER spans"
        bpe_text = common.conll_sentences(data)
        if not args.data and (args.conll_dir / "train.txt").is_file():
            bpe_text = common.conll_sentences(args.conll_dir / "train.txt") + bpe_text
    else:
        specs = generated_documents(args.docs, args.doc_words, args.max_mentions)
        source = f"generated text ({data} not found), random mentions"
        bpe_text = [w for w, _ in specs]
    titles = mention_titles(data if data.is_file() else None)
    folder = build_checkpoint(Path(args.workdir) / f"luke-{args.shape}-mlm-{args.entities}-bpe{args.bpe_vocab}", args.shape,
                              args.entities, titles, bpe_text, args.bpe_vocab)
    n_docs = len(specs)
    n_mentions = sum(len(e) for _, e in specs)
    n_words = sum(len(w) for w, _ in specs)
    entity_vocab = json.loads((folder / "entity_vocab.json").read_text(encoding="utf8"))
    texts = {" ".join(words[s:e]) for words, ents in specs for s, e, _ in ents}
    table = candidate_table(sorted(texts), entity_vocab, args.candidates)
    info = common.machine()
    info["commit"] = git_state()
    documents = Documents(specs, spacy.blank("en").vocab)
    refs = [r.strip() for r in args.references.split(",") if r.strip()]
    names = refs + [OURS + ("" if p.strip() == "float32" else f"[{p.strip()}]") for p in args.precisions.split(",") if p.strip()]

    def make(name: str, decoding: str):
        if name.startswith(OURS):
            precision = name[len(OURS) + 1 : -1] if "[" in name else "float32"
            return Ours(folder, table, decoding, args.global_passes, args.batch, precision)
        return Reference(folder, table, decoding, args.global_passes, head_only=(name == "transformers-entity-head"))

    if args.memory_child:
        print(json.dumps(child_memory(make(args.memory_child, args.memory_decoding), documents.make(range(min(args.batch, n_docs))))))
        return {}
    print(f"machine: {info}")
    print(f"checkpoint: {folder} ({args.shape} shape, {len(entity_vocab)} entities)")
    print(f"data: {source}: {n_docs} docs, {n_words} words, {n_mentions} mentions, {args.candidates} candidates each; batches of {args.batch}")

    monitor = common.PeakRSS()
    report = {"machine": info, "command": " ".join(["python"] + sys.argv), "checkpoint": str(folder), "shape": {"name": args.shape, **SHAPES[args.shape]},
              "entities": len(entity_vocab), "data": source, "docs": n_docs, "words": n_words, "mentions": n_mentions,
              "candidates": args.candidates, "batch": args.batch, "global_passes": args.global_passes, "runs": {}}
    decodings = [d.strip() for d in args.decodings.split(",") if d.strip()]
    for decoding in decodings:
        systems = [make(name, decoding) for name in names]
        print(f"{decoding} decoding: weights " + ", ".join(f"{s.name} {s.weights / MB:.0f} MB" for s in systems), flush=True)
        run = measure(systems, documents, n_docs, args.batch, monitor, n_mentions)
        for system in systems:
            run[system.name]["weights_mb"] = system.weights / MB
        report["runs"][decoding] = run
        del systems
        gc.collect()
    monitor.stop()
    if args.memory:
        # One process per system: load, then one batch (the first --batch docs) with --memory-decoding
        report["memory_decoding"] = args.memory_decoding
        report["memory"] = {}
        for name in names:
            command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--memory-child", name]
            out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ})
            report["memory"][name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"memory, {name}: {report['memory'][name]}", flush=True)

    print(json.dumps(report, indent=1))
    print()
    first = refs[0] if refs else names[0]
    memory = report.get("memory", {})
    print(f"| system | decoding | mentions/s | x {first} | peak MB above loaded (own process, {args.memory_decoding}, one batch) | "
          f"peak MB (own process) | peak MB above batch start (alternating) | same kb_ids as {first} |")
    print("|---|---|---|---|---|---|---|---|")
    for decoding, run in report["runs"].items():
        for name, e in run.items():
            m = memory.get(name, {}) if decoding == args.memory_decoding else {}
            above, whole = (f"{m[k]:.0f}" if k in m else "-" for k in ("peak_above_loaded_mb", "peak_mb"))
            print(f"| {name} | {decoding} | {e['mentions_per_s']:.1f} | {e.get('x_' + first, float('nan')):.2f} | {above} | {whole} | "
                  f"{e['peak_above_batch_start_mb']:.0f} | {e.get(f'same_kb_ids_as_{first}', float('nan')):.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def git_state() -> str:
    """The repository's commit, with the files changed since it (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=common.REPO, capture_output=True, text=True).stdout.split("\n")
    except OSError:
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux: ``echo 5 > /proc/self/clear_refs``); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_memory(system, docs) -> Dict:
    """In a process of its own: RSS once loaded, then the peak while ``system`` runs ``docs`` (first call, no warm-up)."""
    gc.collect()
    loaded = common.rss_bytes()
    reset = reset_peak_rss()
    monitor = common.PeakRSS()
    monitor.reset()
    system.run(docs)
    monitor.stop()
    peak = max(common.peak_rss_bytes(), monitor.peak) if reset else monitor.peak
    return {"weights_mb": system.weights / MB, "rss_loaded_mb": loaded / MB, "peak_mb": peak / MB,
            "peak_above_loaded_mb": (peak - loaded) / MB, "peak_from": "VmHWM reset after loading" if reset else "sampled RSS",
            "forward_passes": system.passes}


if __name__ == "__main__":
    main()
