"""The HTTP face of the service: remotejobs v2, plus clearly marked local extensions.

Byte-compatible with ``shared/API.md``: ``POST /jobs`` and ``GET /jobs/{ids}``
answer exactly the public service's shapes. The local extensions
(``DELETE /jobs/{ids}``, ``GET /models``, ``GET /health``, the ``message`` key of
finished jobs, ``system``/``options`` inside ``commandLine``) say so in the
OpenAPI descriptions. Every malformed request answers 4xx with
``{"success": false, "error": "<one line>"}``, never a 5xx or a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigError
from . import API_PREFIX
from .backends import Backend, create_backend
from .commandline import MAX_INPUT_BYTES, CommandLineError, parse_command_line
from .idle import install_idle_watch
from .jobs import DEFAULT_KEEP_DAYS, DEFAULT_MAX_QUEUED, JobManager, QueueFull
from .registry import ModelSpec, Registry, load_registry
from .store import JobRecord, JobStore, StoreUnavailable

__all__ = ["APPS", "MAX_BODY_BYTES", "MAX_BULK_IDS", "MAX_IDS", "create_app"]

log = logging.getLogger("gridllm_nb.service")

APPS = ("gridrepublic:text-inference", "charityengine:text-inference")
MAX_BODY_BYTES = 1024 * 1024
MAX_IDS = 500
MAX_BULK_IDS = 1000  # POST /jobs/status: ids travel in the body, not in a URL
MAX_WATCHES = 64  # POST /jobs/watch streams open at once
MAX_WATCHED = 5000  # ids those streams follow, all together (each costs a lookup per line)
WATCH_HEARTBEAT = 5.0  # seconds of silence after which a watch stream sends an empty line
_ID = re.compile(r"[0-9a-f]{32}")
_LOCAL = "**Local extension** (this embedded service only; the public GridRepublic API lacks it). "


class ApiError(Exception):
    """Raised by handlers; becomes ``{"success": false, "error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": " ".join(message.split())[:500]}, status_code=status, headers=headers)


# -- request / answer models (they also document the API) -----------------------
class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    app: StrictStr = Field("gridrepublic:text-inference", description="`gridrepublic:text-inference` (or `charityengine:text-inference`)")
    commandLine: StrictStr = Field(
        ...,
        description=(
            "A string holding the inputs: JSON `{\"inputs\": [\"<prompt>\"]}` (or `input`), or the oldest page's "
            "Python literal `{'input': ['<prompt>'] }`. One job per input (at most 100), their `ids` in the same order. **Local extensions** inside it: "
            "`system` (system prompt; prepended for completion models) and `options` "
            "(`max_tokens` alias `num_predict`, `temperature`, `top_p`, `seed`, `stop`, `repeat_penalty`, and `template`: "
            "a completion frame holding `{prompt}` for base models, `\"\"` for the bare prompt)."
        ),
        examples=["{'input': ['When does 1+1=10?'] }"],
    )
    tag: StrictStr = Field(..., description="Model tag, e.g. `smollm2:135m`; see `GET /models`.")
    hours: float = Field(1.0, description="Runtime limit in hours, in (0, 8]; a job over it ends `error`.")


class SubmitAnswer(BaseModel):
    success: bool
    ids: list[str]


class BulkStatusRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ids: list[StrictStr] = Field(..., description=f"Job ids, at most {MAX_BULK_IDS}.")
    logFrom: dict[StrictStr, int] = Field(
        default_factory=dict,
        description="Per id, how many characters (Unicode code points) of its log the client already has: "
                    "that job's `log` then holds only the rest, and its state says `logFrom`.",
    )


class WatchRequest(BulkStatusRequest):
    every: float = Field(0.3, description="Seconds between two lines at least, in [0.1, 5]: the client's "
                         "own pace (its poll interval).")


class ErrorAnswer(BaseModel):
    success: bool = False
    error: str


