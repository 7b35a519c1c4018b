"""Command line: ``python -m spacy_luke COMMAND``.

- ``ner``: run luke_ner over text files (or stdin) and write JSONL or a displaCy HTML page.
- ``convert-conll``: CoNLL-2003 style NER files to ``.spacy`` DocBins.
- ``convert-encoder``: a BERT / RoBERTa / XLM-R checkpoint folder to a LUKE checkpoint folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

EXIT_USAGE = 2


def _read_texts(inputs: Sequence[str], by_line: bool) -> Tuple[List[str], List[str]]:
    """(texts, source names) from files, or stdin for ``-`` / no inputs."""
    texts, sources = [], []
    for name in inputs or ["-"]:
        if name == "-":
            content = sys.stdin.read()
        else:
            path = Path(name)
            if not path.is_file():
                raise FileNotFoundError(f"Input file not found: {name}")
            content = path.read_text(encoding="utf8")
        if by_line:
            for lineno, line in enumerate(content.splitlines(), 1):
                if line.strip():
                    texts.append(line)
                    sources.append(f"{name}:{lineno}")
        else:
            texts.append(content)
            sources.append(name)
    return texts, sources


def build_ner_pipeline(pretrained: str, *, lang: str = "en", spacy_model: Optional[str] = None, **settings):
    """A pipeline for the CLI: a spaCy model (for tokens/sentences) or a blank one + sentencizer, + luke_ner."""
    import spacy

    if (Path(pretrained) / "config.cfg").is_file():  # a saved spaCy pipeline with a luke_ner pipe
        nlp = spacy.load(pretrained)
        names = [name for name, pipe in nlp.pipeline if type(pipe).__name__ == "LukeNER"]
        if not names:
            raise ValueError(f"The spaCy pipeline {pretrained} has no luke_ner component (it has {nlp.pipe_names}).")
        return nlp
    if spacy_model:
        nlp = spacy.load(spacy_model, exclude=["ner"])
    else:
        nlp = spacy.blank(lang)
        nlp.add_pipe("sentencizer")
    config = {"pretrained": pretrained, **{k: v for k, v in settings.items() if v is not None}}
    nlp.add_pipe("luke_ner", config=config)
    # Load now, so that a missing or unreachable model is reported before any input is read.
    nlp.get_pipe("luke_ner").luke_model
    return nlp


def _entities(doc) -> List[dict]:
    return [
        {"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text, "score": e._.luke_score}
        for e in doc.ents
    ]


def run_ner(args: argparse.Namespace) -> int:
    from spacy import displacy
    from tqdm import tqdm

    texts, sources = _read_texts(args.inputs, by_line=not args.whole_file)
    nlp = build_ner_pipeline(
        args.pretrained,
        lang=args.lang,
        spacy_model=args.spacy_model,
        max_mention_length=args.max_mention_length,
    )
    out: TextIO = open(args.output, "w", encoding="utf8") if args.output else sys.stdout
    try:
        docs = tqdm(
            nlp.pipe(texts, batch_size=args.batch_size),
            total=len(texts),
            unit="text",
            disable=args.quiet or len(texts) < 20,
            file=sys.stderr,
        )
        if args.format == "jsonl":
            for source, doc in zip(sources, docs):
                record = {"source": source, "text": doc.text, "entities": _entities(doc)}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            out.write(displacy.render(list(docs), style="ent", page=True, jupyter=False))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def run_convert_conll(args: argparse.Namespace) -> int:
    from .conll import convert_conll

    n = convert_conll(args.input, args.output, n_sents=args.n_sents, limit=args.limit)
    print(f"Wrote {n} docs to {args.output}", file=sys.stderr)
    return 0


def run_convert_encoder(args: argparse.Namespace) -> int:
    from .model.from_encoder import convert_encoder_to_luke

    folder = convert_encoder_to_luke(args.source, args.output, overwrite=args.overwrite)
    print(f"Wrote a LUKE checkpoint to {folder}", file=sys.stderr)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_luke", description="LUKE in spaCy pipelines.")
    commands = parser.add_subparsers(dest="command", required=True)

    ner = commands.add_parser("ner", help="named entities of text files (or stdin) as JSONL or displaCy HTML")
    ner.add_argument("inputs", nargs="*", help="text files; '-' or none reads stdin")
    ner.add_argument("--pretrained", required=True, help="hub id or local folder of a LUKE NER checkpoint, or a saved spaCy pipeline")
    ner.add_argument("--format", choices=("jsonl", "html"), default="jsonl")
    ner.add_argument("--output", "-o", help="output file (default: stdout)")
    ner.add_argument("--whole-file", action="store_true", help="one document per file instead of one per non-empty line")
    ner.add_argument("--lang", default="en", help="language of the blank tokenizer (default: en)")
    ner.add_argument("--spacy-model", help="a spaCy pipeline to tokenize and split sentences (its own ner is excluded)")
    ner.add_argument("--max-mention-length", type=int, default=None, help="longest candidate span in tokens (default 16)")
    ner.add_argument("--batch-size", type=int, default=32)
    ner.add_argument("--quiet", action="store_true", help="no progress bar")
    ner.set_defaults(func=run_ner)

    conll = commands.add_parser("convert-conll", help="CoNLL-2003 style NER file -> .spacy DocBin")
    conll.add_argument("input")
    conll.add_argument("output")
    conll.add_argument("--n-sents", type=int, default=10, help="sentences per doc (document context)")
    conll.add_argument("--limit", type=int, default=0, help="keep only the first N sentences (0: all)")
    conll.set_defaults(func=run_convert_conll)

    encoder = commands.add_parser("convert-encoder", help="BERT/RoBERTa/XLM-R checkpoint folder -> LUKE checkpoint folder")
    encoder.add_argument("source")
    encoder.add_argument("output")
    encoder.add_argument("--overwrite", action="store_true")
    encoder.set_defaults(func=run_convert_encoder)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as err:
        # Missing files, models that cannot be found or downloaded, bad settings: a message, not a trace.
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
