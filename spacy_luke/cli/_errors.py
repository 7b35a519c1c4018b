"""How the commands fail: one line on stderr (``error: FILE[:LINE]: what is wrong; the fix``) and
one exit status, never a traceback."""
from __future__ import annotations

import sys

EXIT_USAGE = 2  # every failure: bad arguments, unreadable input, empty input, a model that cannot load
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user can fix; its message is the whole report."""


def report(message: str) -> None:
    """One line on stderr (nothing when stderr itself is closed)."""
    if sys.stderr is not None:
        print("error: " + " ".join(message.split()), file=sys.stderr, flush=True)


def error_line(err: BaseException) -> str:
    """The one line that reports ``err``."""
    if isinstance(err, OSError) and err.filename and err.strerror:  # "[Errno 2] ...: 'x'" -> "x: ..."
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, (CliError, OSError, ValueError)):
        return str(err) or type(err).__name__
    return f"unexpected {type(err).__name__}: {err} (add --debug for the traceback, and please report it)"
