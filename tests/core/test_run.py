"""run/arun: the one core the CLI, the magic and the panel share."""

from __future__ import annotations

import asyncio
import contextvars
import json
import signal
import threading

import pytest

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import PollSettings
from gridllm_nb.core.run import arun, attach, run
from gridllm_nb.core.sync import run_sync
from gridllm_nb.errors import ConfigError, UnknownModel

from ..fakes import FakeJobsAPI, client_for, until, words_script

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
FAST = PollSettings(fast=0.001, slow=0.01)


async def test_two_models_in_parallel_with_live_updates() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("answer from a"), "b": words_script("b says hello there")})
    updates: list[JobUpdate] = []
    results = await arun("hi", ["a", "b"], client=client_for(fake), on_update=updates.append, poll=FAST)
    assert list(results) == ["a", "b"] and results.ok
    assert results["a"].text == "answer from a" and results["b"].text == "b says hello there"
    assert all(r.job_id and r.state is JobState.COMPLETED for r in results.values())
    assert "".join(u.delta for u in updates if u.tag == "b") == "b says hello there"
    assert next(u.state for u in updates if u.tag == "a") is JobState.SUBMITTED
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
    assert "within the timeout of 0.2 s" in results["a"].error
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
    from gridllm_nb.core.results import Result, Results

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


def test_sync_retry_keeps_the_endpoint_and_token_of_the_run_without_showing_it(over_fake) -> None:
    secret = "tok_S3CRET_value"
    fake = FakeJobsAPI(scripts={"a": words_script("no", final="failed")}, token=secret)
    over_fake(fake)  # no client given: the run (and its retry) make their own, here over the fake
    results = run("hi", ["a"], url=BASE, token=secret, poll=FAST, announce=None)
    assert results["a"].state is JobState.FAILED
    assert secret not in repr(results.spec) and secret not in repr(results)
    fake.scripts["a"] = words_script("yes")
    assert results.retry() is results and results["a"].text == "yes"  # authorised with the same token
    assert {r.headers["Authorization"] for r in fake.posts()} == {f"Bearer {secret}"}


def test_a_run_retried_from_the_history_gets_its_checks_and_judge_again(history_file, over_fake) -> None:
    from gridllm_nb.core import history
    from gridllm_nb.core.judge import judge

    fake = FakeJobsAPI(scripts={"a": words_script("no", final="failed"), "j": words_script("SCORE: 8 REASON: fine")})
    over_fake(fake)
    first = run("hi", ["a"], url=BASE, poll=FAST, announce=None, checks="contains:yes",
                judge=judge("j", "Say yes.", scale=10, pass_mark=0.7))
    assert first["a"].passed is False
    fake.scripts["a"] = words_script("yes indeed")
    stored = history.load_run(first.run_id)
    assert stored.spec is not None and stored.spec.checks == first.spec.checks and not stored.spec.unkept_checks
    assert stored.retry() is stored and stored["a"].ok
    assert [(v.name, v.passed) for v in stored["a"].checks] == [("contains:yes", True), ("judge:j", True)]
    assert "Say yes." in [json.loads(j.command_line)["inputs"][0] for j in fake.jobs.values() if j.tag == "j"][-1]


def test_a_restart_update_clears_a_result_whatever_it_held() -> None:
    from gridllm_nb.core.results import Result

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
    # A stored answer shown on a fresh card (its first update is its end) makes up no queue or first-token time.
    shown = Result(tag="a")
    shown.apply(Result(tag="a", job_id="j", text="done", state=JobState.COMPLETED, elapsed=12.0).as_update())
    assert shown.text == "done" and shown.queued_s is None and shown.ttft_s is None and shown.stats_line() == ""


# -- durable runs: the history as the jobs go, and attach after a restart --------------------


def _stored_rows() -> dict[str, dict]:
    from gridllm_nb.core import history

    runs = history.recent(1)
    return {r["tag"]: r for r in runs[0]["results"]} if runs else {}