class JobState(BaseModel):
    status: str = Field(..., description="queued, running, completed, error or cancelled")
    outputFiles: list[str]
    log: str = Field(..., description="The model's output so far; grows while running.")
    commandLine: str
    app: str
    message: str | None = Field(None, description=_LOCAL + "Why the job ended `error` or `cancelled`.")
    finish: str | None = Field(None, description=_LOCAL + "Why a `completed` job's generation ended: `stop` (the "
                               "model ended its answer, or a stop string) or `length` (it reached `max_tokens`). "
                               "Absent where the engine does not say (remote backends).")
    tokens: int | None = Field(None, description=_LOCAL + "Tokens generated, with `finish`.")
    logFrom: int | None = Field(None, description=_LOCAL + "Only in `POST /jobs/status` answers: `log` is "
                                "the log from this character on.")


class JobView(BaseModel):
    vmStatus: str
    states: dict[str, JobState]
    created: str
    copy_: int = Field(..., alias="copy")
    tag: str
    runtime: int = Field(..., description="Seconds run so far.")


class StatusAnswer(BaseModel):
    success: bool
    jobs: dict[str, JobView]


class CancelAnswer(BaseModel):
    success: bool
    cancelled: list[str]


class ModelInfo(BaseModel):
    tag: str
    backend: str
    local: bool
    mode: str
    max_tokens: int
    description: str


class ModelsAnswer(BaseModel):
    success: bool
    models: list[ModelInfo]


class HealthAnswer(BaseModel):
    success: bool
    status: str
    models: list[str]
    runners: dict[str, list[int]] = Field(default_factory=dict, description="Tag -> process ids of its model "
                                          "runners (llama.cpp models run in supervised child processes).")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in ((400, "Malformed request"), (401, "Missing or wrong bearer token"),
                       (404, "No such job"), (413, "Body or input too large"),
                       (429, "Too many jobs waiting (see Retry-After)"),
                       (503, "The job database takes no writes now, e.g. disk full (see Retry-After)"))
}


def job_view(job: JobRecord, now: float) -> dict[str, Any]:
    """The seed's exact status shape for one job (plus ``message`` once it failed)."""
    if job.started is None:
        runtime = 0.0
    else:
        runtime = (job.finished or now) - job.started
    state: dict[str, Any] = {
        "status": job.status,
        "outputFiles": [],
        "log": job.log,
        "commandLine": job.command_line,
        "app": job.app,
    }
    if job.reason and job.status in ("error", "cancelled"):
        state["message"] = job.reason
    if job.finish and job.status == "completed":
        state["finish"] = job.finish
        if job.tokens is not None:
            state["tokens"] = job.tokens
    return {
        "vmStatus": job.status,
        "states": {"default": state},
        "created": job.created,
        "copy": 0,
        "tag": job.tag,
        "runtime": max(0, int(runtime)),
    }


def job_json(job: JobRecord, now: float) -> bytes:
    """``job_view`` as compact JSON; finished jobs are rendered once and reused,
    which makes polling a large batch cheap."""
    if job.rendered is not None:
        return job.rendered
    final = job.terminal  # read before the view: a job's status is set after everything else
    data = json.dumps(job_view(job, now), ensure_ascii=False, separators=(",", ":")).encode()
    if final:
        job.rendered = data
    return data


def job_tail_json(job: JobRecord, start: int, now: float) -> bytes:
    """One job as ``POST /jobs/status`` answers it: while it runs, only what changes between polls
    (``vmStatus``, ``status`` and the log from character ``start`` on, marked ``logFrom``); once
    it has ended, the whole ``job_json`` entry. A poll of a thousand growing answers then
    carries only their growth, not a thousand copies of the command line."""
    if job.terminal or job.rendered is not None:
        if start <= 0:
            return job_json(job, now)
        view = job_view(job, now)
        state = view["states"]["default"]
    else:
        status = job.status
        state = {"status": status, "log": job.log}
        view = {"vmStatus": status, "states": {"default": state}}
    if start > 0:
        start = min(start, len(state["log"]))
        state["log"], state["logFrom"] = state["log"][start:], start
    return json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode()


