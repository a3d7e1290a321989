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


# -- retry: only what failed, the same way, into the same Results ------------------------


def _submitted(request) -> dict:
    import json

    body = json.loads(request.content)
    return {"tag": body["tag"], "hours": body.get("hours"), "command": json.loads(body["commandLine"])}


async def test_retry_resubmits_only_the_failed_models_with_the_same_prompt_and_options() -> None:
    fake = FakeJobsAPI(scripts={"good": words_script("fine answer"), "bad": words_script("half", final="error"),
                                "slow": [("running", "partial")]})
    results = await arun("the prompt", ["good", "bad", "slow"], client=client_for(fake), poll=FAST, timeout=0.3,
                         hours=2, system="be brief", options={"max_tokens": 8})
    assert [r.state for r in results.values()] == [JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT]
    assert results.retryable == ["bad", "slow"]
    first = {tag: (r, r.job_id) for tag, r in results.items()}
    before = len(fake.posts())
    fake.scripts.update(bad=words_script("second try works"), slow=words_script("now quick"))
    updates: list[JobUpdate] = []
    again = await results.aretry(on_update=updates.append)

    assert again is results and all(results[tag] is r for tag, (r, _) in first.items())  # updated in place
    assert [_submitted(p) for p in fake.posts()[before:]] == [
        {"tag": tag, "hours": 2, "command": {"inputs": ["the prompt"], "system": "be brief",
                                              "options": {"max_tokens": 8}}}
        for tag in ("bad", "slow")]
    assert results.ok and results["bad"].text == "second try works" and results["slow"].text == "now quick"
    assert results["bad"].job_id != first["bad"][1] and results["good"].job_id == first["good"][1]
    assert results["bad"].error is None and results.retryable == []
    # Each retried model starts over (its card clears), then streams its new job from nothing.
    bad = [u for u in updates if u.tag == "bad"]
    assert bad[0].restarts and bad[0].text == "" and bad[1].state is JobState.SUBMITTED and bad[1].job_id
    assert "".join(u.delta for u in bad) == "second try works"
    assert {u.tag for u in updates} == {"bad", "slow"}  # the completed model heard nothing


async def test_retry_of_chosen_tags_and_the_errors_of_a_wrong_choice() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("x", final="error"), "b": words_script("y", final="error"),
                                "ok": words_script("fine")})
    results = await arun("hi", ["a", "b", "ok"], client=client_for(fake), poll=FAST)
    with pytest.raises(ConfigError, match="ok completed: only a model that failed"):
        await results.aretry(["ok"])
    with pytest.raises(ConfigError, match="no model 'zz' in this run"):
        await results.aretry(["zz"])
    before = len(fake.posts())
    fake.scripts["b"] = words_script("b again")
    await results.aretry(["b"])
    assert [_submitted(p)["tag"] for p in fake.posts()[before:]] == ["b"]
    assert results["b"].ok and results["a"].state is JobState.FAILED and results.retryable == ["a"]


async def test_retry_without_a_spec_says_how_to_retry() -> None:
    from gridllm_nb.results import Result, Results

    bare = Results("hi", {"a": Result(tag="a", state=JobState.FAILED, error="boom")})
    assert bare.retryable == ["a"]
    with pytest.raises(ConfigError, match="no spec.*gridllm-nb retry RUN"):
        await bare.aretry()


async def test_a_retry_that_fails_to_submit_fails_from_a_clean_slate() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("old words", final="error")})
    results = await arun("hi", ["a"], client=client_for(fake), poll=FAST)
    fake.models = ["other"]  # the service no longer serves "a"
    await results.aretry()
    a = results["a"]
    assert a.state is JobState.FAILED and a.job_id is None and a.text == ""  # nothing of the old job is left
    assert "unknown model 'a'" in a.error


def test_sync_retry_keeps_the_endpoint_and_token_of_the_run_without_showing_it(monkeypatch) -> None:
    import functools

    from gridllm_nb import runner

    secret = "tok_S3CRET_value"
    fake = FakeJobsAPI(scripts={"a": words_script("no", final="failed")}, token=secret)
    # No client given: the run (and its retry) make their own, here over the fake.
    monkeypatch.setattr(runner, "JobsClient", functools.partial(JobsClient, transport=fake.transport()))
    results = run("hi", ["a"], url=BASE, token=secret, poll=FAST, announce=None)
    assert results["a"].state is JobState.FAILED
    assert secret not in repr(results.spec) and secret not in repr(results)
    fake.scripts["a"] = words_script("yes")
    assert results.retry() is results and results["a"].text == "yes"  # authorised with the same token
    assert {r.headers["Authorization"] for r in fake.posts()} == {f"Bearer {secret}"}


def test_a_restart_update_clears_a_result_whatever_it_held() -> None:
    from gridllm_nb.results import Result

    r = Result(tag="a")
    r.apply(JobUpdate(tag="a", job_id="j1", state=JobState.SUBMITTED, text="", elapsed=0.1))
    r.apply(JobUpdate(tag="a", job_id="j1", state=JobState.FAILED, text="some", error="boom", elapsed=2.0,
                      finish="length", tokens=9))
    r.apply(JobUpdate.restart("a"))
    assert r == Result(tag="a")
    # A job restarted elsewhere by the service (reset, but running) keeps its times.
    r.apply(JobUpdate(tag="a", job_id="j2", state=JobState.RUNNING, text="x", elapsed=1.0))
    r.apply(JobUpdate(tag="a", job_id="j2", state=JobState.RUNNING, text="new", reset=True, elapsed=2.0))
    assert r.text == "new" and r.started_s == 1.0
