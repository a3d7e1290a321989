"""A result's live stats: recorded by ``Result.apply`` from run-relative update times."""

from __future__ import annotations

import pytest

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.core.results import Result, Results


def feed(result: Result, *steps: tuple[float, JobState, str], finish: str | None = None,
         tokens: int | None = None) -> Result:
    for at, state, text in steps:
        last = state.terminal
        result.apply(JobUpdate(tag=result.tag, job_id="j1", state=state, text=text, elapsed=at,
                               finish=finish if last else None, tokens=tokens if last else None))
    return result


def scripted(**kw: object) -> Result:
    """Submitted at 0.1 s, running at 0.3 s, first words at 0.9 s, done at 2.9 s."""
    return feed(Result(tag="m"),
                (0.1, JobState.SUBMITTED, ""),
                (0.3, JobState.RUNNING, ""),
                (0.9, JobState.RUNNING, "Hello"),
                (2.9, JobState.COMPLETED, "Hello world, how are you?"), **kw)  # type: ignore[arg-type]


def test_a_scripted_run_gives_its_phases_and_the_services_token_rate() -> None:
    r = scripted(finish="stop", tokens=80)
    assert (r.queued_s, r.ttft_s, r.gen_s) == pytest.approx((0.2, 0.8, 2.0))
    assert (r.tokens, r.tokens_estimated, r.tokens_per_s) == (80, False, pytest.approx(40.0))
    assert r.finish == "completed"
    assert r.stats_line() == "queued 0.2 s · first token 0.8 s · 40 tok/s"


def test_without_a_service_count_tokens_are_estimated_from_characters() -> None:
    r = scripted()  # 25 characters → ~6 tokens over 2 s
    assert (r.tokens, r.tokens_estimated) == (6, True)
    assert r.stats_line().endswith("~3 tok/s")


def test_started_is_the_first_text_when_running_was_never_seen() -> None:
    r = feed(Result(tag="m"), (0.0, JobState.SUBMITTED, ""), (0.5, JobState.QUEUED, ""),
             (1.5, JobState.COMPLETED, "all at once"))
    assert (r.queued_s, r.ttft_s, r.gen_s) == pytest.approx((1.5, 1.5, 0.0))
    assert r.tokens_per_s is None  # no time to divide by: no rate rather than infinity


@pytest.mark.parametrize(("state", "raw", "finish"), [
    (JobState.COMPLETED, "stop", "completed"),
    (JobState.COMPLETED, "length", "length"),
    (JobState.FAILED, None, "failed"),
    (JobState.CANCELLED, None, "cancelled"),
    (JobState.TIMED_OUT, None, "timed_out"),
    (JobState.LOST, None, "lost"),
])
def test_why_it_ended_has_one_vocabulary(state: JobState, raw: str | None, finish: str) -> None:
    r = feed(Result(tag="m"), (0.0, JobState.SUBMITTED, ""), (1.0, state, "x"), finish=raw)
    assert r.finish == finish
    assert r.finish_raw == raw


def test_a_live_result_has_no_finish_and_its_generation_time_grows() -> None:
    r = feed(Result(tag="m"), (0.0, JobState.SUBMITTED, ""), (1.0, JobState.RUNNING, "a"))
    assert r.finish is None and r.gen_s == 0.0
    feed(r, (3.0, JobState.RUNNING, "a b c"))
    assert r.gen_s == pytest.approx(2.0)


def test_the_row_carries_the_stats_for_the_cli_json_and_pandas() -> None:
    row = scripted(finish="length", tokens=80).to_dict()
    assert {k: row[k] for k in ("queued_s", "ttft_s", "gen_s", "tokens", "tokens_per_s", "finish")} == {
        "queued_s": 0.2, "ttft_s": 0.8, "gen_s": 2.0, "tokens": 80, "tokens_per_s": 40.0, "finish": "length"}
    pd = pytest.importorskip("pandas")
    frame = Results("p", {"m": scripted()}).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert {"queued_s", "ttft_s", "gen_s", "tokens", "tokens_per_s", "finish"} <= set(frame.columns)
    assert frame.loc[0, "finish"] == "completed"


def test_the_saved_picture_shows_the_stats_line() -> None:
    from gridllm_nb.display.table import results_bundle

    html = results_bundle([scripted(finish="stop", tokens=80)], "markdown")["text/html"]
    assert "queued 0.2 s · first token 0.8 s · 40 tok/s" in html
