"""Model runners: llama.cpp in supervised child processes, over real HTTP with real models.

A runner that dies mid-answer (SIGKILL as an OOM killer sends it, SIGSEGV as
a broken native kernel raises it) fails that one job with a reason that says
so and keeps its text; the service keeps answering, other models keep
working, and the next job on the tag gets a fresh runner.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest

from gridllm_nb.service.launcher import LocalService, start_service
from tests.service.service_support import poll_job, submit_prompt, terminal

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.models

SMOL, GEMMA = "smollm2:135m", "gemma3:270m"
LONG = "Write a long story about a lighthouse keeper and her cat, with many chapters."


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """A service of its own: these tests kill its runners."""
    with start_service(db=tmp_path_factory.mktemp("runners") / "jobs.sqlite3", timeout=180.0) as svc:
        yield svc


def runner_pids(url: str, tag: str) -> list[int]:
    return httpx.get(f"{url}/health", timeout=5).json()["runners"].get(tag, [])


def state(job: dict) -> dict:
    return job["states"]["default"]


def streaming(job: dict) -> bool:
    return terminal(job) or len(state(job)["log"]) > 20


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_runner_that_dies_fails_only_its_job(service: LocalService, sig: signal.Signals) -> None:
    url = service.url
    job_id = submit_prompt(url, LONG, max_tokens=400)
    job = poll_job(url, job_id, streaming)
    assert job["vmStatus"] == "running", job
    (pid,) = runner_pids(url, SMOL)
    os.kill(pid, sig)

    job = poll_job(url, job_id, terminal, timeout=30)
    assert job["vmStatus"] == "error"
    expected = "crashed (SIGSEGV)" if sig == signal.SIGSEGV else "was killed (SIGKILL"
    assert f"model process for {SMOL} {expected}" in state(job)["message"]
    assert len(state(job)["log"]) > 20, "the text streamed before the crash is kept"
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200

    again = poll_job(url, submit_prompt(url, "Name three fruits.", max_tokens=16), terminal)
    assert again["vmStatus"] == "completed" and state(again)["log"].strip()
    (new_pid,) = runner_pids(url, SMOL)
    assert new_pid != pid


def test_other_models_are_untouched_by_a_crash(service: LocalService) -> None:
    url = service.url
    gemma_id = submit_prompt(url, "What is the capital of France?", tag=GEMMA, max_tokens=24)
    poll_job(url, gemma_id, terminal)
    gemma_pids = runner_pids(url, GEMMA)
    smol_id = submit_prompt(url, LONG, max_tokens=400)
    poll_job(url, smol_id, streaming)
    os.kill(runner_pids(url, SMOL)[0], signal.SIGKILL)
    assert poll_job(url, smol_id, terminal)["vmStatus"] == "error"
    assert runner_pids(url, GEMMA) == gemma_pids
    gemma = poll_job(url, submit_prompt(url, "Name three fruits.", tag=GEMMA, max_tokens=24), terminal)
    assert gemma["vmStatus"] == "completed", gemma


def test_cancel_stops_the_runner_without_killing_it(service: LocalService) -> None:
    url = service.url
    poll_job(url, submit_prompt(url, "Hi", max_tokens=4), terminal)  # a runner exists
    (pid,) = runner_pids(url, SMOL)
    job_id = submit_prompt(url, LONG, max_tokens=400)
    poll_job(url, job_id, streaming)
    assert httpx.delete(f"{url}/jobs/{job_id}", timeout=5).json()["cancelled"] == [job_id]
    cancelled = poll_job(url, job_id, terminal)
    assert cancelled["vmStatus"] == "cancelled" and state(cancelled)["log"]
    after = poll_job(url, submit_prompt(url, "Name three fruits.", max_tokens=16), terminal)
    assert after["vmStatus"] == "completed"
    assert runner_pids(url, SMOL) == [pid], "a cancel is a message to the runner, not a restart"


def test_token_limit_and_natural_end_are_reported(service: LocalService) -> None:
    url = service.url
    cut = state(poll_job(url, submit_prompt(url, LONG, max_tokens=8), terminal))
    assert (cut["status"], cut["finish"], cut["tokens"]) == ("completed", "length", 8)
    whole = state(poll_job(url, submit_prompt(url, "What is the capital of France?", max_tokens=200), terminal))
    assert whole["status"] == "completed" and whole["finish"] == "stop" and 0 < whole["tokens"] < 200


def test_a_model_that_cannot_load_fails_its_jobs_with_the_reason(tmp_path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    models = tmp_path / "models.toml"
    models.write_text(f'[models."broken:1b"]\nbackend = "llama_cpp"\npath = "{bad}"\n')
    with start_service(db=tmp_path / "jobs.sqlite3", models=models, timeout=180.0) as svc:
        job = poll_job(svc.url, submit_prompt(svc.url, "Hi", tag="broken:1b"), terminal)
        assert job["vmStatus"] == "error"
        assert "broken:1b" in state(job)["message"]
        assert httpx.get(f"{svc.url}/health", timeout=5).status_code == 200
