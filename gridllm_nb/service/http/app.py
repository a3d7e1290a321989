"""The routes of remotejobs v2, plus clearly marked local extensions.

``POST /jobs`` and ``GET /jobs/{ids}`` answer exactly the public service's
shapes (``shared/API.md``). The local extensions (``DELETE /jobs/{ids}``,
``POST /jobs/status``, ``POST /jobs/watch``, ``GET /models``, ``GET
/health``, the ``message``/``finish``/``tokens`` keys of ended jobs,
``system``/``options`` inside ``commandLine``) say so in the OpenAPI
description. Every malformed request answers 4xx with ``{"success": false,
"error": "<one line>"}``, never a 5xx or a traceback: a client shows that
line to a person.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...config import API_PREFIX
from ...errors import ConfigError
from ..backend_factory import create_backend
from ..backends.base import Backend
from ..commandline import MAX_INPUT_BYTES, CommandLineError, parse_command_line
from ..manager import DEFAULT_KEEP_DAYS, DEFAULT_MAX_QUEUED, JobManager, QueueFull
from ..registry import ModelSpec, Registry, load_registry
from ..store import JobStore, StoreUnavailable
from .encode import error_answer, job_json, job_tail_json, watch_lines
from .guards import MAX_BODY_BYTES, MAX_BULK_IDS, ApiError, RequestGuard, parse_ids
from .idle import install_idle_watch
from .schema import (
    ERRORS,
    LOCAL,
    BulkStatusRequest,
    CancelAnswer,
    HealthAnswer,
    ModelsAnswer,
    StatusAnswer,
    SubmitAnswer,
    SubmitRequest,
    WatchRequest,
)

__all__ = ["APPS", "MAX_WATCHED", "MAX_WATCHES", "create_app"]

log = logging.getLogger("gridllm_nb.service")

APPS = ("gridrepublic:text-inference", "charityengine:text-inference")
MAX_WATCHES = 64  # POST /jobs/watch streams open at once
MAX_WATCHED = 5000  # ids those streams follow, all together (each costs a lookup per line)


def _validation_message(exc: RequestValidationError) -> str:
    """The first validation error, as one line a person can act on."""
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
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
    app.add_middleware(RequestGuard, token=token, max_body=max_body_bytes, body_timeout=body_timeout)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_answer(exc.status, exc.message)

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        return error_answer(429, str(exc), {"Retry-After": "10"})

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return error_answer(503, str(exc), {"Retry-After": "30"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_answer(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_answer(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug if reached
        log.exception("unhandled error")
        return error_answer(500, f"internal error: {type(exc).__name__}")

    @app.post(f"{API_PREFIX}/jobs", response_model=SubmitAnswer, responses=ERRORS,
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

    @app.get(f"{API_PREFIX}/jobs/{{ids}}", response_model=StatusAnswer, responses=ERRORS,
             summary="Status and log so far of one or more jobs (comma-separated ids)")
    async def status(ids: str) -> Response:
        return status_answer(parse_ids(ids), {})

    @app.post(f"{API_PREFIX}/jobs/status", response_model=StatusAnswer, responses=ERRORS,
              summary="Status of many jobs, only the new part of each log (local extension)",
              description=LOCAL + f"The answer of `GET /jobs/{{ids}}` for up to {MAX_BULK_IDS} ids in one request, "
              "and for each id in `logFrom` only the log past what the client has, marked with `logFrom`. "
              "A job still queued or running is sent brief: `vmStatus` and its state's `status` and `log` only; "
              "an ended one in full. "
              "Ids it does not know are left out (never a 404: that would mean this service lacks the extension). "
              "A client following a thousand jobs asks once per poll, and reads only what grew.")
    async def bulk_status(body: BulkStatusRequest) -> Response:
        return status_answer(parse_ids(body.ids, MAX_BULK_IDS),
                             {k.lower(): v for k, v in body.logFrom.items() if isinstance(v, int)}, bulk=True)

    watching = [0, 0]  # streams open, ids they follow

    @app.post(f"{API_PREFIX}/jobs/watch", responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}},
              "description": "One JSON object per line, e.g. `{\"live\":[[\"<id>\",\"running\",12,\" more\"]]}`"}},
              summary="Follow many jobs over one long response (local extension)",
              description=LOCAL + f"The body of `POST /jobs/status` (up to {MAX_BULK_IDS} ids, `logFrom`), plus "
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

    @app.delete(f"{API_PREFIX}/jobs/{{ids}}", response_model=CancelAnswer, responses=ERRORS,
                summary="Cancel jobs (local extension)",
                description=LOCAL + "Queued or running jobs end `cancelled` with their partial log kept; "
                "finished ones are left as they are. Answers the ids cancelled now.")
    def cancel(ids: str) -> dict[str, Any]:
        wanted = parse_ids(ids)
        known, cancelled = manager.cancel(wanted)
        if not known:
            raise ApiError(404, f"no such job: {wanted[0]}")
        return {"success": True, "cancelled": cancelled}

    @app.get(f"{API_PREFIX}/models", response_model=ModelsAnswer, responses=ERRORS,
             summary="Models served here (local extension)", description=LOCAL + "Tags and their details.")
    async def list_models() -> dict[str, Any]:
        return {"success": True, "models": [spec.describe() for spec in registry.values()]}

    @app.get(f"{API_PREFIX}/health", response_model=HealthAnswer, responses=ERRORS,
             summary="Liveness (local extension)", description=LOCAL + "200 when the service is up.")
    async def health() -> dict[str, Any]:
        return {"success": True, "status": "ok", "models": list(registry), "runners": manager.runner_pids()}

    return app
