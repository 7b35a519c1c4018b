"""Command line: ``python -m spacy_luke COMMAND``.

- ``ner``: run luke_ner over text files (or stdin) and write JSONL or a displaCy HTML page.
- ``convert-conll``: CoNLL-2003 style NER files to ``.spacy`` DocBins.
- ``convert-encoder``: a BERT / RoBERTa / XLM-R checkpoint folder to a LUKE checkpoint folder.
- ``build-kb``: an alias file and a LUKE checkpoint to a spaCy knowledge base (for entity linking).
- ``annotate``: any pipeline over text / JSONL files, streamed into resumable JSONL / DocBin
  shards, locally (CPU or GPU) or on Ray (``spacy_luke.annotate``).
- ``export-onnx``: a LUKE NER / typer / relation / encoder head (a checkpoint or a saved
  pipeline's pipe) to an ONNX folder, checked against torch with ONNX Runtime (``spacy_luke.export``).
- ``train-pruner``: a trained luke_ner pipeline plus its training data to the same pipeline with
  a learned span pruner (``spacy_luke.pruner_training``).

Every failure is one line on stderr, ``error: FILE[:LINE]: what is wrong; the fix``, and exit
code 2, never a traceback; ``--debug`` (or ``SPACY_LUKE_DEBUG=1``) re-raises instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, NoReturn, Optional, Sequence, TextIO, Tuple

EXIT_USAGE = 2  # every failure: bad arguments, unreadable input, empty input, a model that cannot load
EXIT_INTERRUPTED = 130
STDIN, STDOUT = "<stdin>", "<stdout>"

EPILOG = """\
Every failure prints one line on stderr (error: FILE[:LINE]: what is wrong; the fix) and exits
with status 2, empty input included. For the Python traceback (to debug or report a bug), add
--debug after the command or set SPACY_LUKE_DEBUG=1.
"""


class CliError(Exception):
    """A failure the user can fix; its message is the whole report."""


def _report(message: str) -> None:
    """One line on stderr (nothing when stderr itself is closed)."""
    if sys.stderr is not None:
        print("error: " + " ".join(message.split()), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ input and output


def input_file(name: str) -> Path:
    """``name`` as an existing, non-directory path (FIFOs such as ``<(cmd)`` included)."""
    path = Path(name)
    if path.is_dir():
        raise CliError(f"{name} is a directory, not a file: give the files in it (e.g. {name}/*.txt)")
    if not path.exists():
        raise CliError(f"{name}: no such input file")
    return path


def _decode(data: bytes, name: str) -> str:
    """UTF-8 text, or a CliError naming the line and column of the first bad byte."""
    try:
        return data.decode("utf8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise CliError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8"
        ) from None


def _check_output(name: Optional[str]) -> None:
    """Fail before any work when the output cannot be written (stdout closed, no such folder)."""
    if name is None:
        if sys.stdout is None:
            raise CliError(f"{STDOUT} is closed: write to a file with --output FILE")
    elif Path(name).is_dir():
        raise CliError(f"{name} is a directory: give --output a file name")
    elif not Path(name).parent.is_dir():
        raise CliError(f"{name}: the folder {Path(name).parent} does not exist")


def _read_input(name: str) -> str:
    """A file's or stdin's text, with universal newlines (as text mode reads it)."""
    if name != "-":
        text = _decode(input_file(name).read_bytes(), name)
    elif sys.stdin is None:
        raise CliError(f"{STDIN} is closed: pipe text in, or give input files")
    elif hasattr(sys.stdin, "buffer"):  # bytes, so that binary input fails here, not mid-run
        text = _decode(sys.stdin.buffer.read(), STDIN)
    else:
        text = sys.stdin.read()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_texts(inputs: Sequence[str], by_line: bool) -> Tuple[List[str], List[str]]:
    """(texts, source names) from files, or stdin for ``-`` / no inputs; all read before any model loads."""
    texts, sources = [], []
    for name in inputs or ["-"]:
        content = _read_input(name)
        if by_line:
            for lineno, line in enumerate(content.splitlines(), 1):
                if line.strip():
                    texts.append(line)
                    sources.append(f"{name}:{lineno}")
        else:
            texts.append(content)
            sources.append(name)
    if not any(text.strip() for text in texts):
        names = ", ".join(STDIN if name == "-" else name for name in inputs or ["-"])
        raise CliError(f"no texts in {names}: the input is empty or only blank lines")
    return texts, sources


# ------------------------------------------------------------------------------------ commands


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
    from spacy.tokens import Span

    with_scores = Span.has_extension("luke_kb_scores")
    records = []
    for e in doc.ents:
        record = {"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text, "score": e._.luke_score, "kb_id": e.kb_id_}
        scores = e._.luke_kb_scores if with_scores else None
        if scores is not None:  # the entity linker's [(kb_id, probability), ...]
            record["kb_scores"] = [[kb_id, float(p)] for kb_id, p in scores]
        records.append(record)
    return records


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


def run_ner(args: argparse.Namespace) -> int:
    _check_output(args.output)
    if args.format == "html":
        _check_kb_url_template(args.kb_url_template)
    texts, sources = _read_texts(args.inputs, by_line=not args.whole_file)
    from tqdm import tqdm

    from .annotate.records import json_line

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
                    record = {"source": source, "text": doc.text, "entities": _entities(doc)}
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


def run_convert_conll(args: argparse.Namespace) -> int:
    from .conll import convert_conll

    n = convert_conll(input_file(args.input), args.output, n_sents=args.n_sents, limit=args.limit)
    print(f"Wrote {n} docs to {args.output}", file=sys.stderr)
    return 0


def run_convert_encoder(args: argparse.Namespace) -> int:
    from .convert import convert_encoder_to_luke

    try:
        folder = convert_encoder_to_luke(args.source, args.output, overwrite=args.overwrite)
    except FileExistsError as err:
        if "overwrite=True" not in str(err):  # the library's wording; the CLI has a flag for it
            raise
        raise CliError(f"{args.output} is not empty: add --overwrite to replace a previous conversion") from None
    print(f"Wrote a LUKE checkpoint to {folder}", file=sys.stderr)
    return 0


def run_build_kb(args: argparse.Namespace) -> int:
    from .kb_tools import build_kb_with_report

    aliases = input_file(args.aliases)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CliError(f"{args.output} is a file: give build-kb a folder to write the knowledge base to")
    kb, report = build_kb_with_report(aliases, args.checkpoint, language=args.lang)
    kb.to_disk(output)
    print(
        f"Wrote a knowledge base to {output}: {report.entities} entities, {report.aliases} aliases; "
        f"skipped {len(report.skipped_titles)} titles not in the entity vocabulary"
        f" ({report.skipped_aliases} aliases with none left)",
        file=sys.stderr,
    )
    return 0


def run_annotate(args: argparse.Namespace) -> int:
    from .annotate import annotate

    def inform(message: str) -> None:
        print(message[:1].upper() + message[1:], file=sys.stderr, flush=True)

    try:
        summary = annotate(
            args.pipeline, args.inputs, args.output,
            input_format=args.input_format, whole_file=args.whole_file, text_field=args.text_field,
            on_error=args.on_error, output_format=args.format, shard_size=args.shard_size,
            batch_size=args.batch_size, n_process=args.n_process, gpu_id=args.gpu_id, precision=args.precision,
            max_batch_cost=args.max_batch_cost, lang=args.lang, overwrite=args.overwrite, engine=args.engine,
            ray_address=args.address, ray_concurrency=args.concurrency, ray_num_cpus=args.num_cpus,
            ray_num_gpus=args.num_gpus, progress=not args.quiet, inform=inform,
        )
    except KeyboardInterrupt:
        _report(f"interrupted: run the same command again to resume (the records written to {args.output} are kept)")
        return EXIT_INTERRUPTED
    if summary.already_complete:
        return 0
    resumed = f"; {summary.resumed} records were already there" if summary.resumed else ""
    print(
        f"Wrote {summary.written} docs ({summary.words} words, {summary.words_per_second:.1f} words/s on {summary.device}) "
        f"to {args.output}; {summary.skipped_bad} bad lines skipped{resumed}",
        file=sys.stderr,
    )
    return 0


def run_export_onnx(args: argparse.Namespace) -> int:
    try:
        from .export.onnx import export_onnx

        report = export_onnx(
            args.source, args.output, head=args.head, pipe=args.pipe, opset=args.opset, lite=args.lite,
            int8=args.int8, check=args.check, atol=args.atol, overwrite=args.overwrite,
        )
    except FileExistsError as err:
        if "overwrite=True" not in str(err):  # the library's wording; the CLI has a flag for it
            raise
        raise CliError(f"{args.output} is not empty: add --overwrite to replace its files") from None
    except ImportError as err:  # onnx / onnxruntime missing: the message says what to install
        raise CliError(str(err)) from None
    checked = (
        f"ONNX Runtime matches torch float32 within {max(report.max_abs_diff.values()):.1g}"
        if report.max_abs_diff else "not checked (--no-check)"
    )
    print(f"Wrote {report.head} as ONNX (opset {report.opset}) to {report.folder}; {checked}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ parsing


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (subcommand parsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        _report(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return int(text)

    return parse


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m spacy_luke", description="LUKE in spaCy pipelines.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the Python traceback of a failure (also: SPACY_LUKE_DEBUG=1)")

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, epilog=EPILOG, parents=[common],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=func)
        return sub

    ner = command("ner", "named entities of text files (or stdin) as JSONL or displaCy HTML", run_ner)
    ner.add_argument("inputs", nargs="*", help="UTF-8 text files; '-' or none reads stdin")
    ner.add_argument("--pretrained", required=True, help="hub id or local folder of a LUKE NER checkpoint, or a saved spaCy pipeline")
    ner.add_argument("--format", choices=("jsonl", "html"), default="jsonl", help="one JSON record per text, or one displaCy page (default: jsonl)")
    ner.add_argument("--output", "-o", help="output file (default: stdout)")
    ner.add_argument("--whole-file", action="store_true", help="one document per file instead of one per non-empty line")
    ner.add_argument("--lang", default="en", help="language of the blank tokenizer (default: en)")
    ner.add_argument("--spacy-model", help="a spaCy pipeline to tokenize and split sentences (its own ner is excluded)")
    ner.add_argument("--max-mention-length", type=_count(1), default=None, help="longest candidate span in tokens (default 16)")
    ner.add_argument("--batch-size", type=_count(1), default=32, help="texts per nlp.pipe batch (default: 32)")
    ner.add_argument("--quiet", action="store_true", help="no progress bar (there is none under 20 texts)")
    ner.add_argument("--kb-url-template", default="https://en.wikipedia.org/wiki/{}", help="html: link of a linked entity, {} = its kb_id, URL-encoded with spaces as _ (default: English Wikipedia)")

    conll = command("convert-conll", "CoNLL-2003 style NER file -> .spacy DocBin", run_convert_conll)
    conll.add_argument("input", help="UTF-8 CoNLL file: 'token TAG ...' lines (IOB1 or IOB2 tags in the 2nd column), blank lines between sentences")
    conll.add_argument("output", help="the .spacy file to write (its folder is created)")
    conll.add_argument("--n-sents", type=_count(1), default=10, help="sentences per doc (document context; default: 10)")
    conll.add_argument("--limit", type=_count(0), default=0, help="keep only the first N sentences (default 0: all)")

    encoder = command("convert-encoder", "BERT/RoBERTa/XLM-R checkpoint folder -> LUKE checkpoint folder", run_convert_encoder)
    encoder.add_argument("source", help="local folder of the encoder: config.json, weights, tokenizer files")
    encoder.add_argument("output", help="folder to write the LUKE checkpoint to (new or empty, unless --overwrite)")
    encoder.add_argument("--overwrite", action="store_true", help="replace the files of a previous conversion in the output folder")

    run = command("annotate", "any pipeline over text / JSONL files -> resumable JSONL or DocBin shards (local, GPU or Ray)", run_annotate)
    run.add_argument("pipeline", help="a saved spaCy pipeline (folder or package) with LUKE pipes, or a LUKE checkpoint (gets sentencizer + luke_ner)")
    run.add_argument("inputs", nargs="*", help="UTF-8 text files (one text per line) or JSONL files (.jsonl); '-' or none reads stdin")
    run.add_argument("--output", "-o", required=True, help="output folder: manifest.json and part-NNNNN.jsonl / .spacy shards (a re-run resumes)")
    run.add_argument("--format", choices=("jsonl", "docbin"), default="jsonl", help="shard format (default: jsonl, written as it goes)")
    run.add_argument("--input-format", choices=("auto", "text", "jsonl"), default="auto", help="input kind (default: by suffix: .jsonl/.ndjson are JSONL)")
    run.add_argument("--text-field", default="text", help="JSONL: the field holding the text (default: text); other fields are carried through")
    run.add_argument("--whole-file", action="store_true", help="text inputs: one document per file instead of one per non-empty line")
    run.add_argument("--on-error", choices=("skip", "fail"), default="skip", help="a bad line (not UTF-8, invalid JSON, no text): report and skip it, or stop (default: skip)")
    run.add_argument("--shard-size", type=_count(1), default=10000, help="input records per output shard (default: 10000)")
    run.add_argument("--batch-size", type=_count(1), default=32, help="texts per nlp.pipe batch (default: 32)")
    run.add_argument("--n-process", type=_count(1), default=1, help="local engine on CPUs: processes (default: 1)")
    run.add_argument("--gpu-id", type=_count(0), default=None, help="run the LUKE pipes on this CUDA device (default: CPU); with --engine ray: on GPUs (each actor gets its own)")
    run.add_argument("--precision", choices=("float32", "bfloat16", "float16", "int8"), default=None, help="precision of every LUKE pipe (default: each pipe's own)")
    run.add_argument("--max-batch-cost", type=_count(1), default=None, help="padded cost per forward pass for every LUKE pipe (default: the pipe's; x8 on a GPU)")
    run.add_argument("--lang", default="en", help="a LUKE checkpoint as PIPELINE: language of the blank tokenizer (default: en)")
    run.add_argument("--overwrite", action="store_true", help="start over in an output folder that holds another job")
    run.add_argument("--engine", choices=("local", "ray"), default="local", help="local (default) or ray (a pool of Ray actors, each loading the pipeline once; pip install spacy-luke[ray])")
    run.add_argument("--address", default=None, help="ray: the cluster to join (e.g. ray://head:10001 or auto; default: a local cluster)")
    run.add_argument("--concurrency", type=_count(1), default=1, help="ray: pipeline actors (each loads the pipeline once; default: 1)")
    run.add_argument("--num-cpus", type=float, default=None, help="ray: CPUs per actor (default: Ray's, 1)")
    run.add_argument("--num-gpus", type=float, default=None, help="ray: GPUs per actor (default: 1 with --gpu-id, else 0)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    kb = command("build-kb", "alias file + LUKE checkpoint -> spaCy knowledge base (entity vectors = LUKE's entity embeddings)", run_build_kb)
    kb.add_argument("aliases", help="UTF-8 TSV file of alias<TAB>title<TAB>count lines (titles without a language prefix)")
    kb.add_argument("checkpoint", help="hub id or local folder of a LUKE / mLUKE checkpoint (with its entity vocabulary)")
    kb.add_argument("output", help="folder to write the knowledge base to (kb.to_disk; load it with InMemoryLookupKB.from_disk)")
    kb.add_argument("--lang", default=None, help="mLUKE: the language prefix of the titles, e.g. en (default: none, LUKE titles)")

    from .export import DEFAULT_OPSET, HEAD_ALIASES, MIN_OPSET

    onnx = command("export-onnx", "LUKE NER / typer / relation / encoder head -> ONNX folder, checked with ONNX Runtime (pip install spacy-luke[onnx])", run_export_onnx)
    onnx.add_argument("source", help="a LUKE checkpoint folder or hub id, a saved spaCy pipeline with a LUKE pipe, or one saved LUKE pipe's folder")
    onnx.add_argument("output", help="folder to write model.onnx, config.json, tokenizer files and onnx_export.json to (new or empty, unless --overwrite)")
    onnx.add_argument("--head", choices=sorted(HEAD_ALIASES) + sorted(HEAD_ALIASES.values()), default=None, metavar="HEAD", help="the head to export: ner, typer, relation or encoder (or a model class name); default: the one the checkpoint's config.json names")
    onnx.add_argument("--pipe", default=None, help="a spaCy pipeline with several LUKE pipes: the name of the one to export")
    onnx.add_argument("--opset", type=_count(MIN_OPSET), default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET}; at least {MIN_OPSET})")
    onnx.add_argument("--lite", action="store_true", help="keep only the special entities of the entity table (NER, typer, relations feed [MASK] entities only)")
    onnx.add_argument("--int8", action="store_true", help="also write model.int8.onnx: ONNX Runtime's dynamic int8 quantization of the weight products (faster on CPUs; not within --atol)")
    onnx.add_argument("--check", action=argparse.BooleanOptionalAction, default=True, help="run ONNX Runtime against the torch model on two samples of different lengths (default: --check)")
    onnx.add_argument("--atol", type=float, default=1e-4, help="--check: the largest difference from torch float32 allowed (default: 1e-4)")
    onnx.add_argument("--overwrite", action="store_true", help="replace the files of a previous export in the output folder")

    from .pruner_training import add_train_pruner_command

    add_train_pruner_command(command, _count)
    return parser


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:  # "[Errno 2] ...: 'x'" -> "x: ..."
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, (CliError, OSError, ValueError)):
        return str(err) or type(err).__name__
    return f"unexpected {type(err).__name__}: {err} (add --debug for the traceback, and please report it)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    if args.debug or os.environ.get("SPACY_LUKE_DEBUG", "0") not in ("", "0"):
        return args.func(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _report("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away: say so once, and keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _report(f"{STDOUT}: the reader closed the pipe before all output was written")
    except Exception as err:  # never a traceback: one line, the file named by the message
        _report(_message(err))
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
