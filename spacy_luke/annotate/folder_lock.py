"""One job per output folder: an OS-level lock held for the whole run.

The lock is ``OUT/.annotate.lock``, locked with ``flock`` (``msvcrt.locking`` on Windows) for as
long as the job runs. The operating system releases it when the process ends in any way (a crash
or ``kill -9`` included), so a stale lock never blocks a re-run. The file also says who holds it
(process id, host, start time), for the refusal message. ``flock`` locks hold between processes of
one machine and on most local file systems; on network file systems that do not support them,
run one job per folder by hand.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

LOCK_FILE = ".annotate.lock"
HOLDER_WAIT_S = 2.0  # how long a refused job waits for the holder to write who it is


def _alive_here_or_elsewhere(data: dict) -> bool:
    """False only for a holder on this host whose process is gone (what an earlier holder left)."""
    if data.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(data["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


class FolderInUseError(ValueError):
    """Another annotate job holds the output folder."""


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _write_at_start(fd: int, payload: bytes) -> None:
    if hasattr(os, "pwrite"):
        os.pwrite(fd, payload, 0)
    else:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, payload)


def _read_start(fd: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, 4096, 0)
    os.lseek(fd, 0, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, 4096)  # pragma: no cover


class FolderLock:
    """The exclusive lock of one output folder; :meth:`release` (or process exit) gives it up."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self._fd):
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            raise FolderInUseError(
                f"{folder} is in use by another annotate job ({holder}): wait for it to end, "
                "or give this job another --output folder"
            )
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        payload = json.dumps(holder).encode("utf8")
        # One write at offset 0, then cut what a longer earlier holder left: a reader never sees an
        # empty file once a holder has written, only the old holder or the new one.
        _write_at_start(self._fd, payload)
        os.ftruncate(self._fd, len(payload))

    def _holder(self, wait_s: float = HOLDER_WAIT_S) -> str:
        """Who holds the lock: the holder writes this just after locking, so wait a moment for it."""
        deadline = time.monotonic() + wait_s
        while True:
            data = self._read_holder()
            if data is not None and _alive_here_or_elsewhere(data):
                return f"process {data['pid']} on {data['host']}, started {data['started']}"
            if time.monotonic() >= deadline:
                return "a process that is starting"
            time.sleep(0.01)

    def _read_holder(self) -> Optional[dict]:
        try:
            data = json.loads(_read_start(self._fd).decode("utf8"))
            data["pid"], data["host"], data["started"]
            return data
        except (ValueError, KeyError, TypeError, OSError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __del__(self):  # pragma: no cover - a lock left to the garbage collector
        self.release()
