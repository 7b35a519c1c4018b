"""What makes two ``annotate`` runs the same job, and the manifest that records it.

A job is its inputs, its pipeline and the settings that change the records:

- each input file by name, size and a SHA-256 of its content (of its first and last MiB for files
  over 64 MiB); stdin by name only;
- the pipeline by name and a SHA-256 over its files (a saved pipeline, package or checkpoint
  folder: a pipeline retrained in place is another job); a hub id by name;
- ``input_format``, ``whole_file``, ``text_field``, ``lang``, ``precision``, the output ``format``
  and ``shard_size``.

A re-run compares its job with the manifest: the same job resumes; an input that only grew at its
end (the last input, its old content unchanged) resumes too, the short last shard of a finished run
included; anything else is another job, refused unless ``--overwrite``. The manifest is written
atomically (a temporary file, then a rename), so a full disk or a crash never leaves half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2
#: Files up to this size are hashed whole; larger ones by their first and last ``SAMPLE_BYTES``.
WHOLE_HASH_LIMIT = 64 * 1024**2
SAMPLE_BYTES = 1024**2
STDIN_NAME = "-"


class ManifestError(ValueError):
    """The output folder's manifest cannot be read."""


# ------------------------------------------------------------------------------------ fingerprints


def _update(digest, handle, start: int, length: int) -> None:
    handle.seek(start)
    while length > 0:
        chunk = handle.read(min(length, 1 << 20))
        if not chunk:
            break
        digest.update(chunk)
        length -= len(chunk)


def content_hash(path: Path, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of ``path`` (sampled beyond WHOLE_HASH_LIMIT)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if length <= WHOLE_HASH_LIMIT:
            _update(digest, handle, 0, length)
        else:
            _update(digest, handle, 0, SAMPLE_BYTES)
            _update(digest, handle, length - SAMPLE_BYTES, SAMPLE_BYTES)
    return digest.hexdigest()


def input_identity(name: str) -> Dict[str, Any]:
    if name == STDIN_NAME:
        return {"name": name}
    path = Path(name)
    size = path.stat().st_size
    return {"name": name, "size": size, "sha256": content_hash(path, size)}


def pipeline_folder(name: str) -> Optional[Path]:
    """The folder a pipeline name refers to (a path or an installed package); None for a hub id."""
    path = Path(name)
    if path.exists():
        return path
    from spacy.util import get_package_path, is_package

    if is_package(name):
        return get_package_path(name)
    return None


def pipeline_identity(name: str) -> Dict[str, Any]:
    folder = pipeline_folder(name)
    if folder is None:
        return {"name": name}
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode("utf8"))
        digest.update(content_hash(path, size).encode("ascii"))
    return {"name": name, "sha256": digest.hexdigest()}


def job_identity(pipeline: str, inputs: List[str], **settings: Any) -> Dict[str, Any]:
    """The job of a run (see the module docstring); ``settings`` are the record-changing ones."""
    return {
        "pipeline": pipeline_identity(pipeline),
        "inputs": [input_identity(name) for name in inputs or [STDIN_NAME]],
        **settings,
    }


# ------------------------------------------------------------------------------------ comparing


def grown_input(previous: Dict[str, Any], current: Dict[str, Any]) -> bool:
    """Whether ``current`` is ``previous`` with more bytes appended (same start, longer)."""
    if previous.get("name") != current.get("name") or "size" not in previous or "size" not in current:
        return False
    if current["size"] <= previous["size"]:
        return False
    return content_hash(Path(current["name"]), previous["size"]) == previous.get("sha256")


def compare(previous: Dict[str, Any], current: Dict[str, Any]) -> Optional[List[str]]:
    """None when ``current`` may resume ``previous`` (the same job, or its last input grew);
    else what differs."""
    changed = sorted(k for k in set(previous) | set(current) if k != "inputs" and previous.get(k) != current.get(k))
    old, new = previous.get("inputs") or [], current["inputs"]
    if len(old) != len(new):
        changed.append("inputs (their number)")
    else:
        for i, (a, b) in enumerate(zip(old, new)):
            if a == b or (i == len(new) - 1 and grown_input(a, b)):
                continue
            changed.append(f"input {b['name']}" + (" (its name)" if a.get("name") != b["name"] else " (its content)"))
    return changed or None


# ------------------------------------------------------------------------------------ the file


def read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    """The manifest of ``folder`` (None when there is none); a broken one is a ManifestError."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    fix = "add --overwrite to start over (it removes only this job's shards), or give a new --output folder"
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not a readable manifest ({err}): {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("job"), dict):
        if isinstance(data, dict) and "manifest_version" not in data and "inputs" in data:
            raise ManifestError(f"{path}: written by an older spacy-luke that did not record input sizes: {fix}")
        raise ManifestError(f"{path}: not a manifest of annotate (a JSON object with a 'job'): {fix}")
    return data


def write_manifest(folder: Path, job: Dict[str, Any], *, complete: bool, records: Optional[int]) -> None:
    """Write the manifest atomically (a temporary file in the folder, then a rename)."""
    data = {"manifest_version": MANIFEST_VERSION, "job": job, "complete": complete, "records": records}
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
