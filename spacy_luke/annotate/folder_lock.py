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
        os.ftruncate(self._fd, 0)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(holder).encode("utf8"))

    def _holder(self) -> str:
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            data = json.loads(os.read(self._fd, 4096).decode("utf8"))
            return f"process {data['pid']} on {data['host']}, started {data['started']}"
        except (ValueError, KeyError, TypeError, OSError):
            return "a process that is starting"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __del__(self):  # pragma: no cover - a lock left to the garbage collector
        self.release()
