"""``--executor ray-data``: many input files on Ray Data, one output file per input, resumable by file.

Design:

* **One task per input file, on a pool of actors.** The pending inputs become a dataset of paths
  (``ray.data.from_items``); ``map_batches`` hands them one at a time to ``concurrency`` actors of
  :class:`FileAnnotator`, each of which loads the pipeline once (annotate's loader and device plan)
  and, for each file, reads it with annotate's own reader (so lines, bad lines, carried fields and
  records are the local executor's), runs ``nlp.pipe`` in batches of ``batch_size`` and writes the
  file's records. Ray Data spreads the files over the actors as they free up; the driver reads
  nothing but the summaries (a path, counts), so the inputs and outputs must be paths every node
  sees (a shared file system).
* **One output per input, complete or absent.** Input ``k`` (in the order given) goes to
  ``OUT/NNNNN-NAME.jsonl`` (or ``.parquet``), written as ``.partial`` and renamed when the file is
  done: a re-run of the same job skips the inputs whose output exists and redoes the others (a
  partial output is never counted). The folder holds the job's ``manifest.json`` (:mod:`.job`: the
  same job is the same inputs, pipeline and settings) and its lock (:mod:`.folder_lock`).
* Use it for many files (a folder, a glob); for stdin or one stream, the local executor or
  ``--executor ray`` (an actor pool fed by the driver, resumable by record).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .folder_lock import FolderLock
from .job import compare, read_manifest, write_manifest
from .shards import OutputFolderError

OUTPUT_SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet"}
OWN_OUTPUT = re.compile(r"^\d{5,}-.+\.(jsonl|parquet)(\.partial)?$")
MISSING_RAY_DATA = "--executor ray-data needs Ray Data: pip install 'spacy-luke[ray]'"


def output_name(index: int, source: str, fmt: str) -> str:
    return f"{index:05d}-{Path(source).name}{OUTPUT_SUFFIXES[fmt]}"


class FileAnnotator:
    """A Ray Data actor: the pipeline loaded once; each call annotates whole input files."""

    def __init__(self, pipeline: str, settings: Dict, output: str):
        from .ray_engine import load_in_actor

        self.settings = settings
        self.output = Path(output)
        self.nlp, _ = load_in_actor(
            pipeline, lang=settings["lang"], gpu_id=settings["gpu_id"], precision=settings["precision"],
            max_batch_cost=settings["max_batch_cost"],
        )

    def __call__(self, batch: Dict) -> Dict:
        out: Dict[str, List] = {"index": [], "records": [], "words": [], "bad": []}
        for index, name, path in zip(batch["index"], batch["name"], batch["path"]):
            records, words, bad = self.annotate_file(int(index), str(name), str(path))
            for key, value in (("index", int(index)), ("records", records), ("words", words), ("bad", "\n".join(bad))):
                out[key].append(value)
        return out

    def annotate_file(self, index: int, source: str, path: str) -> tuple:
        """Input ``source`` (as the user named it; read from ``path``) into its output file."""
        from .inputs import read_records
        from .records import doc_record, json_line

        s = self.settings
        target = self.output / output_name(index, source, s["format"])
        partial = target.with_name(target.name + ".partial")
        bad: List[str] = []
        records = read_records(
            [path], fmt=s["input_format"], whole_file=s["whole_file"], text_field=s["text_field"], on_error=s["on_error"],
            report=bad.append,
        )
        count = words = 0
        with open(partial, "w", encoding="utf8") as handle:
            pairs = ((record.text, record) for record in records)
            for doc, record in self.nlp.pipe(pairs, as_tuples=True, batch_size=s["batch_size"]):
                handle.write(json_line(doc_record(doc, source, record.line, record.fields)))
                count += 1
                words += len(doc)
        if s["format"] == "parquet":
            from .inputs import input_format
            from .parquet import carried_schema, write_shard

            carried = carried_schema([path], s["text_field"]) if input_format(path, s["input_format"]) == "parquet" else None
            writing = target.with_name(target.name + ".writing")
            write_shard(partial, writing, carried)
            os.replace(writing, target)
            partial.unlink()
        else:
            os.replace(partial, target)
        return count, words, [message.replace(path, source, 1) for message in bad]


def annotate_ray_data(
    pipeline: str,
    inputs: Sequence[str],
    output: str,
    *,
    job: Dict,
    settings: Dict,
    overwrite: bool = False,
    address: Optional[str] = None,
    concurrency: int = 1,
    num_cpus: Optional[float] = None,
    num_gpus: Optional[float] = None,
    inform: Callable[[str], None] = lambda message: None,
    report: Callable[[str], None] = lambda message: None,
) -> Dict[str, int]:
    """Annotate each of ``inputs`` into its own output file in ``output`` (see the module docstring);
    returns the counts of this run: files done and skipped, records, words, bad lines (each
    reported with ``report``: ``FILE:LINE: what is wrong; skipped``)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(MISSING_RAY_DATA) from None
    if settings["format"] not in OUTPUT_SUFFIXES:
        raise ValueError(f"--executor ray-data writes {' or '.join(OUTPUT_SUFFIXES)}, not {settings['format']!r}: give --format jsonl or parquet")
    if "-" in inputs or not inputs:
        raise ValueError("--executor ray-data reads files: give input files (stdin: use the local executor or --executor ray)")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file: --output names a folder (the outputs go in it)")
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder)
    try:
        job = {**job, "format": settings["format"], "layout": "one output per input"}
        _prepare(folder, job, overwrite, inform)
        pending = [(k, name) for k, name in enumerate(inputs) if not (folder / output_name(k, name, settings["format"])).is_file()]
        done = {"files": 0, "skipped_files": len(inputs) - len(pending), "records": 0, "words": 0, "bad": 0}
        if pending:
            _run(ray, pipeline, folder, pending, settings, address, concurrency, num_cpus, num_gpus, done, report)
        write_manifest(folder, job, complete=True, records=None)
        return done
    finally:
        lock.release()


