"""One runner child process, seen from the service: start, talk, notice death."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..backends.base import BackendError
from ..exits import describe_exit
from ..registry import ModelSpec
from .protocol import spec_to_json

__all__ = ["RunnerProcess"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


class RunnerProcess:
    """A ``python -m gridllm_nb.service.runners`` child serving one model.

    A reader thread turns the child's event lines into a queue; ``None`` in
    the queue means the pipe closed, i.e. the child is gone.
    """

    def __init__(self, spec: ModelSpec, *, ready_timeout: float = 600.0) -> None:
        self.spec = spec
        env = dict(os.environ)
        # The child imports this very package, wherever it was imported from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridllm_nb.service.runners"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name=f"runner-{spec.tag}-{self.pid}", daemon=True).start()
        self.send_line(spec_to_json(spec))
        self._await_ready(ready_timeout)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:  # pragma: no cover - fd 1 is redirected in the child
                continue
        self._events.put(None)

    def _await_ready(self, timeout: float) -> None:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise BackendError(f"model process for {self.spec.tag} did not load within {timeout:g} s") from None
        if event is None:
            raise BackendError(f"model process for {self.spec.tag} {self.exit_reason()} while loading")
        if event.get("event") == "fatal":
            self.close()
            raise BackendError(str(event.get("message")))

    def send_line(self, line: str) -> None:
        """Write one line; a closed pipe is left for the reader to report."""
        assert self.process.stdin is not None
        with self._send_lock:
            try:
                self.process.stdin.write(line + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def send(self, message: dict[str, Any]) -> None:
        self.send_line(json.dumps(message, ensure_ascii=False))

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event; ``None`` once the child is gone; ``queue.Empty`` on timeout."""
        event = self._events.get(timeout=timeout)
        if event is None:
            self._events.put(None)  # stays gone for every later reader
        return event

    def exit_reason(self) -> str:
        try:
            returncode = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            returncode = None
        return describe_exit(returncode, crash=True)

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()

    def close(self, timeout: float = 3.0) -> None:
        """Close stdin (the child exits by itself), then kill what is left."""
        try:
            if self.process.stdin:
                self.process.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        self.kill()
