"""Prompt × model grids: bounded, one poller, progress, GridResults; on a fake API in fake time."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.jobs import JobState
from gridllm_nb.api.poller import Poller, PollSettings, get_poller, use_poller
from gridllm_nb.core.grid import GridResults, agrid, grid
from gridllm_nb.core.progress import Counts, Progress, TextProgress, progress_line
from gridllm_nb.errors import ConfigError

from ..fakes import FakeClock, FakeJobsAPI, client_for, words_script

BASE = "https://grid.invalid/remotejobs/v2"
TICK = PollSettings(fast=0.1, slow=0.1)


def fake_time() -> FakeClock:
    """Make the running loop's one poller run on a fake clock: no real sleeps, time moves per tick."""
    clock = FakeClock()
    use_poller(Poller(TICK, clock=clock))
    return clock


def sent_prompts(fake: FakeJobsAPI) -> list[tuple[str, str]]:
    return [(json.loads(json.loads(r.content)["commandLine"])["inputs"][0], json.loads(r.content)["tag"])
            for r in fake.posts()]


def unfinished(fake: FakeJobsAPI) -> int:
    """Jobs the service has not yet reported at their end."""
    return sum(1 for j in fake.jobs.values() if j.position < len(j.steps) and not j.cancelled)


# -- the grid ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ten_prompts_by_two_models_all_complete_through_the_one_poller() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(scripts={"a": words_script("answer from a"), "b": words_script("b says hi")})
    prompts = [f"question {i}" for i in range(10)]
    result = await agrid(prompts, ["a", "b"], client=client_for(fake, clock=clock), progress=None)
    assert isinstance(result, GridResults) and len(result) == 10 and result.done and result.ok
    assert result.counts == Counts(done=20, failed=0, total=20)
    assert [run.prompt for run in result] == prompts
    assert result[3]["a"].text == "answer from a" and result[3]["b"].text == "b says hi"
    assert all(r.job_id and r.state is JobState.COMPLETED for run in result for r in run.values())
    # prompt by prompt, every model of a prompt before the next prompt
    assert sent_prompts(fake)[:4] == [("question 0", "a"), ("question 0", "b"), ("question 1", "a"),
                                      ("question 1", "b")]
    # one poller for all of them: its GETs carry many jobs at once
    assert get_poller().clock is clock
    assert max(len(r.url.path.split("/")[-1].split(",")) for r in fake.gets()) == 20


