"""The local engine: one process (or spaCy's ``n_process``) streams records through ``nlp.pipe``
and writes each doc's record as soon as it is done."""
from __future__ import annotations

from typing import Iterable, Iterator, Tuple

from .inputs import InputRecord
from .records import doc_record
from .shards import ShardedOutput


def annotate_local(nlp, records: Iterable[InputRecord], output: ShardedOutput, *, batch_size: int = 32, n_process: int = 1, progress=None) -> int:
    """Annotate ``records`` (already filtered for resume) into ``output``; returns the docs written."""
    pairs = ((record.text, record) for record in records)
    written = 0
    for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size, n_process=n_process):
        output.write(record.index, doc_record(doc, record.source, record.line, record.fields), doc)
        written += 1
        if written % batch_size == 0:
            output.flush()
        if progress is not None:
            progress(len(doc))
    output.flush()
    return written


def unfinished(records: Iterable[InputRecord], output: ShardedOutput) -> Iterator[InputRecord]:
    """The records not yet in ``output`` (a re-run resumes where the last one stopped)."""
    for record in records:
        if not output.skip(record.index):
            yield record


def batched(records: Iterable[InputRecord], size: int) -> Iterator[Tuple[InputRecord, ...]]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield tuple(chunk)
            chunk = []
    if chunk:
        yield tuple(chunk)
