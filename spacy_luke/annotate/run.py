"""``annotate``: any pipeline over files, streamed, written as it goes, resumable, locally or on Ray.

Python::

    from spacy_luke.annotate import annotate
    annotate("my_pipeline/", ["corpus.txt"], "out/", gpu_id=0, precision="bfloat16")
    annotate("my_pipeline/", ["corpus.txt"], "out/", executor="ray", ray_concurrency=2)
    annotate("my_pipeline/", ["corpus/"], "out/", executor="ray-data", ray_concurrency=4)

``executor`` says where the job's batches run: this process ("local") or a pool of Ray actors
("ray"). (Not a pipe's ``engine``, which says what runs a pipe's predictions: torch or ONNX
Runtime; ``engine=`` is this setting's old name, still taken with a DeprecationWarning.)

The command line (``python -m spacy_luke annotate``) calls this with its flags.
"""
from __future__ import annotations

import errno
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from .device import apply_device, plan_device, plan_for_this_machine
from .inputs import check_inputs, count_texts, expand_folders, parquet_inputs, read_records
from .job import job_identity
from .local import annotate_local, unfinished
from .pipeline import load_pipeline
from .shards import RunStoppedError, ShardedOutput

EXECUTORS = ("local", "ray", "ray-data")


@dataclass
class AnnotateSummary:
    written: int  # docs written by this run
    skipped_bad: int  # bad input lines skipped
    seconds: float
    words: int
    device: str
    settings: List[str] = field(default_factory=list)
    resumed: int = 0  # records already in the output from earlier runs of the job
    already_complete: bool = False  # a finished job: this run had nothing to do

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


class EmptyInputError(ValueError):
    """The input holds no text to annotate."""