@pytest.mark.anyio
async def test_at_most_max_live_jobs_are_unfinished_at_once() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(default_script=words_script("one two three four"))
    seen: list[int] = []
    handle = fake.handle

    def counting(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen.append(unfinished(fake) + 1)  # the job this POST creates
        return handle(request)

    fake.handle = counting  # type: ignore[method-assign]
    result = await agrid([f"p{i}" for i in range(30)], ["a", "b"], max_live=5,
                         client=client_for(fake, clock=clock), progress=None)
    assert result.counts.done == 60 and len(seen) == 60
    assert max(seen) == 5  # bounded, and the bound is used


@pytest.mark.anyio
async def test_a_failing_model_is_counted_failed_while_the_others_complete() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(scripts={"bad": words_script("partial words", final="error")})
    progress: list[Counts] = []
    result = await agrid([f"p{i}" for i in range(4)], ["good", "bad"], client=client_for(fake, clock=clock),
                         progress=None, on_progress=lambda g: progress.append(g.counts))
    assert result.counts == Counts(done=4, failed=4, total=8) and not result.ok and result.done
    assert all(run["bad"].state is JobState.FAILED and run["bad"].text == "partial words" for run in result)
    assert progress[0] == Counts(0, 0, 8) and progress[-1] == Counts(4, 4, 8) and len(progress) == 9
    good, bad = result.summary()
    assert (good["model"], good["success_rate"], bad["success_rate"], bad["mean_s"]) == ("good", 1.0, 0.0, None)


@pytest.mark.anyio
async def test_an_unknown_model_raises_before_anything_is_sent_or_fails_its_column() -> None:
    from gridllm_nb.errors import UnknownModel

    clock = fake_time()
    fake = FakeJobsAPI(models=["smollm2:135m"])
    with pytest.raises(UnknownModel, match="did you mean smollm2:135m"):
        await agrid(["a", "b"], ["smollm2:135m", "smollm2:136m"], client=client_for(fake, clock=clock), progress=None)
    assert fake.posts() == []
    result = await agrid(["a", "b"], ["smollm2:135m", "smollm2:136m"], client=client_for(fake, clock=clock),
                         progress=None, unknown="fail")
    assert result.counts == Counts(done=2, failed=2, total=4)
    assert [job.tag for job in fake.jobs.values()] == ["smollm2:135m"] * 2  # nothing sent for the unknown one
    assert result[1]["smollm2:136m"].job_id is None


@pytest.mark.anyio
async def test_cancelling_mid_grid_cancels_live_jobs_keeps_text_and_sends_no_more() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(default_script=[("running", "half an answer")], cancel_supported=True)
    kept: list[GridResults] = []
    task = asyncio.ensure_future(agrid([f"p{i}" for i in range(10)], ["a"], max_live=3, progress=None,
                                       client=client_for(fake, clock=clock), on_progress=kept.append))
    while not (kept and sum(1 for run in kept[0] if run["a"].text) == 3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    g = kept[0]
    assert g.done and g.counts == Counts(done=0, failed=10, total=10)
    live, unsent = list(g)[:3], list(g)[3:]
    assert all(run["a"].state is JobState.CANCELLED and run["a"].text == "half an answer" for run in live)
    assert all(run["a"].job_id is None and "before it was sent" in run["a"].error for run in unsent)
    (delete,) = [r for r in fake.requests if r.method == "DELETE"]
    assert sorted(delete.url.path.split("/")[-1].split(",")) == sorted(run["a"].job_id for run in live)
    assert len(fake.posts()) == 3
    gets = len(fake.gets())
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(fake.gets()) == gets and not get_poller().running  # polling really stopped


@pytest.mark.anyio
async def test_the_timeout_bounds_the_whole_grid() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(default_script=[("running", "slow")], cancel_supported=True)
    # hours=8: in fake time the poller races ahead, and must not reach a job's own hours limit
    # (which would free a slot) within the real 0.5 s the grid is given
    result = await agrid(["p0", "p1", "p2"], ["a"], max_live=2, timeout=0.5, hours=8, progress=None,
                         client=client_for(fake, clock=clock))
    states = [(run["a"].state, run["a"].text) for run in result]
    assert states == [(JobState.TIMED_OUT, "slow")] * 2 + [(JobState.TIMED_OUT, "")]
    assert "not sent within the timeout of 0.5 s" in result[2]["a"].error
    assert [r.method for r in fake.requests].count("DELETE") == 1


@pytest.mark.anyio
async def test_prompts_given_by_name() -> None:
    clock = fake_time()
    fake = FakeJobsAPI()
    result = await agrid({"capital": "Capital of France?", "sum": "1+1?"}, ["a"], client=client_for(fake, clock=clock),
                         progress=None)
    assert result["sum"].prompt == "1+1?" and result["sum"] is result[1]
    frame = result.to_pandas()
    assert list(frame.columns[:3]) == ["prompt_index", "name", "prompt"]
    assert list(frame["name"]) == ["capital", "sum"]
    with pytest.raises(KeyError):
        result["nope"]


@pytest.mark.anyio
async def test_to_pandas_has_one_row_per_prompt_and_model_with_every_result_field() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(scripts={"b": words_script("x", final="failed")})
    result = await agrid(["p0", "p1", "p2"], ["a", "b"], client=client_for(fake, clock=clock), progress=None)
    frame = result.to_pandas()
    assert len(frame) == 6
    assert list(frame.columns[:2]) == ["prompt_index", "prompt"]
    assert list(frame.columns[2:]) == list(result[0]["a"].to_dict())  # new Result fields arrive by themselves
    assert list(frame["prompt_index"]) == [0, 0, 1, 1, 2, 2] and list(frame["tag"]) == ["a", "b"] * 3
    assert list(frame["state"]) == ["completed", "failed"] * 3


@pytest.mark.parametrize("prompts,match", [("one string", "not one string"), ([], "no prompts"),
                                           (["ok", "  "], "prompt 1 is empty"), ({"x": 3}, "prompt 'x' is not text")])
def test_usage_errors_are_config_errors(prompts, match) -> None:
    with pytest.raises(ConfigError, match=match):
        grid(prompts, ["a"], client=JobsClient(BASE, transport=FakeJobsAPI().transport()))


def test_max_live_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError, match="max_live"):
        grid(["p"], ["a"], max_live=0, client=JobsClient(BASE, transport=FakeJobsAPI().transport()))


def test_grid_blocks_without_a_loop() -> None:
    fake = FakeJobsAPI()
    result = grid(["p0", "p1"], "a", client=JobsClient(BASE, transport=fake.transport()), progress=None,
                  poll=PollSettings(fast=0.001, slow=0.01))
    assert result.ok and result[1]["a"].text == "Hello from the fake grid"


# -- what it shows -------------------------------------------------------------------------------


def _finished(outcomes: list[tuple[str, str, float]]) -> GridResults:
    from gridllm_nb.core.results import Result, Results

    runs = [Results(f"p{i}", {tag: Result(tag=tag, state=JobState(state), elapsed=t)})
            for i, (tag, state, t) in enumerate(outcomes)]
    return GridResults(runs, ["a"])


def test_repr_and_html_stay_small_and_escaped() -> None:
    from gridllm_nb.core.results import Result, Results

    evil = "<img src=x onerror=alert(1)>"
    runs = [Results(f"p{i}", {evil: Result(tag=evil, text="<script>x</script>" * 100, state=JobState.COMPLETED,
                                            elapsed=2.0)}) for i in range(1000)]
    g = GridResults(runs, [evil])
    page = g._repr_html_()
    assert "<img" not in page and "<script" not in page and "&lt;img" in page
    assert len(page) < 1500  # a summary, not a thousand answers
    assert "1000 prompts × 1 model: 1000 completed, 0 failed" in page and "100%" in page and "2.0 s" in page
    assert repr(g).startswith("GridResults(1000 prompts × 1 model: 1000 completed, 0 failed)")
    assert len(repr(g)) < 200


def test_counts_of_a_grid_made_from_finished_results() -> None:
    g = _finished([("a", "completed", 1.0), ("a", "failed", 0.5), ("a", "running", 0.1)])
    assert g.counts == Counts(1, 1, 3) and g.counts.live == 1 and not g.done
    assert "1 live" in repr(g)


def test_progress_line_has_counts_elapsed_and_eta() -> None:
    assert progress_line(Counts(0, 0, 10), 3) == "0/10 done · 0 failed · 0:03 elapsed"
    assert progress_line(Counts(3, 1, 10), 40) == "3/10 done · 1 failed · 0:40 elapsed · ETA 1:00"
    assert progress_line(Counts(9, 1, 10), 3725) == "9/10 done · 1 failed · 1:02:05 elapsed"


def test_text_progress_is_one_line_rewritten_in_place() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = TextProgress(3, clock=clock, stream=out)
    bar.update(Counts(1, 0, 3))
    clock.now += 0.1
    bar.update(Counts(2, 0, 3))  # too soon: not drawn
    clock.now += 0.5
    bar.close(Counts(2, 1, 3))
    first, last = out.getvalue().split("\r")[1:]
    assert first == "1/3 done · 0 failed · 0:00 elapsed · ETA 0:00"
    assert last.endswith("\n") and "\n" not in first + last[:-1]  # one line, rewritten
    assert len(last) == len(first) + 1 and last.rstrip() == "2/3 done · 1 failed · 0:01 elapsed"  # the longer one wiped


def test_the_throttle_draws_new_counts_after_min_interval_and_the_same_ones_after_refresh() -> None:
    clock = FakeClock()
    bar = Progress(100, clock=clock, min_interval=0.25, refresh=1.0)
    for i in range(100):  # a job ends every 10 ms for a second
        bar.update(Counts(i, 0, 100))
        clock.now += 0.01
    assert bar.draws == 4
    for _ in range(100):  # then nothing ends for 10 s: the clock still moves once a second
        bar.update(Counts(99, 0, 100))
        clock.now += 0.1
    assert bar.draws == 4 + 10
    bar.close(Counts(100, 0, 100))
    bar.update(Counts(100, 0, 100))
    assert bar.draws == 15


# -- %%gridllm --over ------------------------------------------------------------------------------


# -- the real local service ----------------------------------------------------------------------


@pytest.mark.models
def test_a_small_grid_on_the_real_models(service_url: str) -> None:
    result = grid(["Say hi.", "Name a colour.", "Count to three."], ["smollm2:135m", "gemma3:270m"],
                  url=service_url, options={"max_tokens": 8, "temperature": 0}, max_live=4, progress=None)
    assert result.ok, result
    frame = result.to_pandas()
    assert len(frame) == 6 and set(frame["state"]) == {"completed"}
    assert all(text.strip() for text in frame["text"])
