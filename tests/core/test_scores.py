"""Pass rates with Wilson intervals, mean scores with t intervals, ties: against known values."""

from __future__ import annotations

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.checks import Verdict
from gridllm_nb.core.results import Result
from gridllm_nb.core.scores import (
    mean_interval,
    overlaps,
    score_rows,
    scores_table,
    wilson,
)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962),
    (1, 1, 0.2065, 1.0),
])
def test_wilson_against_known_values(k: int, n: int, low: float, high: float) -> None:
    assert wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_of_nothing_is_everything() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def test_mean_interval_uses_students_t() -> None:
    mean, low, high = mean_interval([0.5, 0.7, 0.9])  # sd 0.2, t(2) = 4.303
    assert mean == pytest.approx(0.7) and (low, high) == pytest.approx((0.7 - 0.4969, 0.7 + 0.4969), abs=1e-4)
    assert mean_interval([0.4]) == (0.4, None, None) and mean_interval([]) == (None, None, None)


def test_overlaps() -> None:
    assert overlaps((0.1, 0.5), (0.5, 0.9)) and not overlaps((0.1, 0.4), (0.5, 0.9))
    assert overlaps((None, None), (0.5, 0.9))


def _answers(passes: list[bool], *, judge: list[float] | None = None) -> list[Result]:
    out = []
    for i, passed in enumerate(passes):
        checks = [Verdict("c", passed, float(passed))]
        if judge is not None:
            checks.append(Verdict("judge:j", judge[i] >= 0.5, judge[i], kind="judge"))
        out.append(Result(tag="m", text="x", state=JobState.COMPLETED, checks=checks, submitted_s=0.0,
                          first_token_s=0.5 + i, ended_s=1.5 + i, service_tokens=10))
    return out


def test_score_rows_mark_models_that_cannot_be_told_apart() -> None:
    rows = score_rows({"good": _answers([True] * 19 + [False]), "bad": _answers([False] * 18 + [True] * 2),
                       "mid": _answers([True] * 14 + [False] * 6)})
    by = {r["model"]: r for r in rows}
    assert by["good"]["passed"] == 19 and by["good"]["pass_rate"] == 0.95
    assert (by["good"]["pass_low"], by["good"]["pass_high"]) == pytest.approx(wilson(19, 20))
    assert by["good"]["ties"] == ["mid"] and by["bad"]["ties"] == [] and by["mid"]["ties"] == ["good"]
    assert by["good"]["ttft_s"] == pytest.approx(10.0) and by["good"]["tokens_per_s"] == 10.0
    table = scores_table(rows)
    assert "19/20 95% [76%, 99%]" in table and "not distinguishable from mid" in table


def test_judge_scores_have_their_own_interval() -> None:
    [row] = score_rows({"m": _answers([True, True, False], judge=[0.5, 0.7, 0.9])})
    assert row["score"] == pytest.approx(0.7) and row["score_high"] == pytest.approx(1.0)  # clamped to the scale
    assert row["passed"] == 2  # an answer passes when its checks and its judge all do


def test_without_checks_there_is_no_pass_rate() -> None:
    [row] = score_rows({"m": [Result(tag="m", text="x", state=JobState.COMPLETED)]})
    assert row["pass_rate"] is None and row["passed"] is None and row["answers"] == 1
