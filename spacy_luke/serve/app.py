"""The ASGI app (FastAPI): ``POST /v1/annotate``, ``POST /v1/render``, ``GET /v1/pipeline``,
``GET /health``, the page at ``/`` and FastAPI's docs (``/docs``, ``/openapi.json``).

Answers: 200 with ``{"records": [...]}`` (annotate's record schema); every failure is
``{"error": {"type", "message", ...}}`` with no traceback: 413 over a limit (``"limit"`` names
it), 422 for a body that is not ``{"texts": [...]}`` or ``{"records": [{"text": ...}, ...]}``, 503
with Retry-After while loading, when the queue is full, when draining or after ``timeout_s``,
500 when the request's batch failed (the cause named).
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..annotate.records import doc_record, json_line
from .batcher import BatchFailed, Overloaded, ShuttingDown, describe_error
from .page import PAGE
from .render import render_records
from .settings import ServeSettings
from .state import PipelineSource, ServeState

logger = logging.getLogger("spacy_luke.serve")

#: ``source`` of every record answered over HTTP (``line``: the text's position in the request, from 1).
SOURCE = "request"
#: Retry-After (seconds) while the pipeline loads or the server drains.
RETRY_LOADING = 5


class ServeError(Exception):
    """An answer other than 200: ``{"error": {"type": kind, "message": message, **details}}``."""

    def __init__(self, status: int, kind: str, message: str, retry_after: Optional[int] = None, **details: Any):
        super().__init__(message)
        self.status, self.kind, self.retry_after, self.details = status, kind, retry_after, details

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return error_response(self.status, self.kind, str(self), headers=headers, **self.details)


def error_response(status: int, kind: str, message: str, headers: Optional[Dict[str, str]] = None, **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **details}}, status_code=status, headers=headers)


def over_limit(limit: str, maximum: int, got: int, what: str) -> ServeError:
    return ServeError(413, "limit", f"{what}: {got}, over the limit ({limit}) of {maximum}", limit=limit, max=maximum, got=got)


# ------------------------------------------------------------------ the request and answer schema


class AnnotateRequest(BaseModel):
    """Either ``texts`` or ``records`` (each with a string ``text``; its other fields are carried through)."""

    model_config = ConfigDict(extra="forbid")
    texts: Optional[List[str]] = Field(None, description="the texts to annotate")
    records: Optional[List[Dict[str, Any]]] = Field(None, description="records with a `text` field; their other fields come back in the answer")


class Entity(BaseModel):
    start: int
    end: int
    label: str
    text: str
    score: Optional[float] = Field(None, description="luke_ner's (null from other recognizers)")
    kb_id: str = Field(description="the linker's entity (empty when unlinked)")
    kb_scores: Optional[List[Tuple[str, float]]] = Field(None, description="the linker's [(kb_id, probability)], best first")
    types: Optional[Dict[str, float]] = Field(None, description="the typer's {type: probability}")


class Relation(BaseModel):
    head: Tuple[int, int]
    tail: Tuple[int, int]
    label: str
    score: float


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str = Field(description=f'"{SOURCE}"')
    line: int = Field(description="the text's position in the request, from 1")
    text: str
    entities: List[Entity]
    relations: List[Relation]
    cats: Dict[str, float]


class AnnotateAnswer(BaseModel):
    records: List[Record]


class RenderAnswer(AnnotateAnswer):
    html: str = Field(description="displaCy's markup of the records, escaped")


ERRORS = {status: {"description": why} for status, why in {
    413: "over a limit (the error's `limit`: max_body_bytes, max_texts, max_chars)",
    422: "not a valid request body",
    500: "the batch holding this request failed (the error names the cause)",
    503: "loading, queue full (max_queue_texts), draining or timed out: retry after Retry-After seconds",
}.items()}


# ------------------------------------------------------------------ the app


def create_app(
    nlp_or_path: PipelineSource, settings: Optional[ServeSettings] = None, *, load_first: bool = False, **overrides: Any
) -> FastAPI:
    """An ASGI app serving ``nlp_or_path``: a spaCy ``Language``, a saved pipeline (folder or
    package) or a LUKE checkpoint (as annotate loads them), or a function returning a ``Language``.

    ``settings`` (:class:`~spacy_luke.serve.settings.ServeSettings`, with ``overrides`` by name)
    say where the pipes run, how requests are batched and what a request may hold. The pipeline
    loads in the background when the app starts (ASGI lifespan); ``GET /health`` answers 200 once
    it has loaded. With ``load_first`` the start itself waits for the load (and fails when the
    pipeline does not load), so the server takes no request before it is ready. At shutdown the
    app answers the requests it accepted, then stops its worker.
    """
    settings = replace(settings or ServeSettings(), **overrides)
    state = ServeState(nlp_or_path, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        if load_first:
            await asyncio.get_running_loop().run_in_executor(None, state.wait_loaded)
            if state.status != "ready":
                raise RuntimeError(f"{state.name}: the pipeline did not load: {state.error}")
        yield
        await asyncio.get_running_loop().run_in_executor(None, state.drain, settings.timeout_s)

    app = FastAPI(
        title="spacy-luke", version=__version__, lifespan=lifespan,
        description="Any spaCy pipeline with LUKE pipes, over HTTP; requests are batched across clients.",
    )
    app.state.luke = state
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/health", summary="200 once the pipeline has loaded, else 503")
    async def health() -> JSONResponse:
        body: Dict[str, Any] = {"status": state.status}
        if state.error:
            body["error"] = state.error
        if state.batcher is not None:
            body.update(queued_texts=state.batcher.queued_texts, in_flight=state.batcher.in_flight, **state.batcher.stats)
        if state.status == "ready":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_LOADING)})

    @app.get("/v1/pipeline", summary="the pipes, their labels, precision and device; the batching rule and the limits", responses=ERRORS)
    async def pipeline() -> JSONResponse:
        _check_ready(state)
        return JSONResponse(state.describe())

    @app.post("/v1/annotate", summary="annotate texts (annotate's record schema)", response_model=AnnotateAnswer, responses=ERRORS)
    async def annotate(body: AnnotateRequest, request: Request) -> Response:
        records = await _annotate(state, body, request)
        return Response(_records_json(records), media_type="application/json")

    @app.post("/v1/render", summary="annotate, and render the records as displaCy does (the page's call)", response_model=RenderAnswer, responses=ERRORS)
    async def render(body: AnnotateRequest, request: Request) -> Response:
        records = await _annotate(state, body, request)
        direction = state.nlp.vocab.writing_system.get("direction", "ltr")
        html = render_records(records, settings.kb_url_template, lang=state.nlp.lang, direction=direction)
        return Response(_records_json(records, html=html), media_type="application/json")

    return app


def _records_json(records: List[Dict[str, Any]], **extra: str) -> bytes:
    """``{"records": [...], **extra}`` as strict JSON (non-finite numbers as null, as annotate writes)."""
    head = "".join(f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}," for key, value in extra.items())
    return ("{" + head + '"records":[' + ",".join(json_line(record)[:-1] for record in records) + "]}").encode("utf8")


def _check_ready(state: ServeState) -> None:
    if state.status == "loading":
        raise ServeError(503, "loading", "the pipeline is still loading: retry shortly", RETRY_LOADING)
    if state.status == "failed":
        raise ServeError(503, "failed", f"the pipeline did not load: {state.error}")
    if state.status == "draining":
        raise ServeError(503, "shutting_down", "the server is shutting down", RETRY_LOADING)


def _inputs(body: AnnotateRequest, settings: ServeSettings) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The texts of a request and each one's carried fields, within the limits."""
    if (body.texts is None) == (body.records is None):
        raise ServeError(422, "invalid_request", 'give either "texts": [...] or "records": [{"text": ...}, ...]')
    if body.texts is not None:
        texts, fields = body.texts, [{} for _ in body.texts]
    else:
        texts, fields = [], []
        for i, record in enumerate(body.records or []):
            if not isinstance(record.get("text"), str):
                raise ServeError(422, "invalid_request", f'records[{i}] has no string "text" field', field=f"records[{i}].text")
            texts.append(record["text"])
            fields.append({key: value for key, value in record.items() if key != "text"})
    if len(texts) > settings.max_texts:
        raise over_limit("max_texts", settings.max_texts, len(texts), "texts in the request")
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            raise over_limit("max_chars", settings.max_chars, len(text), f"characters in text {i}")
    return texts, fields


