"""``python -m spacy_luke ner``: luke_ner over text files (or stdin), as JSONL or one displaCy page."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, TextIO

from ._errors import CliError
from ._io import check_output, count, read_texts

HELP = "named entities of text files (or stdin) as JSONL or displaCy HTML"


def add_command(commands) -> None:
    ner = commands.add("ner", HELP, run)
    ner.add_argument("inputs", nargs="*", help="UTF-8 text files; '-' or none reads stdin")
    ner.add_argument("--pretrained", required=True, help="hub id or local folder of a LUKE NER checkpoint, or a saved spaCy pipeline")
    ner.add_argument("--format", choices=("jsonl", "html"), default="jsonl", help="one JSON record per text, or one displaCy page (default: jsonl)")
    ner.add_argument("--output", "-o", help="output file (default: stdout)")
    ner.add_argument("--whole-file", action="store_true", help="one document per file instead of one per non-empty line")
    ner.add_argument("--lang", default="en", help="language of the blank tokenizer (default: en)")
    ner.add_argument("--spacy-model", help="a spaCy pipeline to tokenize and split sentences (its own ner is excluded)")
    ner.add_argument("--max-mention-length", type=count(1), default=None, help="longest candidate span in tokens (default 16)")
    ner.add_argument("--batch-size", type=count(1), default=32, help="texts per nlp.pipe batch (default: 32)")
    ner.add_argument("--quiet", action="store_true", help="no progress bar (there is none under 20 texts)")
    ner.add_argument("--kb-url-template", default="https://en.wikipedia.org/wiki/{}", help="html: link of a linked entity, {} = its kb_id, URL-encoded with spaces as _ (default: English Wikipedia)")


def build_ner_pipeline(pretrained: str, *, lang: str = "en", spacy_model: Optional[str] = None, **settings):
    """The pipeline ``ner`` runs: a saved spaCy pipeline with a luke_ner pipe, or a LUKE checkpoint
    behind a spaCy model (tokens, sentences) or a blank one + sentencizer
    (:func:`spacy_luke.annotate.pipeline.load_pipeline`), its weights loaded now."""
    from ..annotate.pipeline import load_pipeline

    nlp = load_pipeline(pretrained, lang=lang, spacy_model=spacy_model, ner_settings=settings)
    pipes = [pipe for _, pipe in nlp.pipeline if type(pipe).__name__ == "LukeNER"]
    if not pipes:
        raise ValueError(f"The spaCy pipeline {pretrained} has no luke_ner component (it has {nlp.pipe_names}).")
    # Load now, so that a missing or unreachable model is reported before any output is written.
    for pipe in pipes:
        pipe.luke_model
    return nlp


def kb_url(template: str, kb_id: str) -> str:
    """The link of ``kb_id``: ``template`` with the kb_id as one URL path segment in its ``{}``,
    Wikipedia style (spaces as ``_``, then every character but letters, digits and ``_.-~``
    percent-encoded: ``/``, ``?``, ``#``, ``%``, ``"``, ``&`` ...)."""
    from urllib.parse import quote

    return template.format(quote(kb_id.replace(" ", "_"), safe=""))


def _check_kb_url_template(template: str) -> None:
    try:
        placeholder = template.format("x") != template.format("y")
    except (IndexError, KeyError, ValueError) as err:
        placeholder, problem = False, f"{type(err).__name__}: {err}"
    else:
        problem = "no {}"
    if not placeholder:
        raise CliError(
            f"--kb-url-template {template!r} is not a link with one {{}} where the kb_id goes ({problem}); "
            "e.g. https://en.wikipedia.org/wiki/{}"
        )


def html_page(docs, kb_url_template: str) -> str:
    """One displaCy page of the docs' entities, linked entities linked with ``kb_url``.

    displaCy escapes the text, but puts labels, kb_ids and links into the markup as they are (a
    title from an alias file or a KB could add attributes or markup): here every value it embeds
    is escaped, the label through the entity's template parameters (so that its colour is still
    the label's own).
    """
    from spacy import displacy
    from spacy.util import escape_html

    parsed = []
    for doc in docs:
        ents = []
        for ent in doc.ents:
            record = {"start": ent.start_char, "end": ent.end_char, "label": ent.label_, "params": {"label": escape_html(ent.label_)}}
            if ent.kb_id_:
                record.update(kb_id=escape_html(ent.kb_id_), kb_url=escape_html(kb_url(kb_url_template, ent.kb_id_)))
            ents.append(record)
        settings = {"lang": doc.lang_, "direction": doc.vocab.writing_system.get("direction", "ltr")}
        parsed.append({"text": doc.text, "ents": ents, "title": None, "settings": settings})
    # manual=True: the entities above, and no displaCy warning (W006) for a doc without entities.
    return displacy.render(parsed, style="ent", page=True, jupyter=False, manual=True)


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    if args.format == "html":
        _check_kb_url_template(args.kb_url_template)
    texts, sources = read_texts(args.inputs, by_line=not args.whole_file)
    from tqdm import tqdm

    from ..annotate.records import entity_records, json_line

    nlp = build_ner_pipeline(
        args.pretrained,
        lang=args.lang,
        spacy_model=args.spacy_model,
        max_mention_length=args.max_mention_length,
    )
    quiet = args.quiet or len(texts) < 20 or sys.stderr is None
    out: TextIO = open(args.output, "w", encoding="utf8") if args.output else sys.stdout
    try:
        # The bar counts written docs, so it ends at the total (a bar wrapping nlp.pipe stopped one short:
        # zip never resumes the pipe after its last doc).
        with tqdm(total=len(texts), unit="text", disable=quiet, file=sys.stderr) as progress:
            docs = []
            for source, doc in zip(sources, nlp.pipe(texts, batch_size=args.batch_size)):
                if args.format == "jsonl":
                    record = {"source": source, "text": doc.text, "entities": entity_records(doc)}
                    out.write(json_line(record))
                else:
                    docs.append(doc)
                progress.update()
        if args.format == "html":
            out.write(html_page(docs, args.kb_url_template))
        out.flush()  # a closed pipe is reported here, not at interpreter exit
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
