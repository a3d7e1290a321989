"""Judges on the fake API: the judging job, robust scores, failures, and max_live over both."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gridllm_nb.api.jobs import JobUpdate
from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.core.grid import agrid
from gridllm_nb.core.judge import judge, parse_judge_spec, parse_score
from gridllm_nb.core.results import Results
from gridllm_nb.core.run import arun
from gridllm_nb.errors import ConfigError

from ..fakes import FakeClock, FakeJobsAPI, client_for, words_script

FAST = PollSettings(fast=0.001, slow=0.01)


@pytest.mark.parametrize(("text", "score", "reason"), [
    ("SCORE: 8\nREASON: right and short", 0.8, "right and short"),
    ("Score: 7/10. Reason - mostly right", 0.7, "mostly right"),
    ("I'd give it 3 out of 5.", 0.6, "I'd give it 3 out of 5."),
    ("**Score**: 10", 1.0, ""), ("9", 0.9, "9"),
    ("SCORE: 12", None, ""), ("It is fine.", None, "It is fine."),
])
def test_parse_score_reads_the_usual_shapes(text: str, score: float | None, reason: str) -> None:
    got, why = parse_score(text)
    assert (got if got is None else round(got, 3)) == score and why == reason


def test_judge_specs_and_arguments() -> None:
    assert parse_judge_spec("smollm2:135m") == judge("smollm2:135m")
    assert parse_judge_spec("smollm2:135m:Is it polite?").rubric == "Is it polite?"
    assert parse_judge_spec("grader:Is it polite?").model == "grader"
    assert judge("j").name == "judge:j" and judge("j").options["max_tokens"] == 48
    for bad in ({"model": ""}, {"model": "j", "scale": 0}, {"model": "j", "pass_mark": 2}):
        with pytest.raises(ConfigError):
            judge(**bad)


def _prompts_to(fake: FakeJobsAPI, tag: str) -> list[str]:
    return [json.loads(json.loads(r.content)["commandLine"])["inputs"][0] for r in fake.posts()
            if json.loads(r.content)["tag"] == tag]


@pytest.mark.anyio
async def test_a_judge_grades_each_answer_with_a_job_of_its_own() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "b": words_script("Rome"),
                                "j": words_script("SCORE: 9 REASON: correct")})
    results = Results()
    states: list[str] = []

    def on_update(update: JobUpdate) -> None:
        if update.state.terminal and update.tag == "a":
            states.append(results["a"].checks[-1].line())

    await arun("capital of France?", ["a", "b"], client=client_for(fake), poll=FAST, results=results,
               judge=judge("j", "The right answer is Paris."), checks="contains:Paris", on_update=on_update)
    [first, *_] = _prompts_to(fake, "j")
    assert "The right answer is Paris." in first and "capital of France?" in first and "SCORE:" in first
    assert len(_prompts_to(fake, "j")) == 2
    assert states[0] == "… judge:j judging…" and states[-1] == "✓ judge:j 0.90: correct"
    verdict = results["a"].checks[1]
    assert verdict.passed and verdict.score == 0.9 and verdict.raw == "SCORE: 9 REASON: correct"
    assert results["b"].passed is False and results["b"].checks[1].passed  # the check failed, the judge did not
    assert list(results) == ["a", "b"]  # the judge is no model of the run


@pytest.mark.anyio
async def test_an_unparseable_verdict_is_a_failed_judgement_that_keeps_the_raw_text(history_file) -> None:
    from gridllm_nb.core import history

    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "j": words_script("I cannot say")})
    results = await arun("q", ["a"], client=client_for(fake), poll=FAST, judge="j")
    [v] = results["a"].checks
    assert not v.passed and v.score is None and v.reason == "no score in the judge's reply"
    assert v.raw == "I cannot say"
    assert history.load_run(results.run_id)["a"].checks == [v]  # the late verdict reached the history


@pytest.mark.anyio
async def test_a_failed_judging_job_fails_the_judgement() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "j": words_script("half", final="failed")})
    results = await arun("q", ["a"], client=client_for(fake), poll=FAST, judge=judge("j"), history=False)
    [v] = results["a"].checks
    assert not v.passed and v.reason.startswith("the judge's job failed")


@pytest.mark.anyio
async def test_in_a_grid_judging_jobs_count_against_max_live_and_templates_read_the_row() -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(scripts={"a": words_script("one two three four"), "j": words_script("SCORE: 4")})
    peak = 0

    def watch(_i: int, _u: JobUpdate) -> None:
        nonlocal peak
        peak = max(peak, sum(1 for j in fake.jobs.values() if j.position < len(j.steps)))

    rows = [{"prompt": f"q{i}", "expected": str(i)} for i in range(6)]
    result = await agrid(rows, ["a"], client=client_for(fake, clock=clock), progress=None, max_live=2,
                         judge=judge("j", "Expect {expected}."), on_update=watch)
    assert len(_prompts_to(fake, "j")) == 6 and "Expect 5." in _prompts_to(fake, "j")[-1]
    assert peak == 2  # answers and judgements share the two slots
    assert [run["a"].checks[0].score for run in result] == [0.4] * 6 and not result[0]["a"].passed
    assert result.counts.passing == "passed: a 0/6" and result.counts.done == 6
    [row] = result.scores()
    assert row["score"] == pytest.approx(0.4) and row["checked"] == 6


# -- pairwise ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "winner", "reason"), [
    ("WINNER: B\nREASON: shorter", "B", "shorter"), ("winner - a", "A", ""), ("It's a tie.", "tie", ""),
    ("WINNER: Z", None, ""), ("no idea", None, ""),
])
def test_parse_winner(text: str, winner: str | None, reason: str) -> None:
    from gridllm_nb.core.judge import parse_winner

    assert parse_winner(text, ["A", "B"]) == (winner, reason)


@pytest.mark.anyio
async def test_a_pairwise_judge_sees_every_answer_shuffled_and_nameless() -> None:
    fake = FakeJobsAPI(scripts={"model-one": words_script("Paris"), "model-two": words_script("Lyon"),
                                "j": words_script("WINNER: B REASON: right")})
    orders = set()
    for seed in range(8):
        results = await arun("capital of France?", ["model-one", "model-two"], client=client_for(fake), poll=FAST,
                             judge=judge("j", pairwise=True, seed=seed), history=False)
        sent = _prompts_to(fake, "j")[-1]
        assert "model-one" not in sent and "model-two" not in sent and "capital of France?" in sent
        first = "Paris" if sent.index("Paris") < sent.index("Lyon") else "Lyon"
        orders.add(first)
        winner = "model-two" if first == "Paris" else "model-one"  # B is the second shown
        loser = "model-one" if winner == "model-two" else "model-two"
        [won], [lost] = results[winner].checks, results[loser].checks
        assert (won.passed, won.score, won.reason) == (True, 1.0, "as B, won: right")
        assert (lost.passed, lost.score, lost.name) == (False, 0.0, "pairwise:j")
    assert orders == {"Paris", "Lyon"}  # which answer comes first is random
    assert len(_prompts_to(fake, "j")) == 8  # one judging job per prompt, not per answer


@pytest.mark.anyio
async def test_a_pairwise_judge_with_one_answer_has_nothing_to_compare() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("x"), "b": words_script("y", final="failed"),
                                "j": words_script("WINNER: A")})
    results = await arun("q", ["a", "b"], client=client_for(fake), poll=FAST, judge=judge("j", pairwise=True),
                         history=False)
    assert results["a"].checks[0].reason == "nothing to compare it with" and not _prompts_to(fake, "j")
    assert results["b"].checks[0].reason == "no answer: failed"


@pytest.mark.anyio
async def test_a_pairwise_judge_in_a_grid_judges_each_prompt_once_within_max_live() -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(scripts={"a": words_script("one two"), "b": words_script("three"),
                                "j": words_script("WINNER: tie")})
    result = await agrid([f"q{i}" for i in range(5)], ["a", "b"], client=client_for(fake, clock=clock),
                         progress=None, max_live=2, judge=judge("j", pairwise=True))
    assert len(_prompts_to(fake, "j")) == 5
    assert all(run[m].checks[0].score == 0.5 and run[m].passed for run in result for m in ("a", "b"))
    assert result.counts.passing == "passed: a 5/5 · b 5/5"


# -- a run cut short: no verdict stays "judging…" ---------------------------------------------------


FOREVER = [("running", "still thinking")]  # a job that only the run's timeout or a cancel ends


def card_lines(results: Results, tag: str) -> tuple[list[list[str]], Callable[[JobUpdate], None]]:
    """What ``tag``'s card says of its verdicts each time its end is shown, and the ``on_update`` that keeps it."""
    lines: list[list[str]] = []

    def on_update(update: JobUpdate) -> None:
        if update.tag == tag and update.state.terminal:
            lines.append([v.line() for v in results[tag].checks])

    return lines, on_update