async def test_rows_hold_the_job_ids_while_the_jobs_run_and_their_end_after(history_file) -> None:
    fake = FakeJobsAPI(default_script=[("queued", "")] + [("running", "still going")] * 10_000,
                       cancel_supported=True)
    seen: list[JobUpdate] = []
    task = asyncio.ensure_future(arun("p", ["a", "b"], client=client_for(fake), poll=FAST, on_update=seen.append,
                                      hours=3))
    submitted = lambda: {u.tag: u.job_id for u in seen if u.state is JobState.SUBMITTED}
    await until(lambda: len(submitted()) == 2 and all(r["job_id"] for r in _stored_rows().values())
                 and len(_stored_rows()) == 2 and {u.tag for u in seen if u.text} == {"a", "b"},
                 "both rows written, both jobs talking")
    rows = _stored_rows()
    assert {tag: (r["job_id"], r["state"]) for tag, r in rows.items()} == {
        tag: (job_id, "submitted") for tag, job_id in submitted().items()}
    assert not task.done()  # the jobs still run: a kernel dying now leaves their ids behind
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = _stored_rows()  # the end is written before arun returns (or raises)
    assert {r["state"] for r in rows.values()} == {"cancelled"} and rows["a"]["text"] == "still going"
    from gridllm_nb.core import history

    [run] = history.recent(1)
    assert run["hours"] == 3 and run["url"] == BASE


async def test_one_insert_per_job_and_one_update_per_end_in_batches(history_file, monkeypatch) -> None:
    from gridllm_nb.core import recorder

    writes: list[list[str]] = []
    real = recorder._write
    monkeypatch.setattr(recorder, "_write", lambda path, ops: (writes.append([k for k, _ in ops]), real(path, ops)))
    fake = FakeJobsAPI(models=["a", "b"], scripts={"b": words_script("b has many words to say here")})
    results = await arun("p", ["a", "b", "nope"], client=client_for(fake), poll=FAST, validate=False)
    kinds = [k for batch in writes for k in batch]
    # The first write inserts every model's row, in the run's order; then at most a job id and an
    # end per model (nope failed at its submit: its end only), never a write per poll.
    assert kinds[:3] == ["insert"] * 3 and kinds.count("insert") == 3 and 3 <= kinds.count("update") <= 5
    rows = _stored_rows()
    assert list(rows) == ["a", "b", "nope"]
    assert results.run_id and rows["b"]["text"] == "b has many words to say here"
    assert rows["b"]["state"] == "completed" and rows["nope"]["state"] == "failed" and rows["nope"]["job_id"] is None
    assert rows["b"]["first_token_s"] is not None and rows["b"]["ended_s"] >= rows["b"]["first_token_s"]


async def test_a_run_that_never_started_stays_out_of_the_history(history_file) -> None:
    fake = FakeJobsAPI(models=["a"])
    with pytest.raises(UnknownModel):
        await arun("hi", ["a", "typo"], client=client_for(fake), poll=FAST)
    assert _stored_rows() == {} and fake.posts() == []


async def test_a_retry_refused_before_any_submit_leaves_the_models_failed_and_retryable(over_fake) -> None:
    from gridllm_nb.errors import AuthError

    fake = FakeJobsAPI(models=["a"], scripts={"a": words_script("x", final="error")})
    over_fake(fake)
    results = await arun("hi", ["a"], url=BASE, poll=FAST, history=False, announce=None)
    fake.token = "rotated"  # the service now wants a token this one does not send
    with pytest.raises(AuthError):
        await results.aretry()
    a = results["a"]
    assert a.state is JobState.FAILED and "401" in a.error and results.retryable == ["a"]
    assert len(fake.posts()) == 1  # nothing was submitted
    fake.token, fake.scripts["a"] = None, words_script("y")
    await results.aretry()
    assert results.ok


async def test_history_off_writes_nothing_and_a_failed_write_never_fails_the_run(history_file, tmp_path,
                                                                                monkeypatch) -> None:
    from gridllm_nb.core import history

    fake = FakeJobsAPI()
    results = await arun("p", ["a"], client=client_for(fake), poll=FAST, history=False)
    assert results.ok and results.run_id is None and not history_file.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(history.HISTORY_ENV, str(blocker / "history.sqlite3"))
    said: list[str] = []
    results = await arun("p", ["a", "b"], client=client_for(fake), poll=FAST, announce=said.append)
    assert results.ok and results.run_id is None  # nothing of it is in the history
    assert len(said) == 1 and said[0].startswith("history not written") and "\n" not in said[0]