def _prepare(folder: Path, job: Dict, overwrite: bool, inform) -> None:
    previous = None if overwrite else read_manifest(folder)
    if overwrite:
        for path in folder.iterdir():
            if (OWN_OUTPUT.match(path.name) or path.name == "manifest.json") and path.is_file():
                path.unlink()
    elif previous is not None:
        changed = compare(previous["job"], job)
        if changed:
            raise OutputFolderError(
                f"{folder} holds the output of another job (different {', '.join(changed)}): "
                "give a new --output folder, or add --overwrite to start over"
            )
        inform(f"resuming the job in {folder}: the inputs whose output is complete are skipped")
    elif any(OWN_OUTPUT.match(path.name) for path in folder.iterdir()):
        raise OutputFolderError(f"{folder} holds outputs but no manifest.json: give a new --output folder, or add --overwrite")
    for path in folder.glob("*.partial"):  # an output cut short: redone whole
        path.unlink()
    write_manifest(folder, job, complete=False, records=None)


def _run(ray, pipeline, folder, pending, settings, address, concurrency, num_cpus, num_gpus, done, report) -> None:
    cpus = 1.0 if num_cpus is None else float(num_cpus)
    gpus = (1.0 if settings["gpu_id"] is not None else 0.0) if num_gpus is None else float(num_gpus)
    started = False
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:  # the actors' CPUs and one for Ray Data's own tasks
            ray.init(num_cpus=max(os.cpu_count() or 1, int(concurrency * cpus) + 1), include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        items = [{"index": k, "name": str(name), "path": str(Path(name).resolve())} for k, name in pending]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            FileAnnotator, fn_constructor_args=(str(pipeline), settings, str(folder.resolve())), batch_size=1,
            concurrency=concurrency, num_cpus=cpus, num_gpus=gpus or None,
        )
        for row in ds.iter_rows():
            done["files"] += 1
            done["records"] += int(row["records"])
            done["words"] += int(row["words"])
            for message in filter(None, str(row["bad"]).split("\n")):
                done["bad"] += 1
                report(message)
    finally:
        if started:
            ray.shutdown()
