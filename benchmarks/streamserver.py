"""A loopback jobs API whose jobs stream deterministic text on a timer.

Job text is "w1 w2 ... wK": word k appears at created + k * STEP seconds, so a
client can tell from the text alone when the server-side change happened.
It also offers the local service's bulk status extension (``POST /jobs/status``
with ``logFrom``) unless started with ``--no-bulk``, and its watch stream
(``POST /jobs/watch``, JSON lines of what changed) only with ``--watch``.
Run as ``python benchmarks/streamserver.py PORT [--no-bulk] [--watch]``; used by benchmarks/poller.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

STEP = 0.25
WORDS = 24
jobs: dict[str, float] = {}
BULK = True
WATCH = False


def log_at(created: float, now: float) -> tuple[str, str]:
    k = min(WORDS, int((now - created) / STEP))
    status = "completed" if k >= WORDS else "running"
    return status, " ".join(f"w{i}" for i in range(1, k + 1))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"].split("/remotejobs/v2", 1)[-1]
    now = time.time()
    if scope["method"] == "POST" and path == "/jobs":
        inputs = json.loads(json.loads(body)["commandLine"])["inputs"]
        ids = []
        for _ in inputs:
            job_id = uuid.uuid4().hex
            jobs[job_id] = now
            ids.append(job_id)
        payload = {"success": True, "ids": ids}
    elif scope["method"] == "POST" and path == "/jobs/watch" and WATCH:
        request = json.loads(body)
        await watch(send, request["ids"], request.get("logFrom", {}), request.get("every", 0.3))
        return
    elif path.startswith("/jobs/"):
        out = {}
        log_from: dict[str, int] | None = None  # a dict only for the bulk extension
        if scope["method"] == "POST" and path == "/jobs/status" and BULK:
            request = json.loads(body)
            wanted, log_from = request["ids"], request.get("logFrom", {})
        elif scope["method"] == "GET":
            wanted = path[len("/jobs/"):].split(",")
        else:
            wanted = []
        for job_id in wanted:
            created = jobs.get(job_id)
            if created is None:
                continue
            status, log = log_at(created, now)
            start = min((log_from or {}).get(job_id, 0), len(log))
            if log_from is not None and status != "completed":
                # The local service's bulk answer for a live job: only what changes between polls
                # (plus ``created_ts``, this benchmark's own clock for the latency it reports).
                out[job_id] = {"vmStatus": status, "states": {"default": {"status": status, "log": log}},
                               "created_ts": created}
            else:
                out[job_id] = {"vmStatus": status, "states": {"default": {"status": status, "log": log,
                               "outputFiles": [], "commandLine": "{}", "app": "gridrepublic:text-inference"}},
                               "created": "2024-05-06T21:26:00+00:00", "copy": 0, "tag": "bench",
                               "runtime": int(now - created), "created_ts": created}
            if start:
                out[job_id]["states"]["default"].update(log=log[start:], logFrom=start)
        if not wanted:
            await _send(send, {"success": False, "error": "not found"}, 404)
            return
        payload = {"success": True, "jobs": out}
    else:  # no /models, /health: a service without those extensions
        await _send(send, {"success": False, "error": "not found"}, 404)
        return
    await _send(send, payload)


async def watch(send, wanted, log_from, every):
    """The local service's watch stream: a line of rows ``[id, status, logFrom, log]`` when something
    changed, a whole entry when a job ended, until every job ended."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")]})
    sent = {i: (log_from.get(i, 0), "") for i in wanted if i in jobs}
    while sent:
        now = time.time()
        rows, ended = [], {}
        for job_id, (have, seen) in list(sent.items()):
            created = jobs[job_id]
            status, log = log_at(created, now)
            if status == "completed":
                ended[job_id] = {"vmStatus": status, "states": {"default": {
                    "status": status, "log": log[have:], "logFrom": have, "outputFiles": [], "commandLine": "{}",
                    "app": "gridrepublic:text-inference"}}, "created": "2024-05-06T21:26:00+00:00", "copy": 0,
                    "tag": "bench", "runtime": int(now - created), "created_ts": created}
                del sent[job_id]
            elif len(log) != have or status != seen:
                rows.append([job_id, status, have, log[have:]])
                sent[job_id] = (len(log), status)
        line = {**({"live": rows} if rows else {}), **({"jobs": ended} if ended else {})}
        if line:
            await send({"type": "http.response.body", "body": json.dumps(line).encode() + b"\n",
                        "more_body": True})
        if sent:
            await asyncio.sleep(every)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send(send, payload, status=200):
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    import uvicorn

    BULK = "--no-bulk" not in sys.argv
    WATCH = "--watch" in sys.argv
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False)