async def watch_lines(manager: JobManager, wanted: list[str], log_from: dict[str, int],
                      every: float) -> AsyncIterator[bytes]:
    """The lines of one ``POST /jobs/watch`` answer: what changed since the last line, until every job ended.

    The client's offsets come in once; from then on this side remembers what it
    sent, so a line carries only new characters and new states, at most one line
    per ``every`` seconds, and nothing at all while nothing changes (bar a
    heartbeat). A job still running is a row ``[id, status, logFrom, log]``; an
    ended one its whole entry, as ``POST /jobs/status`` answers it, and it leaves
    the stream. Ids unknown here are named once, in ``unknown``.
    """
    found = manager.get(wanted)
    sent = {i: (log_from.get(i, 0), "") for i in wanted if i in found}  # id -> (characters, status) sent
    unknown = [i for i in wanted if i not in found]
    quiet_since = time.monotonic()
    while sent or unknown:
        now = time.time()
        rows: list[list[Any]] = []
        ended: list[bytes] = []
        for job_id, job in manager.get(list(sent)).items():
            have, status = sent[job_id]
            if job.terminal or job.rendered is not None:
                ended.append(b'"%s":%s' % (job_id.encode(), job_tail_json(job, have, now)))
                del sent[job_id]
                continue
            log, now_status = job.log, job.status
            if len(log) == have and now_status == status:
                continue
            start = have if len(log) >= have else 0  # (a log never shrinks here; if it did, send it whole)
            rows.append([job_id, now_status, start, log[start:]])
            sent[job_id] = (len(log), now_status)
        if rows or ended or unknown:
            parts = []
            if rows:
                parts.append(b'"live":' + json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode())
            if ended:
                parts.append(b'"jobs":{' + b",".join(ended) + b"}")
            if unknown:
                parts.append(b'"unknown":' + json.dumps(unknown).encode())
                unknown = []
            yield b"{" + b",".join(parts) + b"}\n"
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= WATCH_HEARTBEAT:
            yield b"{}\n"
            quiet_since = time.monotonic()
        if sent:
            await asyncio.sleep(every)


def parse_ids(raw: str | list[str], limit: int = MAX_IDS) -> list[str]:
    """Comma-separated ids (or a list) -> unique, lower-case, validated list (order kept)."""
    parts = [p.strip().lower() for p in (raw.split(",") if isinstance(raw, str) else raw)]
    parts = [p for p in parts if p]
    if not parts:
        raise ApiError(400, "no job ids given")
    if len(parts) > limit:
        raise ApiError(400, f"{len(parts)} job ids in one request; the limit is {limit}")
    for part in parts:
        if not _ID.fullmatch(part):
            raise ApiError(400, f"malformed job id {part[:40]!r}: expected 32 hex digits")
    return list(dict.fromkeys(parts))


