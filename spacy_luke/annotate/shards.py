"""Output written as it goes, in shards, resumable, one job per folder.

An output folder holds ``manifest.json`` (the job: :mod:`.job`), ``.annotate.lock`` (held while a
job runs: :mod:`.folder_lock`) and one file per shard of ``shard_size`` input records (by record
number): ``part-00000.jsonl`` (or ``.spacy``, a DocBin) once the shard is complete,
``part-00000.jsonl.partial`` while it is written. JSONL shards get each record as soon as its doc
is done and are flushed per batch, so an interrupted run keeps everything it wrote; a re-run of the
same job skips complete shards and the records a partial shard already holds (a torn last line is
dropped and redone). DocBin shards are written whole, when complete (through a ``.writing`` file
renamed into place). Parquet shards (``part-00000.parquet``, :mod:`.parquet`) are written as JSONL
while partial, exactly as JSONL shards are (so they resume the same way), and converted to Parquet
when complete (through a ``.writing`` file renamed into place, then the partial removed).

The folder's files that a job owns, and the only ones ``overwrite`` removes, are the manifest and
the shards (``part-NNNNN.jsonl`` / ``.spacy`` / ``.parquet``, with ``.partial`` or ``.writing``); anything else
in the folder is left alone.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

from .folder_lock import FolderLock
from .job import MANIFEST, ManifestError, compare, read_manifest, write_manifest
from .records import json_line

SHARD_FORMATS = {"jsonl": ".jsonl", "docbin": ".spacy", "parquet": ".parquet"}
#: The formats whose partial shards are JSON lines, written a record at a time.
LINE_FORMATS = ("jsonl", "parquet")
OWN_FILE = re.compile(r"^(part-\d{5,}\.(jsonl|spacy|parquet)(\.partial|\.writing)?|\.manifest-.*\.tmp|" + re.escape(MANIFEST) + r")$")
SHARD_FILE = re.compile(r"^part-\d{5,}\.(jsonl|spacy|parquet)(\.partial)?$")


class OutputFolderError(ValueError):
    """The output folder holds another job, or cannot be used."""


class RunStoppedError(ValueError):
    """The run stopped for a reason outside the job (a full disk, a lost Ray actor): what was
    written is kept, and the same command resumes."""


class ShardedOutput:
    """The shards of one job in ``folder`` (locked from construction to :meth:`finish`).

    After construction: ``resuming`` (the folder holds output of this job from earlier runs),
    ``already_complete`` (a finished run of the same job: nothing to do), ``records_before`` (the
    records a finished run wrote). ``carried``: the Arrow schema of the carried columns of Parquet
    output (the Parquet inputs'; None: inferred from the values).
    """

    def __init__(
        self, folder, *, job: Dict[str, Any], shard_size: int, fmt: str = "jsonl", overwrite: bool = False, carried=None
    ):
        if fmt not in SHARD_FORMATS:
            raise ValueError(f"output format {fmt!r}: choose one of {tuple(SHARD_FORMATS)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.folder = Path(folder)
        self.fmt = fmt
        self.suffix = SHARD_FORMATS[fmt]
        self.shard_size = shard_size
        self.carried = carried
        self.job = {**job, "shard_size": shard_size, "format": fmt}
        self.resuming = False
        self.already_complete = False
        self.records_before: Optional[int] = None
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputFolderError(f"{self.folder} is a file: --output names a folder (the shards go in it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock: Optional[FolderLock] = FolderLock(self.folder)
        try:
            self._prepare(overwrite)
        except BaseException:
            self._release()
            raise
        self._current: Optional[int] = None
        self._handle = None
        self._docbin = None
        self._done: Dict[int, int] = {}
        self.written = 0  # records written in this run
        self.seen = 0  # records of the input so far (written, or found in the output)

    # ------------------------------------------------------------------ the folder

    def _prepare(self, overwrite: bool) -> None:
        try:
            previous = read_manifest(self.folder)
        except ManifestError:
            if not overwrite:
                raise
            previous = None
        for path in self.folder.glob("part-*.writing"):  # a DocBin shard torn mid-write: redone
            path.unlink()
        has_shards = any(SHARD_FILE.match(path.name) for path in self.folder.iterdir())
        if overwrite:
            self._clear()
        elif previous is None and has_shards:
            raise OutputFolderError(
                f"{self.folder} holds shards but no {MANIFEST}: give a new --output folder, or add --overwrite to remove the shards"
            )
        elif previous is not None and has_shards:  # a job with output: resume it, or refuse another
            changed = compare(previous["job"], self.job)
            if changed:
                raise OutputFolderError(
                    f"{self.folder} holds the output of another job (different {', '.join(changed)}): "
                    "give a new --output folder, or add --overwrite to start over"
                )
            self.resuming = True
            records = previous.get("records") if previous.get("complete") else None
            if isinstance(records, int) and self._all_shards_complete(records):
                self.records_before = records
                if previous["job"] == self.job:
                    self.already_complete = True
                    return  # the manifest stays as it is
                self._reopen_short_shard(records)
        # a new job, or one whose earlier start wrote nothing (a mistyped pipeline): this one's
        write_manifest(self.folder, self.job, complete=False, records=None)

    def _all_shards_complete(self, records: int) -> bool:
        return all(self.is_complete(shard) for shard in range(-(-records // self.shard_size)))

    def _reopen_short_shard(self, records: int) -> None:
        """A finished run's short last shard, when the input has grown: partial again."""
        shard, held = divmod(records, self.shard_size)
        if not held or not self.path(shard).is_file():
            return
        if self.fmt != "parquet":
            os.replace(self.path(shard), self.partial_path(shard))
            return
        if not self.partial_path(shard).is_file():  # (a partial left by a reopening cut short is whole)
            from .parquet import shard_lines

            writing = self._writing_path(shard)
            with open(writing, "w", encoding="utf8") as handle:
                handle.writelines(json_line(record) for record in shard_lines(self.path(shard)))
            os.replace(writing, self.partial_path(shard))
        self.path(shard).unlink()

    def _clear(self) -> None:
        """Remove this folder's job files (only those: see the module docstring)."""
        for path in self.folder.iterdir():
            if OWN_FILE.match(path.name) and path.is_file():
                path.unlink()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def path(self, shard: int) -> Path:
        return self.folder / f"part-{shard:05d}{self.suffix}"

    def partial_path(self, shard: int) -> Path:
        return self.folder / f"part-{shard:05d}{self.suffix}.partial"

    def _writing_path(self, shard: int) -> Path:
        return self.folder / f"part-{shard:05d}{self.suffix}.writing"

    def is_complete(self, shard: int) -> bool:
        return self.path(shard).is_file()

    def done(self, shard: int) -> int:
        """Records of ``shard`` already written (a complete shard: all of its records)."""
        if self.is_complete(shard):
            return self.shard_size
        partial = self.partial_path(shard)
        if not partial.is_file():
            return 0
        if self.fmt == "docbin":  # a finished run's short shard, reopened
            return len(self._read_docbin(partial))
        data = partial.read_bytes()
        keep = data.rfind(b"\n") + 1  # a torn last line (interrupted mid-write) is redone
        if keep != len(data):
            with open(partial, "r+b") as handle:
                handle.truncate(keep)
        return data.count(b"\n", 0, keep)

    @staticmethod
    def _read_docbin(path: Path):
        from spacy.tokens import DocBin

        try:
            return DocBin(store_user_data=True).from_disk(path)
        except Exception:  # unreadable: its records are redone
            return DocBin(store_user_data=True)

    def skip(self, index: int) -> bool:
        """Whether record ``index`` is already in the output (each shard is looked at once)."""
        self.seen = max(self.seen, index + 1)
        shard, position = divmod(index, self.shard_size)
        if shard not in self._done:
            self._done[shard] = self.done(shard)
        return position < self._done[shard]

    @property
    def resumed(self) -> int:
        """Records found in the output of earlier runs (so far: the input is read as it goes)."""
        return self.seen - self.written

    # ------------------------------------------------------------------ writing

    def write(self, index: int, record: Dict[str, Any], doc=None) -> None:
        """Write record ``index`` (records come in increasing order)."""
        shard = index // self.shard_size
        if shard != self._current:
            self._finish_current()
            self._open(shard)
        if self.fmt in LINE_FORMATS:
            self._handle.write(json_line(record))
        else:
            self._docbin.add(doc)
        self.written += 1
        self.seen = max(self.seen, index + 1)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def _open(self, shard: int) -> None:
        self._current = shard
        if self.fmt in LINE_FORMATS:
            self._handle = open(self.partial_path(shard), "a", encoding="utf8")
        elif self.partial_path(shard).is_file():
            self._docbin = self._read_docbin(self.partial_path(shard))
        else:
            from spacy.tokens import DocBin

            self._docbin = DocBin(store_user_data=True)

    def _finish_current(self) -> None:
        """The current shard is complete: its final name."""
        if self._current is None:
            return
        shard, self._current = self._current, None
        if self.fmt in LINE_FORMATS:
            self._handle.close()
            self._handle = None
            self._complete_lines(shard)
        else:
            writing = self._writing_path(shard)
            self._docbin.to_disk(writing)
            self._docbin = None
            os.replace(writing, self.path(shard))
            self.partial_path(shard).unlink(missing_ok=True)

    def _complete_lines(self, shard: int) -> None:
        """A complete shard's partial JSON lines under its final name (as Parquet for Parquet output)."""
        partial = self.partial_path(shard)
        if self.fmt == "jsonl":
            os.replace(partial, self.path(shard))
            return
        if not self.path(shard).is_file():  # (else converted by an earlier run cut short before the unlink)
            from .parquet import write_shard

            writing = self._writing_path(shard)
            write_shard(partial, writing, self.carried)
            os.replace(writing, self.path(shard))
        partial.unlink()

    def finish(self, *, complete: bool) -> None:
        """End of the run (the lock is released): when the input ended, the last shard is complete
        and the manifest says how many records the job has; after an interrupt, nothing more."""
        try:
            if complete:
                self._finish_current()
                for partial in self.folder.glob(f"part-*{self.suffix}.partial"):  # written whole by earlier runs
                    self._complete_lines(int(partial.name[len("part-"):].split(".")[0]))
                write_manifest(self.folder, self.job, complete=True, records=self.seen)
            elif self._handle is not None:
                handle, self._handle = self._handle, None
                try:
                    handle.close()
                except OSError:  # a full disk: what did not reach the file is redone by the re-run
                    pass
        finally:
            self._release()

    def abandon(self) -> None:
        """Give the folder up without finishing (a run that had nothing to do)."""
        self._release()