def test_the_token_never_reaches_the_history(history_file, over_fake) -> None:
    secret = "tok_NOT_IN_ENV_42"
    fake = FakeJobsAPI(token=secret, scripts={"a": words_script("x", final="error")},
                       failure_message=f"worker said {secret}")
    over_fake(fake)
    results = run(f"prompt naming {secret}", ["a"], url=BASE, token=secret, poll=FAST, announce=None)
    assert results["a"].state is JobState.FAILED and secret in results["a"].error  # the live value is untouched
    fake.scripts["a"] = words_script("y")
    results.retry()
    assert results.ok and secret.encode() not in history_file.read_bytes()


def test_attach_after_a_kernel_restart_resumes_the_jobs_and_keeps_their_text(history_file, over_fake) -> None:
    from gridllm_nb import aattach
    from gridllm_nb.core import history

    words = "one two three four five six seven eight nine ten eleven twelve"
    fake = FakeJobsAPI(scripts={"a": words_script(words), "b": words_script("short", final="error")})
    over_fake(fake)
    # Kernel 1 runs on its own loop and dies mid-stream: nothing of it runs again (no finally, no cancel).
    dead = asyncio.new_event_loop()
    dead.set_exception_handler(lambda loop, context: None)  # its tasks are destroyed pending, as in a crash
    seen: list[JobUpdate] = []
    dead.create_task(arun("the prompt", ["a", "b"], client=client_for(fake), poll=FAST, on_update=seen.append,
                          options={"max_tokens": 9}))
    crash_text = ""

    async def mid_stream() -> None:
        nonlocal crash_text
        await until(lambda: any(u.tag == "a" and u.text.count(" ") >= 2 for u in seen)
                     and _stored_rows().get("b", {}).get("state") == "failed"
                     and _stored_rows().get("a", {}).get("job_id"), "a streaming, b ended and stored")
        crash_text = results_a_text()

    def results_a_text() -> str:
        return [u.text for u in seen if u.tag == "a"][-1]

    dead.run_until_complete(mid_stream())
    dead.close()
    assert crash_text and crash_text != words
    a_job = next(u.job_id for u in seen if u.tag == "a" and u.job_id)
    b_job = next(u.job_id for u in seen if u.tag == "b" and u.job_id)
    gets = len(fake.gets())

    # Kernel 2: a new loop, poller and client; only the history file and the service remain.
    [run_row] = history.recent(1)
    later: list[JobUpdate] = []
    results = run_sync(aattach(history.short_id(run_row["run_id"]), on_update=later.append, poll=FAST,
                               announce=None))
    assert results.run_id == run_row["run_id"] and results.prompt == "the prompt"
    assert results["a"].state is JobState.COMPLETED and results["a"].text == words and results["a"].job_id == a_job
    assert results["b"].state is JobState.FAILED and results["b"].text == "short"  # shown as stored
    # Every model is shown as it stands first; a resumes from its whole log so far (nothing is lost).
    assert [u.tag for u in later[:2]] == ["a", "b"] and later[1].text == "short"
    resumed = [u for u in later[2:] if u.text]
    assert resumed[0].text.startswith(crash_text) and "".join(u.delta for u in later[2:]) == words
    assert all(b_job not in r.url.path for r in fake.gets()[gets:])  # an ended job is not asked about again
    assert fake.posts() and len(fake.posts()) == 2  # nothing was submitted again
    rows = _stored_rows()
    assert rows["a"]["state"] == "completed" and rows["a"]["text"] == words  # its row updated as it ended
    # The reattached run is a run like any other: b can be retried, with the run's options.
    fake.scripts["b"] = words_script("b again")
    results.retry()
    assert results.ok and json_of(fake.posts()[-1])["options"] == {"max_tokens": 9}
    assert _stored_rows()["b"]["text"] == "b again"


def json_of(request) -> dict:
    import json

    return json.loads(json.loads(request.content)["commandLine"])


