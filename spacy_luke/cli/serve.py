"""``python -m spacy_luke serve``: any pipeline over HTTP (:mod:`spacy_luke.serve`), on uvicorn.

The options are :class:`spacy_luke.serve.settings.ServeSettings`, one each. The server binds
before the pipeline has loaded (``GET /health`` answers 503 until then); a pipeline that fails
to load stops it with the one-line error and exit status 2. SIGTERM (or Ctrl-C) drains: no new
connections, the accepted requests are answered (for up to ``--drain-timeout`` seconds), then
the command exits 0.
"""
from __future__ import annotations

import argparse
import signal
import threading

from ._errors import CliError
from ._io import count

HELP = "serve a pipeline over HTTP: POST /v1/annotate, batched across requests (pip install 'spacy-luke[serve]')"


def _at_least(minimum, kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}")
        return value

    return parse


def add_command(commands) -> None:
    from ..serve.settings import ServeSettings

    serve = commands.add("serve", HELP, run)
    serve.add_argument("pipeline", help="a saved spaCy pipeline (folder or package), or a LUKE checkpoint (gets sentencizer + luke_ner)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=count(0), default=8080, help="port (default: 8080; 0: any free port)")
    for name, kind, default, minimum, help in ServeSettings.described():
        parse = {"int": count(int(minimum or 0)), "float": _at_least(minimum or 0, float), "str": str}[kind]
        shown = f" (default: {default})" if default is not None else ""
        serve.add_argument("--" + name.replace("_", "-"), dest=name, type=parse, default=default, help=help + shown)
    serve.add_argument("--drain-timeout", type=_at_least(0, float), default=30.0, help="at SIGTERM, seconds to answer the accepted requests (default: 30)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"), help="uvicorn's log level (default: info)")


def run(args: argparse.Namespace) -> int:
    from ..serve import MISSING_SERVE
    from ..serve.settings import ServeSettings

    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError:
        raise CliError(MISSING_SERVE) from None
    settings = ServeSettings(**{name: getattr(args, name) for name, *_ in ServeSettings.described()})
    _log_to_stderr(args.log_level, args.debug)
    app = create_app(args.pipeline, settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=args.drain_timeout)
    server = uvicorn.Server(config)
    state = app.state.luke

    def stop_if_the_load_fails() -> None:
        state.wait_loaded()
        if state.status == "failed":
            server.should_exit = True

    threading.Thread(target=stop_if_the_load_fails, name="spacy-luke-load-watch", daemon=True).start()
    # uvicorn handles SIGTERM / SIGINT while it runs (drains, then stops), then sends the signal
    # again to the handlers it found: these, so that a drained server exits 0.
    stopped = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit:  # uvicorn's own exit (it logged why: e.g. the port is in use)
        raise CliError(f"{args.host}:{args.port}: the server could not start (see the log line above)") from None
    finally:
        for sig, handler in stopped.items():
            signal.signal(sig, handler)
    if state.status == "failed":
        raise CliError(f"{args.pipeline}: the pipeline did not load: {state.error}")
    return 0


def _log_to_stderr(level: str, debug: bool) -> None:
    """The server's own messages (device notes, a failed load or batch) beside uvicorn's; their
    tracebacks only with --debug."""
    import logging

    from uvicorn.logging import DefaultFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
    logger = logging.getLogger("spacy_luke.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else level.upper())
    logger.propagate = False
