"""Output written as it goes, in shards, resumable.

An output folder holds ``manifest.json`` (what the job is: inputs, pipeline, settings) and one
file per shard of ``shard_size`` input records (by record number): ``part-00000.jsonl`` (or
``.spacy``, a DocBin) once the shard is complete, ``part-00000.jsonl.partial`` while it is
written. JSONL shards get each record as soon as its doc is done and are flushed per batch, so an
interrupted run keeps everything it wrote; a re-run of the same job skips complete shards and the
records a partial shard already holds (a torn last line is dropped and redone). DocBin shards are
written whole, when complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

SHARD_FORMATS = {"jsonl": ".jsonl", "docbin": ".spacy"}
MANIFEST = "manifest.json"


class OutputFolderError(ValueError):
    """The output folder holds another job, or cannot be used."""


class ShardedOutput:
    def __init__(self, folder, *, job: Dict[str, Any], shard_size: int, fmt: str = "jsonl", overwrite: bool = False):
        if fmt not in SHARD_FORMATS:
            raise ValueError(f"output format {fmt!r}: choose one of {tuple(SHARD_FORMATS)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.folder = Path(folder)
        self.fmt = fmt
        self.suffix = SHARD_FORMATS[fmt]
        self.shard_size = shard_size
        self.job = {**job, "shard_size": shard_size, "format": fmt}
        self._prepare(overwrite)
        self._current: Optional[int] = None
        self._handle = None
        self._docbin = None
        self._done: Dict[int, int] = {}
        self.written = 0  # records written in this run

    # ------------------------------------------------------------------ the folder

    def _prepare(self, overwrite: bool) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputFolderError(f"{self.folder} is a file: --output names a folder (the shards go in it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            previous = json.loads(manifest.read_text(encoding="utf8"))
            if previous != self.job and not overwrite:
                changed = sorted(k for k in set(previous) | set(self.job) if previous.get(k) != self.job.get(k))
                raise OutputFolderError(
                    f"{self.folder} holds the output of another job (different {', '.join(changed)}): "
                    "give a new --output folder, or add --overwrite to start over"
                )
            if previous != self.job or overwrite:
                self._clear()
        elif any(self.folder.glob("part-*")):
            raise OutputFolderError(f"{self.folder} holds shards but no {MANIFEST}: give a new --output folder")
        manifest.write_text(json.dumps(self.job, indent=2, sort_keys=True), encoding="utf8")

    def _clear(self) -> None:
        for path in self.folder.glob("part-*"):
            path.unlink()

    def path(self, shard: int) -> Path:
        return self.folder / f"part-{shard:05d}{self.suffix}"

    def partial_path(self, shard: int) -> Path:
        return self.folder / f"part-{shard:05d}{self.suffix}.partial"

    def is_complete(self, shard: int) -> bool:
        return self.path(shard).is_file()

    def done(self, shard: int) -> int:
        """Records of ``shard`` already written (a complete shard: all of its records)."""
        if self.is_complete(shard):
            return self.shard_size
        partial = self.partial_path(shard)
        if self.fmt != "jsonl" or not partial.is_file():
            return 0
        data = partial.read_bytes()
        keep = data.rfind(b"\n") + 1  # a torn last line (interrupted mid-write) is redone
        if keep != len(data):
            with open(partial, "r+b") as handle:
                handle.truncate(keep)
        return data.count(b"\n", 0, keep)

    def skip(self, index: int) -> bool:
        """Whether record ``index`` is already in the output (each shard is looked at once)."""
        shard, position = divmod(index, self.shard_size)
        if shard not in self._done:
            self._done[shard] = self.done(shard)
        return position < self._done[shard]

    # ------------------------------------------------------------------ writing

    def write(self, index: int, record: Dict[str, Any], doc=None) -> None:
        """Write record ``index`` (records come in increasing order)."""
        shard = index // self.shard_size
        if shard != self._current:
            self._finish_current()
            self._open(shard)
        if self.fmt == "jsonl":
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            self._docbin.add(doc)
        self.written += 1

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def _open(self, shard: int) -> None:
        self._current = shard
        if self.fmt == "jsonl":
            self._handle = open(self.partial_path(shard), "a", encoding="utf8")
        else:
            from spacy.tokens import DocBin

            self._docbin = DocBin(store_user_data=True)

    def _finish_current(self) -> None:
        """The current shard is complete: its final name."""
        if self._current is None:
            return
        shard, self._current = self._current, None
        if self.fmt == "jsonl":
            self._handle.close()
            self._handle = None
            os.replace(self.partial_path(shard), self.path(shard))
        else:
            partial = self.partial_path(shard)
            self._docbin.to_disk(partial)
            self._docbin = None
            os.replace(partial, self.path(shard))

    def finish(self, *, complete: bool) -> None:
        """End of the run: the last shard is complete when the input ended (not on an interrupt)."""
        if complete:
            self._finish_current()
            if self.fmt == "jsonl":  # shards whose records were all written by an earlier run
                for partial in self.folder.glob(f"part-*{self.suffix}.partial"):
                    os.replace(partial, partial.with_name(partial.name[: -len(".partial")]))
        elif self._handle is not None:
            self._handle.close()
            self._handle = None
