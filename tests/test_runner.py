"""run/arun: the one core the CLI, the magic and the panel share."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading

import pytest

from gridllm_nb.client import JobsClient
from gridllm_nb.errors import ConfigError, UnknownModel
from gridllm_nb.jobs import JobState, JobUpdate
from gridllm_nb.poller import PollSettings
from gridllm_nb.runner import arun, run, run_sync

from .fakes import FakeClock, FakeJobsAPI, words_script

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
FAST = PollSettings(fast=0.001, slow=0.01)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(fake: FakeJobsAPI) -> JobsClient:
    return JobsClient(BASE, transport=fake.transport(), clock=FakeClock())


async def test_two_models_in_parallel_with_live_updates() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("answer from a"), "b": words_script("b says hello there")})
    updates: list[JobUpdate] = []
    results = await arun("hi", ["a", "b"], client=client_for(fake), on_update=updates.append, poll=FAST)
    assert list(results) == ["a", "b"] and results.ok
    assert results["a"].text == "answer from a" and results["b"].text == "b says hello there"
    assert all(r.job_id and r.state is JobState.COMPLETED for r in results.values())
    assert "".join(u.delta for u in updates if u.tag == "b") == "b says hello there"
    assert [u.state for u in updates if u.tag == "a"][0] is JobState.SUBMITTED
    # Both jobs were polled in the same GETs, not one GET per job.
    assert any(len(r.url.path.split("/")[-1].split(",")) == 2 for r in fake.gets())


async def test_duplicate_and_blank_model_names_are_cleaned() -> None:
    fake = FakeJobsAPI()
    results = await arun("hi", ["a", " a ", "", "b"], client=client_for(fake), poll=FAST)
    assert list(results) == ["a", "b"]


@pytest.mark.parametrize("prompt,models,match", [("hi", [], "no model"), ("  \n", ["a"], "empty prompt"),
                                                 ("hi", "", "no model")])
async def test_usage_errors_are_one_line_config_errors(prompt, models, match) -> None:
    with pytest.raises(ConfigError, match=match):
        await arun(prompt, models, client=client_for(FakeJobsAPI()))


async def test_unknown_model_lists_the_available_ones_and_suggests() -> None:
    fake = FakeJobsAPI(models=["smollm2:135m", "gemma3:270m"])
    with pytest.raises(UnknownModel) as info:
        await arun("hi", ["smollm2:135m", "gemma3:27m"], client=client_for(fake))
    message = str(info.value)
    assert "did you mean gemma3:270m" in message and "available: smollm2:135m, gemma3:270m" in message
    assert fake.posts() == []  # nothing was submitted


async def test_one_failed_submit_does_not_stop_the_others() -> None:
    fake = FakeJobsAPI(models=["good"])
    results = await arun("hi", ["good", "nope"], client=client_for(fake), poll=FAST, validate=False)
    assert results["good"].state is JobState.COMPLETED
    assert results["nope"].state is JobState.FAILED and "unknown model tag" in results["nope"].error
    assert results["nope"].job_id is None


async def test_one_failed_job_keeps_its_partial_text() -> None:
    fake = FakeJobsAPI(scripts={"bad": words_script("partial words", final="error")})
    results = await arun("hi", ["good", "bad"], client=client_for(fake), poll=FAST)
    assert results["good"].state is JobState.COMPLETED
    assert results["bad"].state is JobState.FAILED and results["bad"].text == "partial words"
    assert "error" in results["bad"].error
    assert not results.ok


async def test_timeout_keeps_partial_text_and_cancels_on_the_service() -> None:
    fake = FakeJobsAPI(default_script=[("running", "slow")], cancel_supported=True)
    results = await arun("hi", ["a"], client=client_for(fake), poll=FAST, timeout=0.2)
    assert results["a"].state is JobState.TIMED_OUT and results["a"].text == "slow"
    assert "--timeout" in results["a"].error
    assert [r.method for r in fake.requests].count("DELETE") == 1


async def test_cancelling_the_task_marks_jobs_cancelled_and_frees_the_service() -> None:
    fake = FakeJobsAPI(default_script=[("running", "half an answer")], cancel_supported=True)
    seen: list[JobUpdate] = []
    task = asyncio.ensure_future(
        arun("hi", ["a", "b"], client=client_for(fake), poll=FAST, on_update=seen.append)
    )
    while not any(u.text for u in seen):
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finals = {u.tag: u for u in seen if u.state.terminal}
    assert {u.state for u in finals.values()} == {JobState.CANCELLED}
    assert finals["a"].text == "half an answer"
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert len(deletes) == 1 and len(deletes[0].url.path.split("/")[-1].split(",")) == 2
    gets = len(fake.gets())
    await asyncio.sleep(0.05)
    assert len(fake.gets()) == gets  # polling really stopped
    assert [t for t in asyncio.all_tasks() if t.get_name() == "gridllm-poller"] == []


def test_run_works_without_a_loop() -> None:
    fake = FakeJobsAPI()
    results = run("hi", "a", client=client_for(fake), poll=FAST)
    assert results["a"].text == "Hello from the fake grid"


async def test_run_works_inside_a_running_loop_like_jupyter() -> None:
    fake = FakeJobsAPI()
    results = run("hi", ["a"], client=client_for(fake), poll=FAST)
    assert results.ok


async def test_inside_a_running_loop_run_sync_works_on_a_thread_in_the_callers_context() -> None:
    where = contextvars.ContextVar("where", default="unset")
    where.set("the cell")
    caller_loop = asyncio.get_running_loop()

    async def job() -> tuple[str, str, bool]:
        return threading.current_thread().name, where.get(), asyncio.get_running_loop() is caller_loop

    assert run_sync(job()) == ("gridllm-run", "the cell", False)  # the kernel's loop is never re-entered

    async def boom() -> None:
        raise UnknownModel("nope", tag="b", available=["a"])

    with pytest.raises(UnknownModel):
        run_sync(boom())
    assert not any(t.name == "gridllm-run" for t in threading.enumerate())


async def test_ctrl_c_while_waiting_cancels_the_run_and_propagates() -> None:
    seen: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    main = threading.main_thread().ident
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as ipykernel has it in a cell
    try:
        threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            run_sync(forever())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == ["cancelled"]  # it unwound before the interrupt reached the caller
    assert not any(t.name == "gridllm-run" for t in threading.enumerate())


async def test_results_table_and_dataframe() -> None:
    fake = FakeJobsAPI(scripts={"b": words_script("x", final="failed")})
    results = await arun("the prompt", ["a", "b"], client=client_for(fake), poll=FAST)
    table = repr(results)
    assert "a" in table and "completed" in table and "failed" in table
    frame = results.to_pandas()
    assert list(frame["tag"]) == ["a", "b"] and list(frame["state"]) == ["completed", "failed"]
    assert set(frame["prompt"]) == {"the prompt"}
    assert results.to_list()[0].keys() >= {"tag", "id", "state", "text", "error", "elapsed_s"}


async def test_unknown_models_can_fail_alone_while_the_others_run() -> None:
    fake = FakeJobsAPI(models=["smollm2:135m"])
    updates: list[JobUpdate] = []
    results = await arun("hi", ["smollm2:135m", "smollm2:136m"], client=client_for(fake), poll=FAST,
                         unknown="fail", on_update=updates.append)
    assert results["smollm2:135m"].state is JobState.COMPLETED
    bad = results["smollm2:136m"]
    assert bad.state is JobState.FAILED and bad.job_id is None
    assert "did you mean smollm2:135m" in bad.error
    assert any(u.tag == "smollm2:136m" and u.state is JobState.FAILED for u in updates)
    assert len(fake.posts()) == 1
    only_bad = await arun("hi", ["nope:1"], client=client_for(fake), poll=FAST, unknown="fail")
    assert only_bad["nope:1"].state is JobState.FAILED
