"""Model runners: each llama.cpp model runs in a supervised child process.

As in Ollama, the service never loads native inference code itself. A tag
gets one runner process per concurrency slot, started on first use (or by
``warm_up``) and kept for the next job. When a runner dies (segfault, OOM
kill, anything), the job it was running ends ``error`` with a reason that
says so, its text so far kept; the next job on that tag starts a new
runner; other tags and the API never notice.

A cancel is a message to the runner, which stops between two tokens; a
runner that does not stop within ``cancel_grace`` seconds (stuck in a long
prompt) is killed, and restarted for the next job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ..backends.base import FINISH_REASONS, BackendError, Finish, GenerationRequest
from ..registry import ModelSpec
from .process import RunnerProcess
from .protocol import request_to_json

__all__ = ["RunnerBackend", "RunnerProcess"]


class RunnerBackend:
    """The ``Backend`` of a llama.cpp tag: a pool of runner processes."""

    def __init__(self, spec: ModelSpec, *, cancel_grace: float = 2.0, ready_timeout: float = 600.0) -> None:
        self.spec = spec
        self.cancel_grace = cancel_grace
        self.ready_timeout = ready_timeout
        # One token per slot: an idle runner, or None (start one when needed).
        self._slots: queue.LifoQueue[RunnerProcess | None] = queue.LifoQueue()
        for _ in range(spec.concurrency):
            self._slots.put(None)
        self._runners: set[RunnerProcess] = set()
        self._lock = threading.Lock()
        self._closed = False

    def pids(self) -> list[int]:
        """Process ids of the live runners (for ``/health`` and the tests)."""
        with self._lock:
            return sorted(r.pid for r in self._runners if r.alive)

    def _acquire(self) -> RunnerProcess:
        runner = self._slots.get()
        if runner is not None and runner.alive:
            return runner
        try:
            if self._closed:
                raise BackendError("the service is shutting down")
            runner = RunnerProcess(self.spec, ready_timeout=self.ready_timeout)
        except BaseException:
            self._slots.put(None)
            raise
        with self._lock:
            self._runners = {r for r in self._runners if r.alive} | {runner}
        return runner

    def _release(self, runner: RunnerProcess) -> None:
        self._slots.put(runner if runner.alive else None)

    def warm_up(self) -> None:
        """Start one runner now and load its model (``--preload``, and before a job runs)."""
        self._release(self._acquire())

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str | Finish]:
        runner = self._acquire()
        finished = False
        try:
            runner.send({"op": "generate", "request": request_to_json(request)})
            cancel_sent: float | None = None
            while True:
                if cancel.is_set() and cancel_sent is None:
                    runner.send({"op": "cancel"})
                    cancel_sent = time.monotonic()
                if cancel_sent is not None and time.monotonic() - cancel_sent > self.cancel_grace:
                    runner.kill()
                    return
                try:
                    event = runner.next_event(timeout=0.05)
                except queue.Empty:
                    continue
                if event is None:
                    finished = True
                    raise BackendError(f"model process for {self.spec.tag} {runner.exit_reason()}")
                kind = event.get("event")
                if kind == "piece":
                    if cancel_sent is None:
                        yield str(event.get("text", ""))
                elif kind == "done":
                    finished = True
                    if event.get("finish") in FINISH_REASONS:
                        yield Finish(str(event["finish"]), event.get("tokens"))
                    return
                elif kind == "error":
                    finished = True
                    raise BackendError(str(event.get("message") or "the model process reported an error"))
        finally:
            if not finished and runner.alive:
                self._stop_generation(runner)
            self._release(runner)

    def _stop_generation(self, runner: RunnerProcess) -> None:
        """The job ended while its runner was generating: stop it, so the slot is clean."""
        runner.send({"op": "cancel"})
        deadline = time.monotonic() + self.cancel_grace
        while time.monotonic() < deadline:
            try:
                event = runner.next_event(timeout=0.05)
            except queue.Empty:
                continue
            if event is None or event.get("event") in ("done", "error"):
                return
        runner.kill()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            runners, self._runners = list(self._runners), set()
        for runner in runners:
            runner.close()
