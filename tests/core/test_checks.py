"""Checks: built-ins, callables, per-row fields, failures as verdicts; on runs and grids on the fake API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.core import history
from gridllm_nb.core.checks import Verdict, evaluate_checks, parse_check, parse_checks
from gridllm_nb.core.grid import agrid
from gridllm_nb.core.results import Result
from gridllm_nb.core.run import arun
from gridllm_nb.errors import ConfigError

from ..fakes import FakeClock, FakeJobsAPI, client_for, words_script

FAST = PollSettings(fast=0.001, slow=0.01)


def answer(text: str, state: JobState = JobState.COMPLETED) -> Result:
    return Result(tag="m", text=text, state=state)


def verdict(spec, text: str, row=None) -> Verdict:
    [v] = evaluate_checks([parse_check(spec)], answer(text), row)
    return v


@pytest.mark.parametrize(("spec", "text", "passed"), [
    ("contains:Paris", "It is Paris.", True), ("contains:Paris", "It is paris.", False),
    ("icontains:PARIS", "It is paris.", True), ("not-contains:sorry", "Sorry, no.", True),
    ("not-contains:Sorry", "Sorry, no.", False), ("equals:42", " 42\n", True), ("equals:42", "42.", False),
    (r"regex:\d{3}-\d{4}", "call 555-1234", True), (r"regex:^\d+$", "12a", False),
    ("json", '{"a": 1}', True), ("json", '```json\n{"a": 1}\n```', True), ("json", "{a: 1}", False),
    ("max-words:3", "one two three", True), ("max-words:3", "one two three four", False),
])
def test_built_in_checks(spec: str, text: str, passed: bool) -> None:
    v = verdict(spec, text)
    assert v.passed is passed and v.name == spec and v.kind == "check"
    assert (v.reason == "") is passed  # a failure says why, in one line
    assert "\n" not in v.reason


def test_failure_reasons_say_what_was_wrong() -> None:
    assert verdict("contains:Paris", "Lyon").reason == "no 'Paris' in the answer"
    assert verdict("max-words:2", "a b c d").reason == "4 words, over 2"
    assert verdict("json", "nope").reason.startswith("not JSON: Expecting value")


def test_json_schema(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"],
                                  "properties": {"age": {"type": "integer"}}}))
    assert verdict(f"json-schema:{schema}", '{"name": "x", "age": 3}').passed
    v = verdict(f"json-schema:{schema}", '{"name": "x", "age": "old"}')
    assert not v.passed and v.reason.startswith("age: 'old' is not of type 'integer'")
    with pytest.raises(ConfigError, match="cannot read the schema"):
        parse_check(f"json-schema:{tmp_path / 'missing.json'}")


def test_row_fields_are_filled_per_prompt() -> None:
    assert verdict("contains:{expected}", "the answer is 4", {"expected": 4}).passed
    v = verdict("contains:{expected}", "the answer is 5", {"expected": 4})
    assert not v.passed and v.name == "contains:{expected}" and v.reason == "no '4' in the answer"
    missing = verdict("contains:{expected}", "4", {"other": 1})
    assert not missing.passed and "no column 'expected'" in missing.reason
    assert "grid's rows" in verdict("contains:{expected}", "4").reason  # a run has no rows


def test_callables_return_bool_number_or_bool_with_reason() -> None:
    def short(text: str, result: Result) -> bool:
        return len(text) < 5

    assert verdict(short, "abc") == Verdict("short", True, 1.0, "")
    assert verdict(short, "abcdef") == Verdict("short", False, 0.0, "failed")
    assert verdict(lambda text, r: 0.25, "x").score == 0.25 and not verdict(lambda text, r: 0.25, "x").passed
    assert verdict(lambda text, r: (False, "too\npolite"), "x").reason == "too polite"


def test_a_check_that_raises_is_a_failed_verdict_with_its_exception_in_one_line() -> None:
    def boom(text: str, result: Result) -> bool:
        raise ValueError("bad\nthing")

    assert verdict(boom, "x") == Verdict("boom", False, 0.0, "ValueError: bad thing")
    assert "TypeError" in verdict(lambda t, r: "yes", "x").reason


def test_an_answer_that_did_not_complete_fails_every_check() -> None:
    [v] = evaluate_checks([parse_check("contains:a")], answer("a", JobState.FAILED))
    assert not v.passed and v.reason == "no answer: failed"


@pytest.mark.parametrize(("specs", "match"), [
    ("nope:1", "unknown check 'nope:1'; the built-in ones: contains:…"), ("contains", "needs its argument"),
    ("json:x", "takes no argument"), ("regex:(", "not a regular expression"), ("max-words:x", "whole number"),
    (["contains:a", "contains:a"], "two checks are named"), ([3], "a check is a spec"),
])
def test_bad_specs_are_config_errors_before_anything_is_sent(specs, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_checks(specs)


# -- on runs and grids ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_checks_each_answer_as_it_ends_and_keeps_the_verdicts_everywhere(history_file: Path) -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("Paris is the capital"), "b": words_script("Lyon, I think")})
    seen: dict[str, list[Verdict]] = {}
    results = None

    def on_update(update: JobUpdate) -> None:
        if update.state.terminal:  # the verdict is there when the end is shown
            seen[update.tag] = list(results[update.tag].checks)

    from gridllm_nb.core.results import Results

    results = Results()
    await arun("capital of France?", ["a", "b"], client=client_for(fake), poll=FAST, on_update=on_update,
               results=results, checks=["contains:Paris", "max-words:3"])
    assert [v.passed for v in seen["a"]] == [True, False] and [v.passed for v in seen["b"]] == [False, True]
    assert results["a"].passed is False and results["b"].checks[0].reason == "no 'Paris' in the answer"
    row = results.to_list()[0]
    assert row["passed"] is False and row["score"] == 0.5 and row["checks"][0]["name"] == "contains:Paris"
    frame = results.to_pandas()
    assert list(frame["contains:Paris"]) == [True, False] and list(frame["max-words:3"]) == [False, True]
    assert list(frame["passed"]) == [False, False]
    stored = history.load_run(results.run_id)
    assert stored["a"].checks == results["a"].checks


@pytest.mark.anyio
async def test_a_grid_fills_contains_expected_from_each_row_and_counts_passes() -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(scripts={"a": words_script("it is 4"), "b": words_script("it is 5")})
    rows = [{"prompt": "2+2?", "expected": "4"}, {"prompt": "1+4?", "expected": "5"},
            {"prompt": "3+1?", "expected": "4"}]
    seen: list[str] = []
    result = await agrid(rows, ["a", "b"], client=client_for(fake, clock=clock), progress=None,
                         checks="contains:{expected}", on_progress=lambda g: seen.append(g.counts.passing))
    assert [run["a"].passed for run in result] == [True, False, True]
    assert [run["b"].passed for run in result] == [False, True, False]
    assert result.counts.passing == "passed: a 2/3 · b 1/3" and seen[0] == ""
    frame = result.to_pandas()
    assert list(frame["contains:{expected}"]) == [True, False, False, True, True, False]
    assert "checks" not in frame.columns
    scores = {row["model"]: row for row in result.scores()}
    assert scores["a"]["passed"] == 2 and scores["a"]["checked"] == 3 and scores["a"]["ties"] == ["b"]


@pytest.mark.anyio
async def test_a_grid_checks_rows_of_a_dataframe() -> None:
    import pandas as pd

    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(default_script=words_script("yes"))
    frame = pd.DataFrame({"prompt": ["p1", "p2"], "expected": ["yes", "no"]})
    result = await agrid(frame, ["a"], client=client_for(fake, clock=clock), progress=None,
                         checks=["contains:{expected}"])
    assert [run["a"].passed for run in result] == [True, False]
    with pytest.raises(ConfigError, match="prompt row 0 has no 'prompt' column"):
        await agrid([{"q": "x"}], ["a"], client=client_for(fake, clock=clock), progress=None)


@pytest.mark.anyio
async def test_a_retry_checks_its_new_answer_with_the_runs_checks() -> None:
    fake = FakeJobsAPI(scripts={"a": words_script("no luck", final="failed")})
    results = await arun("q", ["a"], client=client_for(fake), poll=FAST, checks="contains:Paris", history=False)
    assert results["a"].checks[0].reason == "no answer: failed"
    fake.scripts["a"] = words_script("Paris")
    await results.aretry()
    assert [v.line() for v in results["a"].checks] == ["✓ contains:Paris"]


def test_the_progress_line_carries_the_running_pass_rate() -> None:
    from gridllm_nb.core.progress import Counts, progress_line

    line = progress_line(Counts(3, 1, 10, "passed: a 2/3 · b 0/1"), 7.0)
    assert line.endswith(" · passed: a 2/3 · b 0/1") and line.startswith("3/10 done · 1 failed")