@pytest.mark.anyio
async def test_a_pairwise_verdict_waiting_for_a_sibling_the_timeout_ends_fails_instead(history_file) -> None:
    from gridllm_nb.core import history

    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "slow": FOREVER, "j": words_script("WINNER: A")},
                       cancel_supported=True)
    results = Results()
    lines, on_update = card_lines(results, "a")
    await arun("q", ["a", "slow"], client=client_for(fake), poll=FAST, timeout=0.3, results=results,
               judge=judge("j", pairwise=True), on_update=on_update)
    [a], [slow] = results["a"].checks, results["slow"].checks
    assert (a.passed, a.score, a.reason) == (False, None, "not judged within the run's timeout")
    assert slow.reason == "no answer: timed out" and not _prompts_to(fake, "j")
    assert lines == [["… pairwise:j judging…"], ["✗ pairwise:j: not judged within the run's timeout"]]
    assert results["a"].passed is False and results.to_list()[0]["passed"] is False
    assert history.load_run(results.run_id)["a"].checks == [a]  # the late verdict reached the history


@pytest.mark.anyio
@pytest.mark.parametrize("validate", [True, False])
async def test_a_pairwise_judge_leaves_out_a_model_whose_submit_failed(validate: bool) -> None:
    # validate: the model is refused before anything is sent (unknown="fail"); else by the submit itself
    fake = FakeJobsAPI(models=["a", "b", "j"], scripts={"a": words_script("Paris"), "b": words_script("Lyon"),
                                                        "j": words_script("WINNER: B REASON: better")})
    results = await arun("q", ["a", "nope", "b"], client=client_for(fake), poll=FAST, unknown="fail",
                         validate=validate, judge=judge("j", pairwise=True, seed=1), history=False)
    assert results["nope"].state.value == "failed" and results["nope"].checks[0].reason == "no answer: failed"
    [sent] = _prompts_to(fake, "j")
    assert "Answer A" in sent and "Answer B" in sent and "Answer C" not in sent
    verdicts = [results[tag].checks[0] for tag in ("a", "b")]
    assert sorted(v.passed for v in verdicts) == [False, True] and all(v.reason.startswith("as ") for v in verdicts)


