"""A grid as one run of the history: written as its jobs go, read back, attached and retried (``core.grid_history``)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.api.poller import PollSettings
from gridllm_nb.core import commands, history, recorder
from gridllm_nb.core.grid import GridResults, agrid
from gridllm_nb.core.grid_history import NOT_SENT, from_history
from gridllm_nb.core.judge import judge
from gridllm_nb.core.run import aattach, aretry
from gridllm_nb.core.sync import run_sync
from gridllm_nb.errors import ConfigError

from ..fakes import FakeJobsAPI, client_for, until, words_script

BASE = "https://grid.invalid/remotejobs/v2"
FAST = PollSettings(fast=0.01, slow=0.01)


def _rows() -> list[dict]:
    runs = history.recent(1)
    return runs[0]["results"] if runs else []


@pytest.mark.anyio
async def test_a_grid_is_one_run_every_row_inserted_at_the_first_submit_then_updated_as_each_job_is_sent_and_ends(
        history_file, monkeypatch) -> None:
    writes: list[list[tuple[str, tuple]]] = []
    real = recorder._write
    monkeypatch.setattr(recorder, "_write", lambda path, ops: (writes.append(list(ops)), real(path, ops)))
    fake = FakeJobsAPI(models=["good", "bad"], scripts={"bad": words_script("half of it", final="error")})
    prompts = [f"question {i}" for i in range(5)]
    result = await agrid(prompts, ["good", "bad"], client=client_for(fake), poll=FAST, max_live=3, progress=None)
    assert result.run_id and result.counts.done == 5 and result.counts.failed == 5
    kinds = [kind for batch in writes for kind, _ in batch]
    # One insert a job, all at the first write; then one update per submit (the first job's id came
    # with the inserts) and one per end: never a write per poll.
    assert kinds[:10] == ["insert"] * 10 and kinds.count("insert") == 10 and kinds.count("update") == 9 + 10
    columns = history.INSERT.split("(")[1].split(")")[0].split(", ")
    inserted = [values for kind, values in writes[0] if kind == "insert"]
    assert [(v[columns.index("prompt_index")], v[columns.index("tag")]) for v in inserted] == [
        (i, tag) for i in range(5) for tag in ("good", "bad")]  # in the grid's order
    assert all(v[columns.index("state")] == "submitted" for v in inserted)
    assert sum(1 for v in inserted if v[columns.index("job_id")]) == 1  # the others not sent yet
    [run] = history.recent(5)  # one run, not five
    assert run["run_id"] == result.run_id and len(run["results"]) == 10
    stored = {(r["prompt_index"], r["tag"]): r for r in run["results"]}
    assert set(stored) == {(i, tag) for i in range(5) for tag in ("good", "bad")}
    assert stored[3, "good"]["prompt"] == "question 3" and stored[3, "good"]["state"] == "completed"
    assert stored[3, "bad"]["state"] == "failed" and stored[3, "bad"]["text"] == "half of it"
    assert stored[3, "good"]["job_id"] == result[3]["good"].job_id


@pytest.mark.anyio
async def test_a_grid_kept_out_of_the_history_or_that_never_started_writes_nothing(history_file) -> None:
    fake = FakeJobsAPI(models=["good"])
    result = await agrid(["a", "b"], ["good"], client=client_for(fake), poll=FAST, progress=None, history=False)
    assert result.ok and result.run_id is None and not history_file.exists()
    with pytest.raises(ConfigError, match="history must be"):
        await agrid(["a"], ["good"], client=client_for(fake), poll=FAST, progress=None, history="yes")
    from gridllm_nb.errors import UnknownModel

    with pytest.raises(UnknownModel):
        await agrid(["a"], ["good", "typo"], client=client_for(fake), poll=FAST, progress=None)
    assert _rows() == []


def test_a_stored_grid_comes_back_as_grid_results_and_the_history_lists_it_as_one_line(history_file) -> None:
    fake = FakeJobsAPI(models=["good", "bad"], scripts={"bad": words_script("no", final="error")})
    made = run_sync(agrid({"x": "first", "y": "second"}, ["good", "bad"], client=client_for(fake), poll=FAST,
                          progress=None, options={"max_tokens": 4}, system="be brief"))
    run_sync(agrid(["p"], ["good"], client=client_for(fake), poll=FAST, progress=None, history=False))
    back = from_history(history.short_id(made.run_id))
    assert isinstance(back, GridResults) and back.run_id == made.run_id and back.models == ["good", "bad"]
    assert [run.prompt for run in back] == ["first", "second"] and back[1]["good"].text == made[1]["good"].text
    assert back.counts == made.counts and back.spec is not None and back.spec.url == BASE
    assert dict(back.spec.options) == {"max_tokens": 4} and back.spec.system == "be brief"
    with pytest.raises(ConfigError, match="is a grid"):
        history.load_run(made.run_id)
    out = io.StringIO()
    assert commands.history(5, out) == 0
    when = history.local_time(history.recent(1)[0]["created"])
    assert out.getvalue().splitlines() == [
        f"{history.short_id(made.run_id)}  {when}  grid: 2 prompts × 2 models  2 completed, 2 failed"]


def test_retry_of_a_grid_run_resubmits_only_its_failed_jobs_and_updates_their_rows(history_file, over_fake) -> None:
    fake = FakeJobsAPI(models=["good", "bad"], scripts={"bad": words_script("half", final="error")})
    over_fake(fake)
    made = run_sync(agrid(["p0", "p1", "p2"], ["good", "bad"], url=BASE, poll=FAST, progress=None, announce=None,
                          options={"max_tokens": 7}))
    before = len(fake.jobs)
    fake.scripts["bad"] = words_script("fixed now")
    grid = from_history(made.run_id)
    again = run_sync(aretry(grid, announce=None))
    assert again is grid and grid.ok and grid.counts.done == 6 and grid.counts.failed == 0
    sent = [(json.loads(job.command_line), job.tag) for job in list(fake.jobs.values())[before:]]
    assert sorted((asked["inputs"][0], tag) for asked, tag in sent) == [("p0", "bad"), ("p1", "bad"), ("p2", "bad")]
    assert all(asked["options"] == {"max_tokens": 7} for asked, _ in sent)
    rows = {(r["prompt_index"], r["tag"]): r for r in _rows()}
    assert len(rows) == 6 and all(r["state"] == "completed" for r in rows.values())
    assert rows[2, "bad"]["text"] == "fixed now" and rows[2, "good"]["job_id"] == made[2]["good"].job_id
    assert rows[2, "bad"]["job_id"] == grid[2]["bad"].job_id != made[2]["bad"].job_id
    before = len(fake.jobs)
    assert run_sync(aretry(from_history(made.run_id), announce=None)).ok and len(fake.jobs) == before
    with pytest.raises(ConfigError, match="retried whole"):
        run_sync(aretry(grid, ["bad"], announce=None))


def test_attach_of_a_grid_whose_kernel_died_follows_its_live_jobs_to_their_end(history_file, over_fake) -> None:
    words = "one two three four five six seven eight nine ten eleven twelve"
    fake = FakeJobsAPI(default_script=words_script(words))
    over_fake(fake)
    # Kernel 1 runs on its own loop and dies mid-grid: nothing of it runs again (no finally, no cancel).
    dead = asyncio.new_event_loop()
    dead.set_exception_handler(lambda loop, context: None)
    seen: list[GridResults] = []
    dead.create_task(agrid(["p0", "p1", "p2"], ["a", "b"], url=BASE, poll=FAST, progress=None, announce=None,
                           on_progress=seen.append))

    def stored_live() -> bool:
        rows = _rows()
        return len(rows) == 6 and all(r["job_id"] and r["state"] == "submitted" for r in rows)

    async def mid_grid() -> None:
        await until(lambda: seen and stored_live() and all(r.text for run in seen[0] for r in run.values()),
                     "every job sent, stored and talking")

    dead.run_until_complete(mid_grid())
    dead.close()
    crash = {(i, tag): r.text for i, run in enumerate(seen[0]) for tag, r in run.items()}
    assert all(text != words for text in crash.values())
    before = len(fake.jobs)

    # Kernel 2: only the history file and the service remain.
    grid = run_sync(aattach(history.recent(1)[0]["run_id"][:8], poll=FAST, announce=None))
    assert isinstance(grid, GridResults) and grid.ok and grid.counts.done == 6 and grid.done
    assert all(r.text == words and r.state is JobState.COMPLETED for run in grid for r in run.values())
    assert all(grid[i][tag].text.startswith(text) for (i, tag), text in crash.items())
    assert len(fake.jobs) == before == 6  # nothing was submitted again
    assert {r["state"] for r in _rows()} == {"completed"} and {r["text"] for r in _rows()} == {words}


def _die_mid_grid(fake: FakeJobsAPI, condition, what: str, *args, **kwargs) -> None:
    """Kernel 1 runs ``agrid(*args, **kwargs)`` on its own loop and dies once ``condition()`` holds:
    nothing of it runs again (no finally, no cancel, no last write)."""
    dead = asyncio.new_event_loop()
    dead.set_exception_handler(lambda loop, context: None)
    dead.create_task(agrid(*args, url=BASE, poll=FAST, progress=None, announce=None, **kwargs))
    dead.run_until_complete(until(condition, what))
    dead.close()


def test_a_grid_whose_kernel_died_with_jobs_unsent_names_them_on_attach_and_retry_sends_them(
        history_file, over_fake) -> None:
    fake = FakeJobsAPI(default_script=[("queued", ""), ("running", "still going")])  # never ends
    over_fake(fake)

    def two_sent() -> bool:
        rows = _rows()
        return len(rows) == 6 and sum(1 for r in rows if r["job_id"]) == 2

    _die_mid_grid(fake, two_sent, "every row stored, the two of max_live sent", ["p0", "p1", "p2"], ["a", "b"],
                  max_live=2)
    run_id = history.recent(1)[0]["run_id"]
    unsent = {(r["prompt_index"], r["tag"]) for r in _rows() if r["job_id"] is None}
    assert unsent == {(i, tag) for i in (1, 2) for tag in ("a", "b")}  # the jobs still waiting for a slot
    assert {r["state"] for r in _rows()} == {"submitted"}  # not failed: not sent
    out = io.StringIO()
    commands.history(1, out)
    assert out.getvalue().rstrip().endswith("grid: 3 prompts × 2 models  0 completed, 0 failed, 2 live, 4 not sent")

    # Kernel 2: attach follows the two sent jobs to their end and names the four never sent.
    for job in fake.jobs.values():
        job.steps = words_script("done now")
    said: list[str] = []
    grid = run_sync(aattach(run_id[:8], poll=FAST, announce=said.append))
    assert grid.counts.done == 2 and grid.unsent == sorted(unsent) and not grid.ok and len(fake.jobs) == 2
    assert said == [(f"4 jobs of grid {run_id[:8]} never sent (grid[1]–grid[2]: every model): retry sends them "
                     f"(gridllm-nb retry {run_id[:8]}, %gridllm retry {run_id[:8]})")]
    assert repr(grid).splitlines()[0] == "GridResults(3 prompts × 2 models: 2 completed, 0 failed, 4 not sent)"
    assert grid[1]["a"].error == NOT_SENT and grid[1]["a"].state is JobState.SUBMITTED
    assert grid.retryable == grid.unsent
    assert sum(1 for r in _rows() if r["state"] == "completed") == 2  # the unsent rows untouched, not LOST
    assert {r["state"] for r in _rows() if r["job_id"] is None} == {"submitted"}

    # Retry sends exactly the four never sent; every row ends completed, the first two keep their jobs.
    fake.default_script = words_script("sent at last")
    first = {(r["prompt_index"], r["tag"]): r["job_id"] for r in _rows() if r["job_id"]}
    grid = run_sync(aretry(from_history(run_id), announce=None))
    assert grid.ok and grid.counts.done == 6 and not grid.unsent and len(fake.jobs) == 6
    assert sorted((json.loads(job.command_line)["inputs"][0], job.tag) for job in list(fake.jobs.values())[2:]) == [
        (f"p{i}", tag) for i in (1, 2) for tag in ("a", "b")]
    rows = {(r["prompt_index"], r["tag"]): r for r in _rows()}
    assert all(r["state"] == "completed" and r["job_id"] for r in rows.values())
    assert {key: rows[key]["job_id"] for key in first} == first and rows[2, "b"]["text"] == "sent at last"
    assert grid[2]["b"].error is None


def _expected_rows(n: int) -> list[dict]:
    return [{"prompt": f"capital {i}?", "expected": f"city{i}"} for i in range(n)]


def test_a_grid_retried_from_the_history_checks_and_judges_its_new_answers_with_the_rows_kept(
        history_file, over_fake) -> None:
    answer = "city0 city1 city2"
    fake = FakeJobsAPI(models=["good", "bad", "j"], scripts={
        "good": words_script(answer), "bad": words_script("half", final="error"),
        "j": words_script("SCORE: 9 REASON: right")})
    over_fake(fake)
    made = run_sync(agrid(_expected_rows(3), ["good", "bad"], url=BASE, poll=FAST, progress=None, announce=None,
                          checks=["contains:{expected}", "max-words:5"], judge=judge("j", "The answer is {expected}.")))
    assert [s["passed"] for s in made.scores()] == [3, 0]
    assert all(r["checks"] for r in _rows())
    fake.scripts["bad"] = words_script(answer)
    grid = from_history(made.run_id)
    assert grid.rows_given == _expected_rows(3) and [c.name for c in grid.spec.checks] == [
        "contains:{expected}", "max-words:5", "judge:j"]
    said: list[str] = []
    judged_before = sum(1 for job in fake.jobs.values() if job.tag == "j")
    run_sync(aretry(grid, announce=said.append))
    assert grid.ok and said == []
    assert all(grid[i]["bad"].passed and [v.name for v in grid[i]["bad"].checks] == [
        "contains:{expected}", "max-words:5", "judge:j"] for i in range(3))
    asked = [json.loads(job.command_line)["inputs"][0] for job in fake.jobs.values() if job.tag == "j"]
    assert len(asked) == judged_before + 3 and all(f"The answer is city{i}." in q for q, i in zip(asked[-3:], range(3)))
    assert [s["passed"] for s in grid.scores()] == [3, 3] and grid.counts.passing == "passed: good 3/3 · bad 3/3"
    stored = {(r["prompt_index"], r["tag"]): json.loads(r["checks"]) for r in _rows()}
    assert all(v["passed"] for verdicts in stored.values() for v in verdicts)
    assert from_history(made.run_id).counts.passing == "passed: good 3/3 · bad 3/3"


def test_a_python_check_cannot_come_back_from_the_history_and_a_retry_says_so_in_one_line(
        history_file, over_fake) -> None:
    def short(text: str, _result) -> bool:
        return len(text) < 100

    fake = FakeJobsAPI(models=["good", "bad"], scripts={"good": words_script("city0"),
                                                        "bad": words_script("no", final="error")})
    over_fake(fake)
    made = run_sync(agrid(_expected_rows(1), ["good", "bad"], url=BASE, poll=FAST, progress=None, announce=None,
                          checks=["contains:{expected}", short]))
    fake.scripts["bad"] = words_script("city0")
    grid = from_history(made.run_id)
    assert [c.name for c in grid.spec.checks] == ["contains:{expected}"] and grid.spec.unkept_checks == ("short",)
    said: list[str] = []
    run_sync(aretry(grid, announce=said.append))
    assert said == [history.unkept_line(["short"])] and "short" in said[0]
    assert [(v.name, v.passed) for v in grid[0]["bad"].checks] == [("contains:{expected}", True)]
    assert [v.name for v in grid[0]["good"].checks] == ["contains:{expected}", "short"]  # as it was


def test_a_grid_retried_in_the_same_session_checks_its_new_answers(history_file, over_fake) -> None:
    fake = FakeJobsAPI(models=["m"], scripts={"m": words_script("no", final="error")})
    over_fake(fake)
    made = run_sync(agrid(_expected_rows(2), ["m"], url=BASE, poll=FAST, progress=None, announce=None,
                          checks="contains:{expected}", history=False))
    assert made.counts.passing == "passed: m 0/2" and made.run_id is None
    fake.scripts["m"] = words_script("city0 city1")
    run_sync(aretry(made, announce=None))
    assert made.ok and all(made[i]["m"].passed for i in range(2)) and made.counts.passing == "passed: m 2/2"