def annotate(
    pipeline: str,
    inputs: Sequence[str],
    output: str,
    *,
    input_format: str = "auto",
    whole_file: bool = False,
    text_field: str = "text",
    on_error: str = "skip",
    output_format: str = "jsonl",
    shard_size: int = 10000,
    batch_size: int = 32,
    n_process: int = 1,
    gpu_id: Optional[int] = None,
    precision: Optional[str] = None,
    max_batch_cost: Optional[int] = None,
    lang: str = "en",
    overwrite: bool = False,
    executor: str = "local",
    ray_address: Optional[str] = None,
    ray_concurrency: int = 1,
    ray_num_cpus: Optional[float] = None,
    ray_num_gpus: Optional[float] = None,
    progress: bool = True,
    report: Optional[Callable[[str], None]] = None,
    inform: Optional[Callable[[str], None]] = None,
    engine: Optional[str] = None,
) -> AnnotateSummary:
    """Annotate ``inputs`` with ``pipeline`` into the folder ``output`` (see the README, "annotate").

    executor: where the batches run: "local" (this process, or ``n_process`` processes), "ray"
        (a pool of ``ray_concurrency`` Ray actors) or "ray-data" (many files on Ray Data, one output
        file per input, resumable by file: :mod:`.ray_data`; folders stand for their files).
    engine: deprecated, the old name of ``executor``.
    report: called with each warning (a bad line, a device note); default: printed to stderr.
    inform: called with what the run finds in ``output`` (resuming a job, a job already
        complete); default: nothing (the summary says it too).
    Raises EmptyInputError when the input holds no text (empty, blank lines only, every line bad).
    """
    if engine is not None:
        warnings.warn("annotate(engine=...) is deprecated: use executor=... (a pipe's engine is what runs its predictions)", DeprecationWarning, stacklevel=2)
        if executor not in ("local", engine):
            raise ValueError(f"executor={executor!r} and its old name engine={engine!r} disagree: give executor only")
        executor = engine
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}: choose one of {EXECUTORS}")
    if n_process > 1 and gpu_id is not None:
        raise ValueError("--n-process > 1 with --gpu-id would load one model copy per process on the GPU: use one process, or --executor ray")
    report = report or (lambda message: print(f"warning: {message}", file=sys.stderr))
    inform = inform or (lambda message: None)
    if executor == "ray-data":  # many files: a folder stands for the input files in it
        inputs = expand_folders([str(name) for name in inputs])
    check_inputs(inputs)
    carried = _parquet_columns(inputs, input_format, text_field, output_format)
    if executor in ("ray", "ray-data") and gpu_id is not None:
        # The GPUs are the actors' (Ray gives each its own as cuda:0), not the driver's: they check.
        plan = plan_device(0, precision, max_batch_cost, cuda_available=True, device_count=1, bf16_supported=True)
    else:
        plan = plan_for_this_machine(gpu_id, precision, max_batch_cost)
    for note in plan.notes:
        report(note)
    job = job_identity(
        str(pipeline), [str(name) for name in inputs], input_format=input_format, whole_file=whole_file,
        text_field=text_field, lang=lang, precision=plan.precision,
    )
    if executor == "ray-data":
        return _annotate_ray_data(
            pipeline, inputs, output, job, plan, overwrite=overwrite, inform=inform, report=report, address=ray_address,
            concurrency=ray_concurrency, num_cpus=ray_num_cpus, num_gpus=ray_num_gpus, settings=dict(
                input_format=input_format, whole_file=whole_file, text_field=text_field, on_error=on_error, format=output_format,
                batch_size=batch_size, lang=lang, gpu_id=0 if plan.is_gpu else None, precision=plan.precision,
                max_batch_cost=max_batch_cost,
            ),
        )
    out = ShardedOutput(output, job=job, shard_size=shard_size, fmt=output_format, overwrite=overwrite, carried=carried)
    if out.already_complete:
        out.abandon()
        inform(f"{output} holds this job's output, complete: {out.records_before} records; nothing to do")
        return AnnotateSummary(0, 0, 0.0, 0, plan.device, resumed=out.records_before, already_complete=True)
    if out.resuming:
        inform(f"resuming the job in {output}: the records already written there are skipped")
    bad = []

    bar = _progress_bar(progress, count_texts(inputs, fmt=input_format, whole_file=whole_file) if progress else None)
    start = time.perf_counter()
    words = [0]

    def advance() -> None:  # one text done, skipped as already written, or skipped as bad
        if bar is not None:
            bar.update(1)

    def report_bad(message: str) -> None:
        bad.append(message)
        report(message)
        advance()

    def count(n_words: int) -> None:
        words[0] += n_words
        advance()
        if bar is not None:
            bar.set_postfix_str(f"{words[0] / max(time.perf_counter() - start, 1e-9):,.0f} words/s", refresh=False)

    records = unfinished(
        read_records(inputs, fmt=input_format, whole_file=whole_file, text_field=text_field, on_error=on_error, report=report_bad),
        out, skipped=advance,
    )
    complete = False
    try:
        if executor == "local":
            nlp = load_pipeline(str(pipeline), lang=lang)
            settings = apply_device(nlp, plan)
            written = annotate_local(nlp, records, out, batch_size=batch_size, n_process=n_process, progress=count)
        else:
            from .ray_engine import annotate_ray

            settings = [f"ray: concurrency {ray_concurrency}, device {plan.device}"]
            written = annotate_ray(
                str(pipeline), records, out, plan=plan, lang=lang, batch_size=batch_size, address=ray_address,
                concurrency=ray_concurrency, num_cpus=ray_num_cpus, num_gpus=ray_num_gpus, progress=count,
            )
        complete = out.seen > 0
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise RunStoppedError(
            f"{output}: no space left on device: free some space, then run the same command again to resume "
            "(the records written so far are kept)"
        ) from None
    finally:
        out.finish(complete=complete)
        if bar is not None:
            bar.close()
    if out.seen == 0:
        names = ", ".join("<stdin>" if name == "-" else str(name) for name in inputs or ["-"])
        why = f"all {len(bad)} non-blank lines were bad" if bad else "the input is empty or only blank lines"
        raise EmptyInputError(f"no texts in {names}: {why}")
    return AnnotateSummary(written, len(bad), time.perf_counter() - start, words[0], plan.device, settings, resumed=out.resumed)


def _annotate_ray_data(pipeline, inputs, output, job, plan, *, settings, report, **options) -> AnnotateSummary:
    from .ray_data import annotate_ray_data

    start = time.perf_counter()
    done = annotate_ray_data(str(pipeline), [str(name) for name in inputs], str(output), job=job, settings=settings, report=report, **options)
    summary = AnnotateSummary(
        done["records"], done["bad"], time.perf_counter() - start, done["words"], plan.device,
        [f"ray-data: {done['files']} files annotated, {done['skipped_files']} already complete"],
        already_complete=done["files"] == 0,
    )
    return summary


def _parquet_columns(inputs: Sequence[str], input_format: str, text_field: str, output_format: str):
    """The carried columns of the Parquet inputs (their footers read: a missing text column fails
    before any work); None when no input is Parquet and the output is not (pyarrow not needed)."""
    parquet = parquet_inputs(inputs, input_format)
    if not parquet and output_format != "parquet":
        return None
    from .parquet import carried_schema

    return carried_schema(parquet, text_field)


def _progress_bar(enabled: bool, total: Optional[int]):
    """Texts done (with a total and an ETA when the inputs could be counted: files, not stdin), and
    words/s beside them."""
    if not enabled or sys.stderr is None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" texts", file=sys.stderr, desc="annotate", mininterval=1.0, dynamic_ncols=True)