@pytest.mark.anyio
async def test_a_pairwise_judge_with_a_failed_submit_and_a_timed_out_sibling_fails_the_survivor() -> None:
    fake = FakeJobsAPI(models=["a", "slow", "j"], scripts={"a": words_script("Paris"), "slow": FOREVER,
                                                           "j": words_script("WINNER: A")})
    results = await arun("q", ["a", "nope", "slow"], client=client_for(fake), poll=FAST, unknown="fail", timeout=0.3,
                         judge=judge("j", pairwise=True), history=False)
    assert [v.line() for tag in results for v in results[tag].checks] == [
        "✗ pairwise:j: not judged within the run's timeout", "✗ pairwise:j 0.00: no answer: failed",
        "✗ pairwise:j 0.00: no answer: timed out"]


@pytest.mark.anyio
async def test_a_judging_job_the_timeout_cuts_fails_its_verdict_and_the_next_judges(history_file) -> None:
    from gridllm_nb.core import history

    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "j": [("running", "SCORE")],
                                "k": words_script("SCORE: 9")}, cancel_supported=True)
    results = await arun("q", ["a"], client=client_for(fake), poll=FAST, timeout=0.3,
                         judge=[judge("j"), judge("k")])
    by_j, by_k = results["a"].checks
    assert (by_j.passed, by_j.score, by_j.reason, by_j.raw) == (False, None, "the judge's job timed out", "SCORE")
    assert (by_k.passed, by_k.reason) == (False, "not judged within the run's timeout") and not _prompts_to(fake, "k")
    assert results["a"].state.value == "completed" and results["a"].passed is False
    [judging] = [job for job in fake.jobs.values() if job.tag == "j"]
    assert judging.cancelled  # the service was asked to stop the judge's job
    assert history.load_run(results.run_id)["a"].checks == [by_j, by_k]


