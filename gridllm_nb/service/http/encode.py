"""The answers' bytes: one job as the API shows it, the bulk and streamed forms, an error.

Byte-compatible with ``shared/API.md``: ``GET /jobs/{ids}`` answers exactly
the public service's shapes. These are written by hand rather than through
the response models, because polling is the service's hot path: a finished
job is rendered once and its bytes reused, and the local extensions send
only what changed since the client last looked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from ...text import one_line
from ..store import JobRecord

if TYPE_CHECKING:
    from ..manager import JobManager

__all__ = ["WATCH_HEARTBEAT", "error_answer", "job_json", "job_tail_json", "job_view", "watch_lines"]

WATCH_HEARTBEAT = 5.0  # seconds of silence after which a watch stream sends an empty line


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"success": false, "error": "<one line>"}``, the shape of every error this service answers."""
    return JSONResponse({"success": False, "error": one_line(message)[:500]}, status_code=status, headers=headers)


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
