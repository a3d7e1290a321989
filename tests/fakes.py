"""A scriptable fake of the remote jobs API, for fault injection.

``FakeJobsAPI.handle`` is an ``httpx.MockTransport`` handler; ``asgi_app``
serves the same fake over real HTTP (uvicorn on 127.0.0.1) for CLI tests.
Each GET advances every requested job one step through its script.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from gridllm_nb.api.clock import Clock

if TYPE_CHECKING:
    from gridllm_nb.api.client import JobsClient

Step = tuple[str, str]  # (status, full log so far)

REMOTE = "https://grid.invalid/remotejobs/v2"  # someone else's service: no extensions tried
LOCAL = "http://127.0.0.1:9/remotejobs/v2"  # loopback: our own service, extensions and all


def words_script(text: str, *, per_step: int = 1, final: str = "completed") -> list[Step]:
    """A job whose log grows a word (or ``per_step`` words) per poll, then ends."""
    words = text.split(" ")
    steps: list[Step] = [("queued", "")]
    for i in range(per_step, len(words) + per_step, per_step):
        steps.append(("running", " ".join(words[:i])))
    steps.append((final, text))
    return steps


@dataclass
class FakeJob:
    id: str
    tag: str
    command_line: str
    steps: list[Step]
    position: int = 0
    cancelled: bool = False

    def advance(self) -> Step:
        if self.cancelled:
            return ("cancelled", self.steps[min(self.position, len(self.steps) - 1)][1])
        step = self.steps[min(self.position, len(self.steps) - 1)]
        self.position += 1
        return step


@dataclass
class FakeJobsAPI:
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    default_script: list[Step] = field(default_factory=lambda: words_script("Hello from the fake grid"))
    models: list[str] | None = None  # None: no /models endpoint, like the real grid
    cancel_supported: bool = False
    bulk_supported: bool = False  # POST /jobs/status with logFrom, the local service's extension
    token: str | None = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Callable[[httpx.Request], httpx.Response | None]] = field(default_factory=list)
    forget: set[str] = field(default_factory=set)  # ids to leave out of answers
    failure_message: str | None = None  # the local service's "message" on failed jobs
    completion: dict[str, Any] | None = None  # the local service's "finish"/"tokens" on completed jobs

    def inject(self, *responses: Callable[[httpx.Request], httpx.Response | None] | httpx.Response | Exception) -> None:
        """Queue faults: each next request gets the next one (a Response, an exception to raise, or a callable)."""
        for r in responses:
            if isinstance(r, httpx.Response):
                self.faults.append(lambda req, r=r: r)
            elif isinstance(r, Exception):
                def boom(req: httpx.Request, r: Exception = r) -> None:
                    raise r
                self.faults.append(boom)
            else:
                self.faults.append(r)

    def gets(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET" and "/jobs/" in r.url.path]

    def posts(self) -> list[httpx.Request]:
        """The submits (not the bulk status requests)."""
        return [r for r in self.requests if r.method == "POST" and r.url.path.endswith("/jobs")]

    def bulk_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path.endswith("/jobs/status")]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            response = self.faults.pop(0)(request)
            if response is not None:
                return response
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"success": False, "error": "unauthorized"})
        path = request.url.path.split("/remotejobs/v2", 1)[-1]
        if request.method == "POST" and path == "/jobs":
            return self._submit(json.loads(request.content))
        if request.method == "POST" and path == "/jobs/status" and self.bulk_supported:
            body = json.loads(request.content)
            return self._status(body["ids"], log_from=body.get("logFrom", {}), bulk=True)
        if path == "/models" and request.method == "GET":
            if self.models is None:
                return httpx.Response(404, text="Not Found")
            return httpx.Response(200, json={"success": True, "models": [{"tag": t, "local": True} for t in self.models]})
        if path.startswith("/jobs/"):
            ids = path[len("/jobs/"):].split(",")
            if request.method == "DELETE":
                if not self.cancel_supported:
                    return httpx.Response(405, text="Method Not Allowed")
                for i in ids:
                    if i in self.jobs:
                        self.jobs[i].cancelled = True
                return httpx.Response(200, json={"success": True, "cancelled": [i for i in ids if i in self.jobs]})
            return self._status(ids)
        return httpx.Response(404, text="Not Found")

    def _submit(self, body: dict[str, Any]) -> httpx.Response:
        tag = body.get("tag", "")
        if self.models is not None and tag not in self.models:
            return httpx.Response(400, json={"success": False, "error": f"unknown model tag {tag!r}"})
        command = json.loads(body["commandLine"])
        key = "inputs" if "inputs" in command else "input"
        ids = []
        for prompt in command.get(key, []):  # one job per input, holding its own input (as the service)
            job_id = uuid.uuid4().hex
            script = self.scripts.get(tag, self.default_script)
            own = body["commandLine"] if len(command[key]) == 1 else json.dumps({**command, key: [prompt]})
            self.jobs[job_id] = FakeJob(job_id, tag, own, list(script))
            ids.append(job_id)
        return httpx.Response(200, json={"success": True, "ids": ids})

    def _status(self, ids: list[str], *, log_from: dict[str, int] | None = None, bulk: bool = False) -> httpx.Response:
        known = [i for i in ids if i in self.jobs and i not in self.forget]
        if not known and not bulk:
            return httpx.Response(404, json={"success": False, "error": "no such job"})
        jobs = {}
        for i in known:
            job = self.jobs[i]
            status, log = job.advance()
            jobs[i] = {
                "vmStatus": status,
                "states": {"default": {"status": status, "outputFiles": [], "log": log,
                                        "commandLine": job.command_line, "app": "gridrepublic:text-inference"}},
                "created": "2024-05-06T21:26:00+00:00", "copy": 0, "tag": job.tag, "runtime": job.position,
            }
            if bulk and status in ("queued", "running"):  # the local service's brief live entry
                jobs[i] = {"vmStatus": status, "states": {"default": {"status": status, "log": log}}}
            if self.failure_message and status in ("error", "failed"):
                jobs[i]["states"]["default"]["message"] = self.failure_message
            if self.completion and status == "completed":
                jobs[i]["states"]["default"].update(self.completion)
            start = min((log_from or {}).get(i, 0), len(log))
            if start > 0:
                jobs[i]["states"]["default"].update(log=log[start:], logFrom=start)
        return httpx.Response(200, json={"success": True, "jobs": jobs})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def asgi_app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The same fake as an ASGI app, to serve it over real HTTP."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode()
        url = f"http://fake{scope['path']}" + (f"?{query}" if query else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        try:
            response = self.handle(httpx.Request(scope["method"], url, headers=headers, content=body))
        except Exception:
            # Simulate a dropped connection by answering with a truncated body.
            response = httpx.Response(200, content=b'{"success": true, "jobs": {')
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()
                                if k.lower() not in ("content-length",)]
                    + [(b"content-length", str(len(response.content)).encode())]})
        await send({"type": "http.response.body", "body": response.content})


class FakeClock(Clock):
    """Time that only moves when someone sleeps: backoff tests without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class ServedFake:
    """Serve a FakeJobsAPI over real HTTP on 127.0.0.1 (uvicorn in a thread)."""

    def __init__(self, fake: FakeJobsAPI) -> None:
        import threading

        import uvicorn

        from gridllm_nb.service.launcher import free_port

        self.port = free_port()
        self.fake = fake
        self.url = f"http://127.0.0.1:{self.port}/remotejobs/v2"
        config = uvicorn.Config(fake.asgi_app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off",
                                interface="asgi3")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedFake:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def client_for(fake: FakeJobsAPI, url: str = REMOTE, *, clock: Clock | None = None) -> JobsClient:
    """A real ``JobsClient`` whose requests go to ``fake`` (on a fake clock unless one is given)."""
    from gridllm_nb.api.client import JobsClient

    return JobsClient(url, transport=fake.transport(), clock=clock or FakeClock())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for something another thread does (the history's writes, say), never for long."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")