@pytest.mark.anyio
@pytest.mark.parametrize("pairwise", [False, True])
async def test_in_a_grid_the_timeout_leaves_no_verdict_pending_in_scores_or_counts(pairwise: bool) -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "slow": FOREVER, "j": FOREVER}, cancel_supported=True)
    passing: list[str] = []
    # hours=8: in fake time the poller races ahead, and must not reach a job's own hours limit
    result = await agrid(["q0", "q1"], ["a", "slow"], client=client_for(fake, clock=clock), progress=None,
                         max_live=4, timeout=0.3, hours=8, judge=judge("j", pairwise=pairwise), history=False,
                         on_progress=lambda g: passing.append(g.counts.passing))
    why = "not judged within the run's timeout" if pairwise else "the judge's job timed out"
    assert [run["a"].checks[0].reason for run in result] == [why, why]
    assert result.counts.passing == passing[-1] == "passed: a 0/2 · slow 0/2"
    assert {row["model"]: (row["checked"], row["passed"]) for row in result.scores()} == {"a": (2, 0),
                                                                                            "slow": (2, 0)}


@pytest.mark.anyio
async def test_cancelling_the_run_while_it_judges_fails_every_pending_verdict(history_file) -> None:
    import asyncio

    from gridllm_nb.core import history

    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "b": FOREVER, "j": [("running", "SCORE")]},
                       cancel_supported=True)
    results = Results()
    lines, on_update = card_lines(results, "a")
    task = asyncio.ensure_future(arun("q", ["a", "b"], client=client_for(fake), poll=FAST, results=results,
                                      judge=[judge("j"), judge("p", pairwise=True)], on_update=on_update))
    while not any(job.tag == "j" and job.position > 2 for job in fake.jobs.values()):
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    expected = ["✗ judge:j: the judge's job cancelled: interrupted", "✗ pairwise:p: not judged: interrupted"]
    assert [v.line() for v in results["a"].checks] == expected
    assert [v.line() for v in results["b"].checks] == ["✗ judge:j 0.00: no answer: cancelled",
                                                        "✗ pairwise:p 0.00: no answer: cancelled"]
    assert lines[0] == ["… judge:j judging…", "… pairwise:p judging…"] and lines[-1] == expected
    assert [job.cancelled for job in fake.jobs.values() if job.tag in ("b", "j")] == [True, True]
    assert history.load_run(results.run_id)["a"].checks == results["a"].checks  # written before arun raised


@pytest.mark.anyio
async def test_a_cancel_while_every_answer_is_being_judged_leaves_nothing_pending_when_it_raises() -> None:
    import asyncio

    fake = FakeJobsAPI(scripts={"a": words_script("Paris"), "b": words_script("Lyon"), "j": FOREVER},
                       cancel_supported=True)
    results = Results()
    task = asyncio.ensure_future(arun("q", ["a", "b"], client=client_for(fake), poll=FAST, results=results,
                                      judge=[judge("j"), judge("p", pairwise=True)], history=False))
    while sum(1 for job in fake.jobs.values() if job.tag == "j" and job.position > 2) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = ["✗ judge:j: the judge's job cancelled: interrupted", "✗ pairwise:p: not judged: interrupted"]
    assert [[v.line() for v in r.checks] for r in results.values()] == [lines, lines]
    assert [job.cancelled for job in fake.jobs.values() if job.tag == "j"] == [True, True]