async def _annotate(state: ServeState, body: AnnotateRequest, request: Request) -> List[Dict[str, Any]]:
    _check_ready(state)
    texts, fields = _inputs(body, state.settings)
    if not texts:
        return []
    try:
        job = state.batcher.submit(texts)
    except Overloaded as err:
        raise ServeError(503, "overloaded", str(err), err.retry_after, limit="max_queue_texts") from None
    except ShuttingDown as err:
        raise ServeError(503, "shutting_down", str(err), RETRY_LOADING) from None
    answer = asyncio.wrap_future(job.future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({answer, gone}, timeout=state.settings.timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if answer not in done:
        answer.cancel()  # a queued request is dropped from the queue; a running one is answered to no one
        if gone in done:
            raise ServeError(499, "client_gone", "the client went away")
        raise ServeError(503, "timeout", f"no answer within timeout_s ({state.settings.timeout_s:g} s)", RETRY_LOADING, limit="timeout_s")
    try:
        docs = answer.result()
    except BatchFailed as err:
        raise ServeError(500, "batch_failed", str(err)) from None
    return [doc_record(doc, SOURCE, i + 1, extra) for i, (doc, extra) in enumerate(zip(docs, fields))]


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body was read before: what comes is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in err.errors()]
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return error_response(422, "invalid_request", f"not a valid request: {where}", errors=errors[:20])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, "http", str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.error("unexpected failure answering %s %s", request.method, request.url.path, exc_info=err)
        return error_response(500, "internal", describe_error(err))


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 (its Content-Length is
    checked first; a chunked body is counted as it arrives, never held past the limit). The body
    is read here and handed on whole; later ``receive`` calls (the disconnect) pass through."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send, int(length))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send, size, counted=True)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send, size: int, counted: bool = False) -> None:
        what = "bytes in the request body" + (" (at least)" if counted else "")
        response = over_limit("max_body_bytes", self.max_bytes, size, what).response()
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