async def test_attach_ends_a_job_the_service_forgot_lost_and_stores_it(history_file, over_fake) -> None:
    from gridllm_nb.core import recorder
    from gridllm_nb.core.results import Result, Results
    from gridllm_nb.core.run import aattach

    fake = FakeJobsAPI()
    over_fake(fake)
    stored = Results("p", {"gone": Result(tag="gone", job_id="f" * 32, state=JobState.RUNNING),
                           "never": Result(tag="never", state=JobState.SUBMITTED)})
    run_id = recorder.record(stored, BASE)
    results = await aattach(run_id, poll=FAST, announce=None)
    gone, never = results["gone"], results["never"]
    assert gone.state is JobState.LOST and "no longer knows job " + "f" * 32 in gone.error
    assert never.state is JobState.LOST and "no job id" in never.error
    assert {r["state"] for r in _stored_rows().values()} == {"lost"} and fake.posts() == []
    assert results.retryable == ["gone", "never"]


async def test_attach_to_bare_job_ids_learns_their_models_and_prompt_from_the_service(over_fake) -> None:
    from gridllm_nb.core.run import aattach

    fake = FakeJobsAPI(scripts={"a": words_script("from a"), "b": words_script("from b", final="error")})
    client = client_for(fake)
    ids = [await client.submit("same prompt", tag, system="sys") for tag in ("a", "b")]
    over_fake(fake)
    results = await aattach(ids, url=BASE, poll=FAST, announce=None)
    assert list(results) == ["a", "b"] and results.prompt == "same prompt" and results.run_id is None
    assert results["a"].text == "from a" and results["b"].state is JobState.FAILED
    fake.scripts["b"] = words_script("b fixed")
    await results.aretry()
    assert results.ok and json_of(fake.posts()[-1]) == {"inputs": ["same prompt"], "system": "sys"}
    with pytest.raises(ConfigError, match="no job id given"):
        await aattach([" "], url=BASE)


def test_attach_and_aattach_are_exported() -> None:
    import gridllm_nb
    from gridllm_nb.core import run as runner

    assert gridllm_nb.attach is runner.attach and gridllm_nb.aattach is runner.aattach
    assert {"attach", "aattach"} <= set(gridllm_nb.__all__)


@pytest.mark.models
def test_retry_and_attach_on_the_real_service(service_url: str, history_file) -> None:
    from gridllm_nb import attach
    from gridllm_nb.core import history

    options = {"max_tokens": 8, "temperature": 0}
    first = run("Say hi.", ["smollm2:135m"], url=service_url, timeout=0.001, options=options, announce=None)
    assert first.retryable == ["smollm2:135m"]  # cut short before any answer
    first.retry(timeout=120)
    r = first["smollm2:135m"]
    assert first.ok and r.text.strip() and r.first_token_s is not None
    again = attach(history.short_id(first.run_id), announce=None)  # every job ended: shown as stored
    assert again["smollm2:135m"].text == r.text and again["smollm2:135m"].job_id == r.job_id


@pytest.mark.parametrize(("call", "says"), [
    (lambda: run("hi", [123]), "models must be tags (str); got int"),
    (lambda: run("hi", "m", options="max_tokens=8"), "options must be a dict"),
    (lambda: run("hi", "m", options={"stop": object()}), "options must be standard JSON values"),
    (lambda: run("hi", "m", options={"t": float("nan")}), "no NaN or Infinity"),
    (lambda: run("hi", "m", timeout="x"), "timeout must be a number"),
    (lambda: run("hi", "m", hours=float("inf")), "hours must be a finite number"),
    (lambda: run(123, "m"), "prompt must be text (a str), not int"),
    (lambda: run("caf\udce9", "m"), "prompt is not valid Unicode text: a lone surrogate ('\\udce9') at character 3"),
    (lambda: run("hi", "m", system=b"x"), "system must be text"),
    (lambda: run("hi", "m", on_update=3), "on_update must be a function"),
    (lambda: run("hi", "m", unknown="ignore"), "unknown must be one of 'raise', 'fail'"),
    (lambda: run("hi", "m", token=42), "token must be text or a Secret"),
    (lambda: run("hi", "m", url=5), "url must be text"),
    (lambda: attach(123), "run must be a history run id (str), a list of job ids, Results or None, not int"),
    (lambda: attach(["nonexistent"]), "malformed job id 'nonexistent': expected 32 hex digits"),
])
def test_misuse_of_the_python_api_is_a_config_error_naming_the_argument(call, says) -> None:
    # issue 22, case 11: AttributeError, ValueError, TypeError, and "empty prompt" for run(123, ...)
    with pytest.raises(ConfigError) as info:
        call()
    assert says in str(info.value)