# -- ASGI middlewares ----------------------------------------------------------------
class _Guard:
    """Bearer-token check and body size limit, before FastAPI parses anything.

    Pure ASGI (not BaseHTTPMiddleware) so streaming and errors stay cheap; the
    token is compared in constant time and never logged.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body: int, body_timeout: float = 10.0) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None:
            given = headers.get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                what = "wrong bearer token" if given else "missing Authorization: Bearer <token> header"
                await _error(401, f"unauthorized: {what}", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _error(400, "malformed Content-Length header")(scope, receive, send)
                return
            if too_big:
                await _error(413, f"request body over {self.max_body} bytes")(scope, receive, send)
                return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # The whole body, within a deadline: a client that stops sending
            # (or announces a chunk of 0xFFFFFFFFFFFF bytes) is answered 408.
            body = bytearray()
            deadline = time.monotonic() + self.body_timeout
            while True:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    await _error(408, f"request body did not arrive within {self.body_timeout:g} s",
                                 {"Connection": "close"})(scope, receive, send)
                    return
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    await _error(413, f"request body over {self.max_body} bytes")(scope, receive, send)
                    return
                if not message.get("more_body"):
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON"
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "missing" and not loc:
        return "request body is missing; expected a JSON object"
    where = ".".join(loc)
    msg = str(first.get("msg", "invalid"))
    return f"{where}: {msg}" if where else msg


# -- the app ----------------------------------------------------------------------------
def create_app(
    *,
    db: str | Path = ":memory:",
    registry: Registry | None = None,
    models: str | Path | None = None,
    token: str | None = None,
    backend_factory: Callable[[ModelSpec], Backend] = create_backend,
    max_input_bytes: int = MAX_INPUT_BYTES,
    max_body_bytes: int = MAX_BODY_BYTES,
    flush_interval: float = 0.1,
    preload: bool = False,
    idle_timeout: float | None = None,
    max_queued: int = DEFAULT_MAX_QUEUED,
    keep_days: float | None = DEFAULT_KEEP_DAYS,
    body_timeout: float = 10.0,
) -> FastAPI:
    """Build the ASGI app; the job manager starts now and stops with the app's lifespan.

    ``registry`` wins over ``models`` (a TOML path); ``backend_factory`` lets tests
    put a fake engine behind the real HTTP and job layers. ``idle_timeout``
    (seconds) installs ``app.state.idle``, which calls its ``on_idle`` once
    there were no jobs and no requests for that long.
    """
    registry = registry if registry is not None else load_registry(models)
    store = JobStore(db)
    manager = JobManager(registry, store, backend_factory=backend_factory, flush_interval=flush_interval,
                         max_queued=max_queued, keep_days=keep_days)
    try:
        manager.start()
    except StoreUnavailable as exc:
        store.close()
        raise ConfigError(str(exc)) from None
    if preload:
        manager.warm_up(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        manager.close()
        store.close()

    app = FastAPI(
        title="gridllm_nb local jobs service",
        version="2",
        description=(
            "The GridRepublic remote jobs API (v2) served on this machine with real models. "
            "`POST /jobs` and `GET /jobs/{ids}` follow the public service exactly; endpoints and fields "
            "marked **Local extension** exist only here. Errors are `{\"success\": false, \"error\": \"...\"}`."
        ),
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.registry = registry
    if idle_timeout:  # inside the guard: only authorised requests count as use
        install_idle_watch(app, idle_timeout, live=manager.live_count)
    app.add_middleware(_Guard, token=token, max_body=max_body_bytes, body_timeout=body_timeout)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        return _error(429, str(exc), {"Retry-After": "10"})

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": "30"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug if reached
        log.exception("unhandled error")
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.post(f"{API_PREFIX}/jobs", response_model=SubmitAnswer, responses=_ERRORS,
              summary="Submit jobs: one per input string")
    def submit(body: SubmitRequest) -> dict[str, Any]:
        if body.app not in APPS:
            raise ApiError(400, f"unknown app {body.app[:80]!r}; expected {APPS[0]!r}")
        if body.tag not in registry:
            raise ApiError(400, registry.unknown_tag_message(body.tag[:80]))
        if not (0 < body.hours <= 8):
            raise ApiError(400, f"hours must be in (0, 8], got {body.hours!r}")
        try:
            command = parse_command_line(body.commandLine, max_input_bytes=max_input_bytes)
        except CommandLineError as exc:
            raise ApiError(exc.status, str(exc)) from None
        ids = manager.submit(
            tag=body.tag, app=body.app, hours=body.hours, inputs=command.inputs,
            command_lines=[command.echo(p) for p in command.inputs],
            system=command.system, options=command.options,
        )
        return {"success": True, "ids": ids}

    def status_answer(wanted: list[str], log_from: dict[str, int], *, bulk: bool = False) -> Response:
        found = manager.get(wanted)
        if not found and not bulk:  # (a 404 from the bulk path would read as "no such endpoint")
            raise ApiError(404, f"no such job: {wanted[0]}" + (f" (and {len(wanted) - 1} more)" if len(wanted) > 1 else ""))
        now = time.time()
        # GET answers each job whole, as the seed's API does; the bulk extension, brief while it runs.
        parts = b",".join(
            b'"%s":%s' % (i.encode(), job_tail_json(found[i], log_from.get(i, 0), now) if bulk else job_json(found[i], now))
            for i in wanted if i in found
        )
        return Response(b'{"success":true,"jobs":{' + parts + b"}}", media_type="application/json")

    @app.get(f"{API_PREFIX}/jobs/{{ids}}", response_model=StatusAnswer, responses=_ERRORS,
             summary="Status and log so far of one or more jobs (comma-separated ids)")
    async def status(ids: str) -> Response:
        return status_answer(parse_ids(ids), {})

    @app.post(f"{API_PREFIX}/jobs/status", response_model=StatusAnswer, responses=_ERRORS,
              summary="Status of many jobs, only the new part of each log (local extension)",
              description=_LOCAL + f"The answer of `GET /jobs/{{ids}}` for up to {MAX_BULK_IDS} ids in one request, "
              "and for each id in `logFrom` only the log past what the client has, marked with `logFrom`. "
              "A job still queued or running is sent brief: `vmStatus` and its state's `status` and `log` only; "
              "an ended one in full. "
              "Ids it does not know are left out (never a 404: that would mean this service lacks the extension). "
              "A client following a thousand jobs asks once per poll, and reads only what grew.")
    async def bulk_status(body: BulkStatusRequest) -> Response:
        return status_answer(parse_ids(body.ids, MAX_BULK_IDS),
                             {k.lower(): v for k, v in body.logFrom.items() if isinstance(v, int)}, bulk=True)

    watching = [0, 0]  # streams open, ids they follow

    @app.post(f"{API_PREFIX}/jobs/watch", responses={**_ERRORS, 200: {"content": {"application/x-ndjson": {}},
              "description": "One JSON object per line, e.g. `{\"live\":[[\"<id>\",\"running\",12,\" more\"]]}`"}},
              summary="Follow many jobs over one long response (local extension)",
              description=_LOCAL + f"The body of `POST /jobs/status` (up to {MAX_BULK_IDS} ids, `logFrom`), plus "
              "`every`; the answer is a stream of JSON lines, one whenever something changed (at most one per "
              "`every` seconds; `{}` after 5 s of silence), and it ends when every job has ended. In a line, "
              "`live` lists running or queued jobs that changed as `[id, status, logFrom, log]` (the log from "
              "character `logFrom` on), `jobs` holds jobs that ended, whole, as `POST /jobs/status` answers "
              "them (they then leave the stream), and `unknown` the ids this service does not know (sent "
              f"once, first). At most {MAX_WATCHES} streams following {MAX_WATCHED} ids in all are open at once "
              "(then 429). A client following a thousand jobs reads one line per change instead of sending one "
              "request per poll.")
    async def watch(body: WatchRequest) -> StreamingResponse:
        wanted = parse_ids(body.ids, MAX_BULK_IDS)
        streams, ids = watching
        if streams >= MAX_WATCHES or ids + len(wanted) > MAX_WATCHED:
            raise ApiError(429, f"{streams} watch streams follow {ids} jobs; this service takes at most "
                                f"{MAX_WATCHES} streams and {MAX_WATCHED} jobs")
        log_from = {k.lower(): v for k, v in body.logFrom.items() if isinstance(v, int) and v > 0}
        every = min(5.0, max(0.1, body.every))

        async def lines() -> AsyncIterator[bytes]:
            watching[0] += 1
            watching[1] += len(wanted)
            try:
                async for line in watch_lines(manager, wanted, log_from, every):
                    yield line
            finally:
                watching[0] -= 1
                watching[1] -= len(wanted)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.delete(f"{API_PREFIX}/jobs/{{ids}}", response_model=CancelAnswer, responses=_ERRORS,
                summary="Cancel jobs (local extension)",
                description=_LOCAL + "Queued or running jobs end `cancelled` with their partial log kept; "
                "finished ones are left as they are. Answers the ids cancelled now.")
    def cancel(ids: str) -> dict[str, Any]:
        wanted = parse_ids(ids)
        known, cancelled = manager.cancel(wanted)
        if not known:
            raise ApiError(404, f"no such job: {wanted[0]}")
        return {"success": True, "cancelled": cancelled}

    @app.get(f"{API_PREFIX}/models", response_model=ModelsAnswer, responses=_ERRORS,
             summary="Models served here (local extension)", description=_LOCAL + "Tags and their details.")
    async def list_models() -> dict[str, Any]:
        return {"success": True, "models": [spec.describe() for spec in registry.values()]}

    @app.get(f"{API_PREFIX}/health", response_model=HealthAnswer, responses=_ERRORS,
             summary="Liveness (local extension)", description=_LOCAL + "200 when the service is up.")
    async def health() -> dict[str, Any]:
        return {"success": True, "status": "ok", "models": list(registry), "runners": manager.runner_pids()}

    return app
