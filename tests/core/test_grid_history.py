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
from gridllm_nb.core.grid_history import from_history
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
async def test_a_grid_is_one_run_a_row_inserted_per_job_as_it_is_sent_and_updated_once_as_it_ends(
        history_file, monkeypatch) -> None:
    writes: list[tuple[str, tuple]] = []
    real = recorder._write
    monkeypatch.setattr(recorder, "_write", lambda path, ops: (writes.extend(ops), real(path, ops)))
    fake = FakeJobsAPI(models=["good", "bad"], scripts={"bad": words_script("half of it", final="error")})
    prompts = [f"question {i}" for i in range(5)]
    result = await agrid(prompts, ["good", "bad"], client=client_for(fake), poll=FAST, max_live=3, progress=None)
    assert result.run_id and result.counts.done == 5 and result.counts.failed == 5
    kinds = [kind for kind, _ in writes]
    assert kinds.count("insert") == 10 and kinds.count("update") == 10  # one insert and one update a job
    job_id = history.INSERT.split("(")[1].split(")")[0].split(", ").index("job_id")
    inserted = [values for kind, values in writes if kind == "insert"]
    assert all(values[job_id] and values[job_id + 1] == "submitted" for values in inserted)  # a row when sent
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
